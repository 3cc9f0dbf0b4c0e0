"""The cost model's analytic layer counts equal what each op's module computes when it runs (every aten op it
dispatches), for every op type of the shipped spaces and the zoo; and pricing a new architecture is fast."""

from __future__ import annotations

import random
import time
from collections import Counter

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from nas import zoo
from nas.arch import Shape
from nas.latency.costmodel import Layer, head_layers, layers
from nas.latency.items import arch_items, space_items, zoo_archs
from nas.latency.keys import head_arch
from nas.model import build, build_block

# aten ops a mobile runtime fuses into the conv before them or folds away, and pure views: no layer of their own.
FREE = {
    "relu", "relu_", "hardtanh", "hardtanh_", "_native_batch_norm_legit_no_training", "native_batch_norm",
    "batch_norm", "view", "_unsafe_view", "t", "transpose", "permute", "unsqueeze", "squeeze", "expand",
    "reshape", "flatten", "detach", "alias", "dropout", "split", "split_with_sizes", "slice", "select", "chunk",
    "unbind", "narrow", "as_strided", "_reshape_alias", "empty", "zeros",
}  # fmt: skip


def _numel(a) -> int:
    if isinstance(a, torch.Tensor):
        return a.numel()
    if isinstance(a, list | tuple):
        return sum(_numel(v) for v in a)
    return 0


def measured_layers(module, shape: tuple[int, int, int]) -> list[Layer]:
    """Layers seen by running the module once on zeros: one per dispatched aten op that is not free."""
    rows: list[Layer] = []

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            first = out[0] if isinstance(out, tuple) else out
            if name == "convolution":
                x, w, groups = args[0], args[1], args[8]
                kind = "dw" if groups > 1 and w.shape[1] == 1 else "conv"
                rows.append(Layer(kind, first.numel() * w[0].numel(), x.numel(), first.numel(), w.numel(), w.shape[2]))
            elif name in ("addmm", "mm"):
                w = args[2] if name == "addmm" else args[1]
                x = args[1] if name == "addmm" else args[0]
                rows.append(Layer("fc", w.numel(), x.numel(), first.numel(), w.numel()))
            elif name not in FREE and isinstance(first, torch.Tensor):
                rows.append(Layer("elt", 0, _numel(list(args)), first.numel()))
            return out

    with torch.no_grad(), Count():
        module(torch.zeros(1, *shape))
    return rows


def _all_op_items() -> dict:
    from nas.space import SPACES_DIR  # noqa: F401  (the shipped spaces)

    items = {}
    for name in ("mobilenetv3", "mnasnet", "fbnet"):
        items.update(space_items(name, 64))
    items.update(arch_items(zoo_archs(64)))
    return items


def _signature(x: Shape, block) -> tuple:
    """What makes two ops differ in structure (not in size): type, activations, gates, kernel, stride, groups,
    SE on/off, residual and expansion taken or not."""
    fields = block.to_dict()
    shape_free = tuple(
        sorted(
            (k, v) for k, v in fields.items() if k not in ("out", "mid", "squeeze", "e1") and not isinstance(v, float)
        )
    )
    extra = (
        getattr(block, "se", 0) > 0,
        block.has_residual(x.c) if hasattr(block, "has_residual") else None,
        block.has_expand(x.c) if hasattr(block, "has_expand") else None,
        x.c == getattr(block, "groups", 0),
    )
    return (*shape_free, *extra)


def _cases() -> list[tuple[str, dict]]:
    from nas.arch import block_from_dict

    items: dict[str, dict] = {}
    for name in ("mobilenetv3", "mnasnet", "fbnet"):
        items.update(space_items(name, 64))
    items.update(arch_items(zoo_archs(64)))
    cases, seen = [], set()
    for key, item in sorted(items.items()):
        if item["kind"] == "op":
            sig = _signature(Shape(*item["x"]), block_from_dict(item["block"]))
        elif item["kind"] == "head":
            sig = ("head", key.split(":", 2)[2])
        else:
            continue
        if sig not in seen:
            seen.add(sig)
            cases.append((key, item))
    return cases


CASES = _cases()


def test_every_op_type_of_the_spaces_and_the_zoo_is_covered():
    types = {item["block"]["type"] for _, item in CASES if item["kind"] == "op"}
    assert types == {"conv", "pool", "ds", "ir", "ghost", "shuffle_v1", "shuffle_v2", "fire", "sep", "xception"}
    assert any(item["kind"] == "head" for _, item in CASES)


@pytest.mark.parametrize(("key", "item"), CASES, ids=[k[:60] for k, _ in CASES])
def test_analytic_layers_equal_the_ones_the_module_runs(key, item):
    from nas.arch import block_from_dict

    if item["kind"] == "op":
        x, block = Shape(*item["x"]), block_from_dict(item["block"])
        analytic = layers(x, block)
        measured = measured_layers(build_block(block, x.c).eval(), (x.c, x.h, x.w))
    else:
        head = head_arch(key)
        analytic = head_layers(head)
        measured = measured_layers(build(head).eval(), (head.in_channels, head.resolution, head.resolution))
    assert Counter(analytic) == Counter(measured)


@pytest.mark.parametrize("resolution", [160, 192, 224])
def test_a_new_architecture_is_priced_in_under_a_millisecond(resolution):
    from nas.latency import load_table, predict
    from nas.latency.keys import _CACHE
    from nas.space import load_space

    table = load_table("pixel")
    space = load_space("mobilenetv3")
    rng = random.Random(resolution)
    archs = [space.random_arch(rng, resolution=resolution) for _ in range(30)]
    predict(zoo.get("mobilenet_v2", resolution=resolution), table)  # warm the import paths
    _CACHE.clear()
    start = time.perf_counter()
    for arch in archs:
        assert predict(arch, table).latency_ms > 0
    per_arch = (time.perf_counter() - start) / len(archs)
    assert per_arch < 0.010  # the goal is 1 ms; a loaded CI core gets 10× slack
