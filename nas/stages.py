"""The one stage builder: stage rows become spec blocks here, for the zoo, block strings and search spaces.

A `Row` says what part of a stage holds before any width multiplier, in the spirit of timm's block args: the
block kind, how often it repeats, its output channels, the stride of its first block, kernel, expansion,
activation, and any further field of the block type (SE, residual, groups, biases). `StageBuilder` resolves
rows with the package's rules, each written once, here:

- output channels: `make_divisible(c · width, divisor)` (`StageBuilder.channels`), the only rounding rule;
- expansion: `mid = make_divisible(block input channels · e, divisor)`, from the rounded input channels;
- stride: only the first block of a row strides, as timm's and mobile-vision's builders do;
- repeats: the row's block `repeats` times, each reading the previous block's output;
- a `skip` row (FBNet's and ProxylessNAS's identity op) adds no block where its input and output shapes
  match, and a strided 1×1 conv + BN + activation where they do not (FBNet's reference `Identity`).

It sits beside `nas.arch` and imports nothing else of the package, so every decoder can use it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nas.arch import Block, Conv, DepthwiseSeparable, InvertedResidual, SpecError, make_divisible

KINDS = ("ir", "ds", "conv", "skip")


@dataclass(frozen=True)
class Row:
    """`repeats` blocks of one kind; `out` is before the width multiplier, `stride` is the first block's."""

    kind: str
    out: int
    repeats: int = 1
    stride: int = 1
    k: int = 3
    e: float = 1.0  # ir only: mid = make_divisible(input channels · e)
    act: str = "relu"
    fields: Mapping[str, Any] = field(default_factory=dict)  # any other field of the block type


@dataclass(frozen=True)
class StageBuilder:
    """How rows resolve: the width multiplier (None keeps `out` as written: a spec or a block string that is
    already resolved), the divisor of `make_divisible`, and two conventions of particular references:

    - `truncate`: mobile-vision's FBNet builder rounds `int(c · width)`, the product truncated first;
    - `canonical`: a residual that the shapes rule out is written as the default (True), so that one network
      has one spec (search spaces, whose `residual: false` may land on a strided layer)."""

    width: float | None = 1.0
    divisor: int = 8
    truncate: bool = False
    canonical: bool = False

    def channels(self, c: float) -> int:
        """Output channels of a row (or a stem or head conv that scales with the stages)."""
        if self.width is None:
            return int(c)
        value = c * self.width
        return make_divisible(int(value) if self.truncate else value, self.divisor)

    def block(self, row: Row, cin: int, first: bool = True) -> Block | None:
        """The block `row` makes on `cin` input channels (`first`: the row's first block, the one that strides);
        None for a skip that adds nothing."""
        out = self.channels(row.out)
        s = row.stride if first else 1
        fields = dict(row.fields)
        shape_kept = s == 1 and cin == out
        if self.canonical and not shape_kept and "skip" in fields:
            fields["skip"] = True
        if row.kind == "skip":
            return None if shape_kept else Conv(out=out, k=1, s=s, act=row.act, **fields)
        if row.kind == "conv":
            return Conv(out=out, k=row.k, s=s, act=row.act, **fields)
        if row.kind == "ds":
            return DepthwiseSeparable(out=out, k=row.k, s=s, act=row.act, **fields)
        if row.kind == "ir":
            mid = make_divisible(cin * row.e, self.divisor)
            return InvertedResidual(out=out, mid=mid, k=row.k, s=s, act=row.act, **fields)
        raise SpecError(f"unknown row kind {row.kind!r} (known: {', '.join(KINDS)})")

    def stage(self, rows: Iterable[Row], cin: int) -> list[Block]:
        """The blocks of one stage, the first reading `cin` channels."""
        blocks: list[Block] = []
        for row in rows:
            for i in range(row.repeats):
                block = self.block(row, cin, first=i == 0)
                if block is not None:
                    blocks.append(block)
                    cin = block.out
        return blocks

    def stages(self, table: Sequence[Sequence[Row]], cin: int) -> list[list[Block]]:
        """Stages of rows → stages of blocks (a stage of skips that add nothing stays, empty)."""
        result = []
        for rows in table:
            blocks = self.stage(rows, cin)
            result.append(blocks)
            if blocks:
                cin = blocks[-1].out
        return result
