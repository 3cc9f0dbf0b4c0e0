"""The one stage builder: channel rounding, strides, repeats, expansion and skips, each rule once."""

from __future__ import annotations

import pytest

from nas.arch import Conv, DepthwiseSeparable, InvertedResidual, SpecError, make_divisible
from nas.stages import Row, StageBuilder


def test_channels_round_with_make_divisible_and_none_keeps_them():
    assert StageBuilder(0.35).channels(32) == make_divisible(32 * 0.35) == 16  # 8 would be >10% below
    assert StageBuilder(1.0).channels(20) == 24  # a width rounds even at 1
    assert StageBuilder(None).channels(20) == 20  # a resolved spec or block string: as written
    assert StageBuilder(0.5, divisor=4).channels(20) == 12
    # mobile-vision truncates the product first: 36·0.9975 = 35.91 → 35 → 32; rounded whole it gives 40
    assert StageBuilder(0.9975).channels(36) == 40
    assert StageBuilder(0.9975, truncate=True).channels(36) == 32


def test_only_the_first_block_of_a_row_strides_and_repeats_chain():
    blocks = StageBuilder(1.0).stage([Row("ir", 24, repeats=3, stride=2, k=5, e=6)], cin=16)
    assert [b.s for b in blocks] == [2, 1, 1]
    assert [b.mid for b in blocks] == [96, 144, 144]  # mid from each block's own (rounded) input
    assert all(isinstance(b, InvertedResidual) and b.k == 5 and b.out == 24 for b in blocks)


def test_expansion_rounds_from_the_rounded_input():
    (block,) = StageBuilder(0.5).stage([Row("ir", 40, e=3.67)], cin=20)
    assert block.out == 24 and block.mid == make_divisible(20 * 3.67)


def test_kinds_and_fields():
    rows = [
        Row("ds", 16, k=3, act="relu6", fields={"pw_act": True, "skip": False}),
        Row("conv", 32, stride=2, k=1, act="hswish"),
        Row("ir", 32, e=4, fields={"se": 0.25, "groups": 2}),
    ]
    ds, conv, ir = StageBuilder(1.0).stage(rows, cin=16)
    assert ds == DepthwiseSeparable(out=16, k=3, act="relu6", pw_act=True, skip=False)
    assert conv == Conv(out=32, k=1, s=2, act="hswish")
    assert ir == InvertedResidual(out=32, mid=128, k=3, se=0.25, groups=2)
    with pytest.raises(SpecError, match="unknown row kind 'mbconv'"):
        StageBuilder().block(Row("mbconv", 8), 8)


def test_a_skip_vanishes_where_the_shape_is_kept_and_is_a_conv_where_not():
    builder = StageBuilder(1.0)
    assert builder.block(Row("skip", 32), cin=32) is None
    assert builder.block(Row("skip", 32, stride=2), cin=32) == Conv(out=32, k=1, s=2)
    assert builder.block(Row("skip", 48, act="relu6", fields={"bias": True}), cin=32) == Conv(
        out=48, k=1, act="relu6", bias=True
    )
    stages = builder.stages([[Row("skip", 16)], [Row("ir", 24, stride=2, e=6)]], cin=16)
    assert stages[0] == [] and stages[1][0].mid == 96  # an empty stage stays; the next reads its input


def test_canonical_writes_an_impossible_residual_as_the_default():
    row = Row("ir", 24, stride=2, e=6, fields={"skip": False})
    assert StageBuilder(1.0).block(row, cin=16).skip is False  # a zoo's `noskip` is kept as written
    assert StageBuilder(1.0, canonical=True).block(row, cin=16).skip is True
    kept = Row("ir", 16, e=6, fields={"skip": False})
    assert StageBuilder(1.0, canonical=True).block(kept, cin=16).skip is False  # a real choice stays
