"""What a table times: every op, head and input of some networks, a search space, or the zoo, keyed by op key.

An item is {"kind": "op", "x": [c, h, w], "block": {...}} · {"kind": "head", "key": KEY} ·
{"kind": "input", "x": [c, h, w]} (the per-inference cost alone) · {"kind": "net", "arch": {...}}.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from nas.arch import Arch, Block, Shape
from nas.errors import NasError
from nas.io import read_json
from nas.latency.keys import arch_ops, head_key, input_key, op_key

DEFAULT_SPACE = "mobilenetv3"


def op_item(x: Shape, block: Block) -> dict[str, Any]:
    return {"kind": "op", "x": [x.c, x.h, x.w], "block": block.to_dict()}


def arch_items(archs: Iterable[Arch]) -> dict[str, dict[str, Any]]:
    """Every op, head and input of these networks, by key."""
    items: dict[str, dict[str, Any]] = {}
    for arch in archs:
        ops = arch_ops(arch)
        for site, key in zip(ops.sites, ops.keys, strict=True):
            items.setdefault(key, op_item(site.x, site.block))
        items.setdefault(ops.head, {"kind": "head", "key": ops.head})
        items.setdefault(ops.input, {"kind": "input", "x": [arch.in_channels, arch.resolution, arch.resolution]})
    return items


def space_items(name: str, resolution: int, num_classes: int = 1000) -> dict[str, dict[str, Any]]:
    """Every distinct op any architecture of the space can hold (all choices at all positions), its heads and
    its input."""
    from nas.space import load_space

    space = load_space(name)
    items: dict[str, dict[str, Any]] = {}
    ops = space.ops(resolution)
    for x, block in ops:
        items.setdefault(op_key(x, block), op_item(x, block))
    sample = space.random_arch(random.Random(0), resolution=resolution, num_classes=num_classes)
    head_blocks = set(sample.head.blocks)
    last = [(x, b) for x, b in ops if b in head_blocks] if head_blocks else ops
    if not head_blocks:  # the head pools the last stage's output: every shape at the smallest map size
        smallest = min(b.out_shape(x).h for x, b in ops)
        last = [(x, b) for x, b in ops if b.out_shape(x).h == smallest]
    for x, block in last:
        y = block.out_shape(x)
        pooled = sample.replace(
            stem=(), stages=(), head=replace(sample.head, blocks=()), in_channels=y.c, resolution=y.h
        )
        key = head_key(pooled)
        items.setdefault(key, {"kind": "head", "key": key})
    ikey = input_key(sample.in_channels, resolution)
    items[ikey] = {"kind": "input", "x": [sample.in_channels, resolution, resolution]}
    return items


def zoo_archs(resolution: int, num_classes: int = 1000) -> list[Arch]:
    from nas import zoo

    archs = []
    for variant in zoo.variants():
        try:
            archs.append(zoo.get(variant.name, resolution=resolution, num_classes=num_classes))
        except NasError:
            continue  # a net whose strides do not fit this resolution holds no ops here
    return archs


def load_arch_file(path: str | Path) -> Arch:
    from nas.arch import SpecError

    data = read_json(path, "architecture file")
    try:
        return Arch.from_dict(data)
    except SpecError as err:
        raise NasError(f"{path}: {err}") from None


def source_items(
    *, space: str | None = None, zoo: bool = False, arch: str | Path | None = None, resolution: int | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """The items of one source (a space, by default mobilenetv3; the zoo; or an architecture file) and a record of
    the source for the table."""
    if resolution is not None and (isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 32):
        raise NasError(f"resolution must be an integer of at least 32, got {resolution!r}")
    if sum(bool(v) for v in (space, zoo, arch)) > 1:
        raise NasError("give one source: a space, the zoo or an architecture file")
    if arch:
        net = load_arch_file(arch)
        if resolution:
            net = net.replace(resolution=resolution)
        return arch_items([net]), {"arch": str(arch), "resolution": net.resolution}
    resolution = resolution or 224
    if zoo:
        return arch_items(zoo_archs(resolution)), {"zoo": True, "resolution": resolution}
    space = space or DEFAULT_SPACE
    return space_items(space, resolution), {"space": space, "resolution": resolution}
