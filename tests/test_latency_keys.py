"""Op keys: identical ops share a key, any change that alters the built op changes it."""

from __future__ import annotations

import dataclasses

import pytest

from nas import zoo
from nas.arch import Conv, InvertedResidual, Shape
from nas.latency import arch_ops, op_key

X = Shape(24, 56, 56)
BASE = InvertedResidual(out=24, mid=96, k=3, s=1, act="relu", se=0.25, se_gate="hsigmoid", se_act="relu")


def test_equal_ops_share_a_key():
    again = InvertedResidual(out=24, mid=96, k=3, s=1, act="relu", se=0.25, se_gate="hsigmoid", se_act="relu")
    assert op_key(X, BASE) == op_key(X, again)


def test_fields_that_build_the_same_op_share_a_key():
    strided = BASE.replace(s=2)
    assert op_key(X, strided) == op_key(X, strided.replace(skip=False))  # no residual when strided
    plain = BASE.replace(se=0.0)
    assert op_key(X, plain) == op_key(X, plain.replace(se_gate="sigmoid", se_act="hswish", se_from="in"))
    assert op_key(X, Conv(out=16, k=3)) == op_key(X, Conv(out=16, k=3, pad=1))


@pytest.mark.parametrize(
    "change",
    [
        {"out": 32, "skip": False},
        {"mid": 72},
        {"k": 5},
        {"s": 2},
        {"act": "hswish"},
        {"se": 0.5},
        {"se": 0.0},
        {"se_gate": "sigmoid"},
        {"se_act": "hswish"},
        {"skip": False},
        {"groups": 2},
        {"bias": True},
    ],
)
def test_any_field_change_changes_the_key(change):
    assert op_key(X, BASE) != op_key(X, BASE.replace(**change))


@pytest.mark.parametrize("shape", [Shape(24, 28, 28), Shape(24, 56, 28), Shape(32, 56, 56)])
def test_input_shape_is_part_of_the_key(shape):
    assert op_key(X, BASE) != op_key(shape, BASE)


def test_conv_fields_each_change_the_key():
    conv = Conv(out=16, k=3, s=2, act="hswish")
    keys = {op_key(X, conv)}
    for change in (
        {"out": 8},
        {"k": 5},
        {"s": 1},
        {"groups": 8},
        {"pad": 0},
        {"bn": False},
        {"bias": True},
        {"act": "relu"},
    ):
        keys.add(op_key(X, conv.replace(**change)))
    assert len(keys) == 9


def test_arch_ops_follow_the_sites_and_are_cached():
    arch = zoo.get("mobilenet_v2", width=0.5, resolution=160)
    ops = arch_ops(arch)
    sites = arch.sites()
    assert ops.paths == tuple(s.path for s in sites)
    assert ops.keys == tuple(op_key(s.x, s.block) for s in sites)
    assert ops.head.startswith("head:") and ops.input == "input:3x160x160:{}"
    assert arch_ops(dataclasses.replace(arch)) is ops  # equal spec → same cached ops
