"""The architecture spec: the one value every stage of `nas` passes along.

An `Arch` is plain data (JSON-serialisable, hashable, validated on construction). Channel counts are stored
resolved, as integers: width multipliers and rounding happen before a spec exists, through `make_divisible`,
the only rounding rule of the package. Input channels are never stored: each block reads them from the block
before, so shrinking one layer can never leave its neighbour inconsistent.

Parameters and multiply-accumulates come from the spec alone (`Arch.costs()`), without torch; the builders in
`nas.model` must agree with them exactly (tested for every zoo model).

JSON schema `nas.arch/1` (documented in docs/arch-spec.md)::

    {"schema": "nas.arch/1", "name": str, "resolution": int, "in_channels": int, "num_classes": int,
     "stem": [block...], "stages": [[block...]...],
     "head": {"blocks": [block...], "hidden": [{"out", "act", "bias"}...], "dropout": float,
              "classifier": "linear" | "conv", "classifier_bias": bool}}

Each block is an object with a "type" and that type's fields (see the dataclasses below).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nas.errors import NasError
from nas.io import parse_json

SCHEMA = "nas.arch/1"

ACTIVATIONS = ("none", "relu", "relu6", "hswish", "swish")
# A name reaches file names and generated source: letters, digits and `_ . + -` (inner spaces allowed), bounded.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.+ -]{0,98}[A-Za-z0-9_.+-])?", re.ASCII)
NAME_MAX = 100
GATES = ("sigmoid", "hsigmoid")

# Limits on every number a spec (or a search space) can hold, documented in docs/arch-spec.md ("Limits"). They
# are far above any mobile network, and they keep a mistaken or hostile file from reaching torch's allocator:
# an `Arch` that exists has been checked against every one of them, from the spec alone, before torch is touched.
MAX_CHANNELS = 16_384  # any channel count: out, mid, squeeze, e1, groups, in_channels, hidden widths
MAX_RESOLUTION = 4_096  # input height = width
MAX_CLASSES = 100_000  # classifier outputs (and the labels of a data set)
MAX_KERNEL = 31  # kernel and pooling window sizes
MAX_STRIDE = 16
MAX_LAYERS = 64  # blocks of the stem, of one stage, of the head; hidden layers; Xception reps; layers of a space stage
MAX_STAGES = 64  # stages of a spec or a search space
# A search space's work: over its stages, the combinations of a stage's choices times its deepest layer count
# (what enumerating its ops costs; the shipped spaces need at most 6,528).
MAX_SPACE_WORK = 16_384
MAX_PARAMS = 250_000_000  # parameters of the whole network (1 GB of float32 weights)
MAX_MACS = 100_000_000_000  # multiply-accumulates of one forward pass at batch 1
MAX_ACTIVATION = 2**30  # elements of the largest tensor between two blocks at batch 1 (4 GiB of float32)

_FIELD_LIMITS: dict[str, tuple[int, str]] = {
    **{name: (MAX_CHANNELS, "MAX_CHANNELS") for name in ("out", "mid", "squeeze", "e1", "groups")},
    "k": (MAX_KERNEL, "MAX_KERNEL"),
    "s": (MAX_STRIDE, "MAX_STRIDE"),
    "reps": (MAX_LAYERS, "MAX_LAYERS"),
}


class SpecError(NasError, ValueError):
    """A spec that cannot describe a network; the message names the block and the field."""


def make_divisible(
    value: float, divisor: int = 8, min_value: int | None = None, round_limit: float = 0.9
) -> int:
    """Round a channel count to a multiple of `divisor`, never more than 10% below `value`.

    The rule of the TensorFlow MobileNet code that torchvision and timm copy; the only rounding in `nas`.
    """
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < round_limit * value:
        rounded += divisor
    return rounded


def se_channels(ratio: float, in_ch: int, mid_ch: int, source: str, divisor: int = 8) -> int:
    """Squeeze-excite bottleneck width: MobileNetV3 rounds a share of the expanded channels (`source="mid"`),
    MnasNet and EfficientNet take a share of the block's input channels unrounded (`source="in"`)."""
    if source == "mid":
        return make_divisible(mid_ch * ratio, divisor)
    return max(1, round(in_ch * ratio))


def conv_out(size: int, k: int, s: int, pad: int, ceil: bool = False) -> int:
    span = size + 2 * pad - k
    if not ceil:
        return span // s + 1
    out = math.ceil(span / s) + 1
    # As PyTorch's ceil_mode: a last window that would start in the right padding is dropped.
    return out - 1 if (out - 1) * s >= size + pad else out


@dataclass(frozen=True)
class Shape:
    c: int
    h: int
    w: int

    def __str__(self) -> str:
        return f"{self.c}×{self.h}×{self.w}"


@dataclass(frozen=True)
class Cost:
    params: int = 0
    macs: int = 0

    def __add__(self, other: Cost) -> Cost:
        return Cost(self.params + other.params, self.macs + other.macs)


def _conv(
    cin: int, cout: int, k: int, hw_out: int, groups: int = 1, bias: bool = False, bn: bool = True
) -> Cost:
    """Cost of Conv2d (+ BatchNorm): weights, optional bias, BN affine; MACs over the output map."""
    weights = cout * (cin // groups) * k * k
    return Cost(weights + (cout if bias else 0) + (2 * cout if bn else 0), weights * hw_out)


def _se(ch: int, rd: int) -> Cost:
    """Squeeze-excite: two 1×1 convs with bias on the pooled vector."""
    return Cost(ch * rd + rd + rd * ch + ch, 2 * ch * rd)


# ---------------------------------------------------------------------------------------------- blocks


@dataclass(frozen=True, kw_only=True)
class Block:
    """Base of the block types. `out` is every block's output channel count."""

    type: ClassVar[str] = ""
    out: int

    def check(self, cin: int) -> None:
        """Raise SpecError(field, message) where the block cannot follow `cin` input channels."""
        _positive(self, "out")

    def out_shape(self, x: Shape) -> Shape:
        raise NotImplementedError

    def cost(self, x: Shape) -> Cost:
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        # A ratio spelled 0 or 0.0 is the same network: float fields are written as floats, so hashes agree.
        return {
            "type": self.type,
            **{
                f.name: float(getattr(self, f.name)) if f.type == "float" else getattr(self, f.name)
                for f in dataclasses.fields(self)
            },
        }

    def replace(self, **changes: Any) -> Block:
        return dataclasses.replace(self, **changes)


class _FieldError(Exception):
    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name
        self.message = message


def _positive(block: Block, *names: str) -> None:
    """Each field a positive integer within its limit (`_FIELD_LIMITS`)."""
    for name in names:
        value = getattr(block, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise _FieldError(name, f"must be a positive integer, got {value!r}")
        limit, label = _FIELD_LIMITS[name]
        if value > limit:
            raise _FieldError(name, f"{value} is above the limit of {limit} ({label})")


def check_int(value: Any, where: str, limit: int, label: str) -> None:
    """A positive integer no larger than `limit` (named `label` in the message), or SpecError at `where`."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise SpecError(f"{where}: must be a positive integer, got {value!r}")
    if value > limit:
        raise SpecError(f"{where}: {value} is above the limit of {limit} ({label})")


def check_count(items: Any, where: str, limit: int = MAX_LAYERS, label: str = "MAX_LAYERS") -> None:
    """A list of blocks (or stages) no longer than `limit`; checked before its items are looked at."""
    if len(items) > limit:
        raise SpecError(f"{where}: {len(items)} entries, above the limit of {limit} ({label})")


def _choice(block: Block, name: str, allowed: tuple[str, ...]) -> None:
    if getattr(block, name) not in allowed:
        raise _FieldError(name, f"must be one of {', '.join(allowed)}; got {getattr(block, name)!r}")


def _ratio(block: Block, name: str) -> None:
    value = getattr(block, name)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise _FieldError(name, f"must be a number in [0, 1], got {value!r}")


@dataclass(frozen=True, kw_only=True)
class Conv(Block):
    """Convolution + optional BatchNorm + activation. `pad=None` means k // 2."""

    type: ClassVar[str] = "conv"
    k: int = 1
    s: int = 1
    groups: int = 1
    pad: int | None = None
    bn: bool = True
    bias: bool = False
    act: str = "relu"

    @property
    def padding(self) -> int:
        return self.k // 2 if self.pad is None else self.pad

    def check(self, cin: int) -> None:
        _positive(self, "out", "k", "s", "groups")
        _choice(self, "act", ACTIVATIONS)
        if self.pad is not None and not 0 <= self.pad <= self.k // 2:
            raise _FieldError("pad", f"must be null or between 0 and k // 2 = {self.k // 2}, got {self.pad}")
        if cin % self.groups or self.out % self.groups:
            raise _FieldError("groups", f"{self.groups} groups do not divide {cin} → {self.out} channels")

    def out_shape(self, x: Shape) -> Shape:
        return Shape(
            self.out, conv_out(x.h, self.k, self.s, self.padding), conv_out(x.w, self.k, self.s, self.padding)
        )

    def cost(self, x: Shape) -> Cost:
        y = self.out_shape(x)
        return _conv(x.c, self.out, self.k, y.h * y.w, self.groups, self.bias, self.bn)


@dataclass(frozen=True, kw_only=True)
class Pool(Block):
    """Max or average pooling (ShuffleNet, SqueezeNet, Xception stems). `out` equals the input channels."""

    type: ClassVar[str] = "pool"
    kind: str = "max"
    k: int = 3
    s: int = 2
    pad: int = 0
    ceil: bool = False

    def check(self, cin: int) -> None:
        _positive(self, "out", "k", "s")
        _choice(self, "kind", ("max", "avg"))
        if self.out != cin:
            raise _FieldError("out", f"a pool keeps its {cin} channels, got out={self.out}")
        if not 0 <= self.pad <= self.k // 2:
            raise _FieldError("pad", f"must be between 0 and k // 2 = {self.k // 2}, got {self.pad}")

    def out_shape(self, x: Shape) -> Shape:
        return Shape(
            x.c,
            conv_out(x.h, self.k, self.s, self.pad, self.ceil),
            conv_out(x.w, self.k, self.s, self.pad, self.ceil),
        )

    def cost(self, x: Shape) -> Cost:
        return Cost()


@dataclass(frozen=True, kw_only=True)
class DepthwiseSeparable(Block):
    """Depthwise k×k (+BN+act) [+SE] → pointwise 1×1 (+BN [+act]); residual when `skip` and shapes allow.

    MobileNetV1 sets `pw_act`; the first block of MobileNetV3/MnasNet/EfficientNet leaves it off."""

    type: ClassVar[str] = "ds"
    k: int = 3
    s: int = 1
    act: str = "relu"
    pw_act: bool = False
    se: float = 0.0
    se_from: str = "in"
    se_gate: str = "sigmoid"
    se_act: str = "relu"
    skip: bool = True

    def check(self, cin: int) -> None:
        _positive(self, "out", "k", "s")
        _choice(self, "act", ACTIVATIONS)
        _choice(self, "se_act", ACTIVATIONS)
        _choice(self, "se_gate", GATES)
        _choice(self, "se_from", ("in", "mid"))
        _ratio(self, "se")

    def has_residual(self, cin: int) -> bool:
        return self.skip and self.s == 1 and cin == self.out

    def se_channels(self, cin: int) -> int:
        return se_channels(self.se, cin, cin, self.se_from) if self.se else 0

    def out_shape(self, x: Shape) -> Shape:
        p = self.k // 2
        return Shape(self.out, conv_out(x.h, self.k, self.s, p), conv_out(x.w, self.k, self.s, p))

    def cost(self, x: Shape) -> Cost:
        y = self.out_shape(x)
        hw = y.h * y.w
        total = _conv(x.c, x.c, self.k, hw, groups=x.c) + _conv(x.c, self.out, 1, hw)
        return total + (_se(x.c, self.se_channels(x.c)) if self.se else Cost())


@dataclass(frozen=True, kw_only=True)
class InvertedResidual(Block):
    """MBConv: 1×1 expand to `mid` (omitted when mid == in) → depthwise k×k → [SE] → 1×1 project.

    `groups` > 1 groups both 1×1 convs and shuffles channels after the expansion (FBNet's g2 ops);
    `bias` puts a bias on every conv (FBNet's reference code)."""

    type: ClassVar[str] = "ir"
    mid: int
    k: int = 3
    s: int = 1
    act: str = "relu"
    se: float = 0.0
    se_from: str = "mid"
    se_gate: str = "hsigmoid"
    se_act: str = "relu"
    skip: bool = True
    groups: int = 1
    bias: bool = False

    def check(self, cin: int) -> None:
        _positive(self, "out", "mid", "k", "s", "groups")
        _choice(self, "act", ACTIVATIONS)
        _choice(self, "se_act", ACTIVATIONS)
        _choice(self, "se_gate", GATES)
        _choice(self, "se_from", ("in", "mid"))
        _ratio(self, "se")
        for name, ch in (("in", cin), ("mid", self.mid), ("out", self.out)):
            if ch % self.groups:
                raise _FieldError("groups", f"{self.groups} groups do not divide the {ch} {name} channels")

    def has_expand(self, cin: int) -> bool:
        return self.mid != cin

    def has_residual(self, cin: int) -> bool:
        return self.skip and self.s == 1 and cin == self.out

    def se_channels(self, cin: int) -> int:
        return se_channels(self.se, cin, self.mid, self.se_from) if self.se else 0

    def out_shape(self, x: Shape) -> Shape:
        p = self.k // 2
        return Shape(self.out, conv_out(x.h, self.k, self.s, p), conv_out(x.w, self.k, self.s, p))

    def cost(self, x: Shape) -> Cost:
        y = self.out_shape(x)
        hw = y.h * y.w
        total = Cost()
        if self.has_expand(x.c):
            total += _conv(x.c, self.mid, 1, x.h * x.w, self.groups, self.bias)
        total += _conv(self.mid, self.mid, self.k, hw, self.mid, self.bias)
        if self.se:
            total += _se(self.mid, self.se_channels(x.c))
        return total + _conv(self.mid, self.out, 1, hw, self.groups, self.bias)


@dataclass(frozen=True, kw_only=True)
class Ghost(Block):
    """GhostNet bottleneck: ghost module to `mid` (+ReLU) → [depthwise k×k stride s] → [SE] → ghost module to
    `out`; shortcut is identity, or depthwise k×k + 1×1 conv when the shape changes.

    A ghost module makes ceil(c/2) channels with a 1×1 conv and as many again with a cheap 3×3 depthwise conv.
    SE width is make_divisible(mid·se, 4), as in the reference code."""

    type: ClassVar[str] = "ghost"
    mid: int
    k: int = 3
    s: int = 1
    se: float = 0.0

    def check(self, cin: int) -> None:
        _positive(self, "out", "mid", "k", "s")
        _ratio(self, "se")

    def has_residual(self, cin: int) -> bool:
        return self.s == 1 and cin == self.out

    def se_channels(self, cin: int) -> int:
        return se_channels(self.se, cin, self.mid, "mid", divisor=4) if self.se else 0

    def out_shape(self, x: Shape) -> Shape:
        p = self.k // 2
        return Shape(self.out, conv_out(x.h, self.k, self.s, p), conv_out(x.w, self.k, self.s, p))

    @staticmethod
    def module_cost(cin: int, cout: int, hw: int) -> Cost:
        init = math.ceil(cout / 2)
        return _conv(cin, init, 1, hw) + _conv(init, init, 3, hw, groups=init)

    def cost(self, x: Shape) -> Cost:
        y = self.out_shape(x)
        hw_in, hw = x.h * x.w, y.h * y.w
        total = self.module_cost(x.c, self.mid, hw_in)
        if self.s > 1:
            total += _conv(self.mid, self.mid, self.k, hw, groups=self.mid)
        if self.se:
            total += _se(self.mid, self.se_channels(x.c))
        total += self.module_cost(self.mid, self.out, hw)
        if not self.has_residual(x.c):
            total += _conv(x.c, x.c, self.k, hw, groups=x.c) + _conv(x.c, self.out, 1, hw)
        return total


@dataclass(frozen=True, kw_only=True)
class ShuffleV1(Block):
    """ShuffleNetV1 unit: grouped 1×1 to `mid` (+ReLU) → shuffle → depthwise 3×3 → grouped 1×1; added to the
    input (stride 1) or concatenated with its 3×3 average pool (stride 2, so the branch makes out − in).
    `first_group=False` leaves the first 1×1 ungrouped (stage 2, unit 1 of the reference code)."""

    type: ClassVar[str] = "shuffle_v1"
    mid: int
    groups: int = 3
    s: int = 1
    first_group: bool = True

    def branch_out(self, cin: int) -> int:
        return self.out - cin if self.s > 1 else self.out

    def check(self, cin: int) -> None:
        _positive(self, "out", "mid", "groups", "s")
        if self.s == 1 and self.out != cin:
            raise _FieldError("out", f"a stride-1 unit adds its input: out must equal {cin}")
        if self.branch_out(cin) < 1:
            raise _FieldError(
                "out", f"a stride-2 unit concatenates its {cin} input channels: out must exceed them"
            )
        g1 = self.groups if self.first_group else 1
        if cin % g1 or self.mid % self.groups or self.branch_out(cin) % self.groups:
            raise _FieldError(
                "groups", f"{self.groups} groups do not divide in={cin}, mid={self.mid}, branch out"
            )

    def out_shape(self, x: Shape) -> Shape:
        return Shape(self.out, conv_out(x.h, 3, self.s, 1), conv_out(x.w, 3, self.s, 1))

    def cost(self, x: Shape) -> Cost:
        y = self.out_shape(x)
        hw = y.h * y.w
        g1 = self.groups if self.first_group else 1
        return (
            _conv(x.c, self.mid, 1, x.h * x.w, g1)
            + _conv(self.mid, self.mid, 3, hw, self.mid)
            + _conv(self.mid, self.branch_out(x.c), 1, hw, self.groups)
        )


@dataclass(frozen=True, kw_only=True)
class ShuffleV2(Block):
    """ShuffleNetV2 unit. Stride 1: split channels in half, transform one half (1×1, depthwise 3×3, 1×1),
    concatenate, shuffle. Stride 2: both halves see the whole input (the left one: depthwise 3×3, 1×1)."""

    type: ClassVar[str] = "shuffle_v2"
    s: int = 1

    def check(self, cin: int) -> None:
        _positive(self, "out", "s")
        if self.out % 2:
            raise _FieldError("out", f"must be even (two branches), got {self.out}")
        if self.s == 1 and cin != self.out:
            raise _FieldError("out", f"a stride-1 unit keeps its {cin} channels, got out={self.out}")

    def out_shape(self, x: Shape) -> Shape:
        return Shape(self.out, conv_out(x.h, 3, self.s, 1), conv_out(x.w, 3, self.s, 1))

    def cost(self, x: Shape) -> Cost:
        y = self.out_shape(x)
        hw = y.h * y.w
        half = self.out // 2
        right_in = x.c if self.s > 1 else half
        total = (
            _conv(right_in, half, 1, x.h * x.w) + _conv(half, half, 3, hw, half) + _conv(half, half, 1, hw)
        )
        if self.s > 1:
            total += _conv(x.c, x.c, 3, hw, x.c) + _conv(x.c, half, 1, hw)
        return total


@dataclass(frozen=True, kw_only=True)
class Fire(Block):
    """SqueezeNet fire module: 1×1 squeeze (+ReLU), then 1×1 (`e1` channels) and 3×3 (out − e1) expands
    concatenated, each +ReLU. Convs have biases and no BatchNorm, as in the paper."""

    type: ClassVar[str] = "fire"
    squeeze: int
    e1: int

    def check(self, cin: int) -> None:
        _positive(self, "out", "squeeze", "e1")
        if self.e1 >= self.out:
            raise _FieldError("e1", f"must be below out={self.out} (the 3×3 expand makes out − e1)")

    def out_shape(self, x: Shape) -> Shape:
        return Shape(self.out, x.h, x.w)

    def cost(self, x: Shape) -> Cost:
        hw = x.h * x.w
        return (
            _conv(x.c, self.squeeze, 1, hw, bias=True, bn=False)
            + _conv(self.squeeze, self.e1, 1, hw, bias=True, bn=False)
            + _conv(self.squeeze, self.out - self.e1, 3, hw, bias=True, bn=False)
        )


@dataclass(frozen=True, kw_only=True)
class SeparableConv(Block):
    """Xception's separable conv: depthwise k×k and pointwise 1×1 with nothing between, then BN + act."""

    type: ClassVar[str] = "sep"
    k: int = 3
    s: int = 1
    act: str = "relu"

    def check(self, cin: int) -> None:
        _positive(self, "out", "k", "s")
        _choice(self, "act", ACTIVATIONS)

    def out_shape(self, x: Shape) -> Shape:
        p = self.k // 2
        return Shape(self.out, conv_out(x.h, self.k, self.s, p), conv_out(x.w, self.k, self.s, p))

    def cost(self, x: Shape) -> Cost:
        y = self.out_shape(x)
        hw = y.h * y.w
        return _conv(x.c, x.c, self.k, hw, x.c, bn=False) + _conv(x.c, self.out, 1, hw)


@dataclass(frozen=True, kw_only=True)
class XceptionBlock(Block):
    """Xception block: `reps` × (ReLU, separable 3×3, BN), a 3×3 max pool when strided, plus a shortcut (a
    strided 1×1 conv + BN when the shape changes). `grow_first` widens in the first separable conv rather than
    the last; `start_relu=False` drops the leading ReLU (the first entry block)."""

    type: ClassVar[str] = "xception"
    reps: int
    s: int = 1
    start_relu: bool = True
    grow_first: bool = True

    def check(self, cin: int) -> None:
        _positive(self, "out", "reps", "s")

    def has_residual(self, cin: int) -> bool:
        return self.s == 1 and cin == self.out

    def sep_channels(self, cin: int) -> list[tuple[int, int]]:
        """(in, out) of each separable conv, in order."""
        if self.grow_first:
            return [(cin, self.out)] + [(self.out, self.out)] * (self.reps - 1)
        return [(cin, cin)] * (self.reps - 1) + [(cin, self.out)]

    def out_shape(self, x: Shape) -> Shape:
        return Shape(self.out, conv_out(x.h, 3, self.s, 1), conv_out(x.w, 3, self.s, 1))

    def cost(self, x: Shape) -> Cost:
        hw_in = x.h * x.w
        total = Cost()
        for cin, cout in self.sep_channels(x.c):
            total += _conv(cin, cin, 3, hw_in, cin, bn=False) + _conv(cin, cout, 1, hw_in)
        if not self.has_residual(x.c):
            y = self.out_shape(x)
            total += _conv(x.c, self.out, 1, y.h * y.w)
        return total


BLOCK_TYPES: dict[str, type[Block]] = {
    cls.type: cls
    for cls in (
        Conv,
        Pool,
        DepthwiseSeparable,
        InvertedResidual,
        Ghost,
        ShuffleV1,
        ShuffleV2,
        Fire,
        SeparableConv,
        XceptionBlock,
    )
}


# ---------------------------------------------------------------------------------------------- head


@dataclass(frozen=True, kw_only=True)
class Dense:
    """A hidden fully connected layer after global pooling (MobileNetV3's 1280-wide layer)."""

    out: int
    act: str = "hswish"
    bias: bool = True


@dataclass(frozen=True, kw_only=True)
class Head:
    """Pre-pool `blocks`, global average pool, `hidden` dense layers, dropout, classifier.

    `classifier="conv"` is SqueezeNet's: a 1×1 conv with ReLU to the classes *before* pooling."""

    blocks: tuple[Block, ...] = ()
    hidden: tuple[Dense, ...] = ()
    dropout: float = 0.0
    classifier: str = "linear"
    classifier_bias: bool = True


# ---------------------------------------------------------------------------------------------- arch


@dataclass(frozen=True)
class BlockSite:
    """A block in its place: where it is (for messages and op keys), and the tensor shapes around it."""

    index: int
    path: str
    block: Block
    x: Shape
    y: Shape

    @property
    def cost(self) -> Cost:
        return self.block.cost(self.x)


@dataclass(frozen=True, kw_only=True)
class Arch:
    """A whole network. Frozen and validated: an `Arch` that exists can be built."""

    resolution: int
    num_classes: int
    stem: tuple[Block, ...]
    stages: tuple[tuple[Block, ...], ...]
    head: Head = field(default_factory=Head)
    in_channels: int = 3
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "stem", tuple(self.stem))
        object.__setattr__(self, "stages", tuple(tuple(stage) for stage in self.stages))
        check_name(self.name)
        check_int(self.resolution, "resolution", MAX_RESOLUTION, "MAX_RESOLUTION")
        check_int(self.num_classes, "num_classes", MAX_CLASSES, "MAX_CLASSES")
        check_int(self.in_channels, "in_channels", MAX_CHANNELS, "MAX_CHANNELS")
        check_count(self.stem, "stem")
        check_count(self.stages, "stages", MAX_STAGES, "MAX_STAGES")
        for s, stage in enumerate(self.stages):
            check_count(stage, f"stages[{s}]")
        h = self.head
        check_count(h.blocks, "head.blocks")
        check_count(h.hidden, "head.hidden")
        if h.classifier not in ("linear", "conv"):
            raise SpecError(f"head.classifier: must be 'linear' or 'conv', got {h.classifier!r}")
        if not isinstance(h.classifier_bias, bool):
            raise SpecError(f"head.classifier_bias: must be true or false, got {h.classifier_bias!r}")
        if h.classifier == "conv" and h.hidden:
            raise SpecError("head.hidden: a conv classifier takes no hidden dense layers")
        if isinstance(h.dropout, bool) or not isinstance(h.dropout, int | float) or not 0 <= h.dropout < 1:
            raise SpecError(f"head.dropout: must be a number in [0, 1), got {h.dropout!r}")
        for i, dense in enumerate(h.hidden):
            check_int(dense.out, f"head.hidden[{i}].out", MAX_CHANNELS, "MAX_CHANNELS")
            if dense.act not in ACTIVATIONS:
                raise SpecError(
                    f"head.hidden[{i}].act: must be one of {', '.join(ACTIVATIONS)}; got {dense.act!r}"
                )
            if not isinstance(dense.bias, bool):
                raise SpecError(f"head.hidden[{i}].bias: must be true or false, got {dense.bias!r}")
        sites = list(self._walk())
        if sites and min(sites[-1].y.h, sites[-1].y.w) < 1:
            raise SpecError(f"resolution: {self.resolution} is too small for this network's strides")
        self._check_ceilings(sites)

    def _check_ceilings(self, sites: list[BlockSite]) -> None:
        """Parameters, MACs and the largest tensor within MAX_PARAMS, MAX_MACS and MAX_ACTIVATION, from the
        spec alone; the message names the first block (or head layer) that passes a ceiling. The total is kept
        for `costs()`."""
        x = Shape(self.in_channels, self.resolution, self.resolution)
        if x.c * x.h * x.w > MAX_ACTIVATION:
            raise SpecError(
                f"resolution: a {x} input has {x.c * x.h * x.w:,} values, above the limit of "
                f"{MAX_ACTIVATION:,} (MAX_ACTIVATION)"
            )
        total = Cost()
        steps = [(f"block {s.index} ({s.path}, {s.block.type})", s.cost, s.y) for s in sites]
        feat = sites[-1].y if sites else x
        steps += [(path, cost, None) for path, cost in self._head_costs(feat)]
        for where, cost, y in steps:
            if y is not None and y.c * y.h * y.w > MAX_ACTIVATION:
                raise SpecError(
                    f"{where}: its {y} output has {y.c * y.h * y.w:,} values, above the limit of "
                    f"{MAX_ACTIVATION:,} (MAX_ACTIVATION)"
                )
            total += cost
            for what, value, limit, label in (
                ("parameters", total.params, MAX_PARAMS, "MAX_PARAMS"),
                ("multiply-accumulates", total.macs, MAX_MACS, "MAX_MACS"),
            ):
                if value > limit:
                    raise SpecError(
                        f"{where}: the network reaches {value:,} {what} here, above the limit of {limit:,} ({label})"
                    )
        object.__setattr__(self, "_costs", total)

    # -- walking

    def _walk(self) -> Iterator[BlockSite]:
        x = Shape(self.in_channels, self.resolution, self.resolution)
        for index, (path, block) in enumerate(self.paths()):
            if not isinstance(block, Block):
                raise SpecError(f"block {index} ({path}): not a block: {block!r}")
            try:
                block.check(x.c)
            except _FieldError as err:
                raise SpecError(f"block {index} ({path}, {block.type}).{err.field}: {err.message}") from None
            y = block.out_shape(x)
            if y.h < 1 or y.w < 1:
                raise SpecError(f"block {index} ({path}, {block.type}): input {x} is too small for it")
            yield BlockSite(index, path, block, x, y)
            x = y

    def paths(self) -> Iterator[tuple[str, Block]]:
        """Every block before the pool, with its path: 'stem[0]', 'stages[2][1]', 'head.blocks[0]'."""
        for i, block in enumerate(self.stem):
            yield f"stem[{i}]", block
        for s, stage in enumerate(self.stages):
            for i, block in enumerate(stage):
                yield f"stages[{s}][{i}]", block
        for i, block in enumerate(self.head.blocks):
            yield f"head.blocks[{i}]", block

    def sites(self) -> list[BlockSite]:
        return list(self._walk())

    @property
    def blocks(self) -> list[Block]:
        return [block for _, block in self.paths()]

    @property
    def features(self) -> Shape:
        """Shape of the tensor that reaches the global pool (before a conv classifier)."""
        sites = self.sites()
        return sites[-1].y if sites else Shape(self.in_channels, self.resolution, self.resolution)

    # -- costs

    def head_costs(self) -> list[tuple[str, Cost]]:
        """Costs after the last block: hidden dense layers and the classifier."""
        return self._head_costs(self.features)

    def _head_costs(self, feat: Shape) -> list[tuple[str, Cost]]:
        out: list[tuple[str, Cost]] = []
        width = feat.c
        for i, dense in enumerate(self.head.hidden):
            out.append(
                (
                    f"head.hidden[{i}]",
                    Cost(width * dense.out + (dense.out if dense.bias else 0), width * dense.out),
                )
            )
            width = dense.out
        n = self.num_classes
        hw = feat.h * feat.w if self.head.classifier == "conv" else 1
        out.append(("head.classifier", _conv(width, n, 1, hw, bias=self.head.classifier_bias, bn=False)))
        return out

    def costs(self) -> Cost:
        """Parameters and MACs of the whole network (summed once, when the spec was checked)."""
        return self._costs  # type: ignore[attr-defined]

    @property
    def params(self) -> int:
        return self.costs().params

    @property
    def macs(self) -> int:
        return self.costs().macs

    # -- identity and serialisation

    def to_dict(self) -> dict[str, Any]:
        h = self.head
        return {
            "schema": SCHEMA,
            "name": self.name,
            "resolution": self.resolution,
            "in_channels": self.in_channels,
            "num_classes": self.num_classes,
            "stem": [b.to_dict() for b in self.stem],
            "stages": [[b.to_dict() for b in stage] for stage in self.stages],
            "head": {
                "blocks": [b.to_dict() for b in h.blocks],
                "hidden": [dataclasses.asdict(d) for d in h.hidden],
                "dropout": float(h.dropout),
                "classifier": h.classifier,
                "classifier_bias": h.classifier_bias,
            },
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True) + ("\n" if indent else "")

    @property
    def hash(self) -> str:
        """Content hash: equal for two specs that build the same network, whatever their names."""
        body = self.to_dict()
        del body["name"]
        return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[
            :16
        ]

    @classmethod
    def from_dict(cls, data: Any) -> Arch:
        if not isinstance(data, dict):
            raise SpecError("an architecture must be a JSON object")
        schema = data.get("schema", SCHEMA)
        if schema != SCHEMA:
            raise SpecError(f"schema: expected {SCHEMA!r}, got {schema!r}")
        known = {"schema", "name", "resolution", "in_channels", "num_classes", "stem", "stages", "head"}
        _no_unknown(data, known, "")
        for key in ("resolution", "num_classes", "stages"):
            if key not in data:
                raise SpecError(f"{key}: missing")
        stages = data["stages"]
        if not isinstance(stages, list) or not all(isinstance(s, list) for s in stages):
            raise SpecError("stages: must be a list of lists of blocks")
        check_count(stages, "stages", MAX_STAGES, "MAX_STAGES")
        for s, stage in enumerate(stages):
            check_count(stage, f"stages[{s}]")
        head = data.get("head", {})
        if not isinstance(head, dict):
            raise SpecError("head: must be an object")
        _no_unknown(head, {"blocks", "hidden", "dropout", "classifier", "classifier_bias"}, "head.")
        hidden = []
        for i, d in enumerate(_list(head.get("hidden", []), "head.hidden")):
            if not isinstance(d, dict):
                raise SpecError(f"head.hidden[{i}]: must be an object")
            _no_unknown(d, {"out", "act", "bias"}, f"head.hidden[{i}].")
            try:
                hidden.append(Dense(**d))
            except TypeError as err:
                raise SpecError(f"head.hidden[{i}]: {err}") from None
        name = data.get("name", "")
        if not isinstance(name, str):
            raise SpecError(f"name: must be a string, got {name!r}")
        return cls(
            name=name,
            resolution=data["resolution"],
            in_channels=data.get("in_channels", 3),
            num_classes=data["num_classes"],
            stem=[
                block_from_dict(b, f"stem[{i}]") for i, b in enumerate(_list(data.get("stem", []), "stem"))
            ],
            stages=[
                [block_from_dict(b, f"stages[{s}][{i}]") for i, b in enumerate(stage)]
                for s, stage in enumerate(stages)
            ],
            head=Head(
                blocks=tuple(
                    block_from_dict(b, f"head.blocks[{i}]")
                    for i, b in enumerate(_list(head.get("blocks", []), "head.blocks"))
                ),
                hidden=tuple(hidden),
                dropout=head.get("dropout", 0.0),
                classifier=head.get("classifier", "linear"),
                classifier_bias=head.get("classifier_bias", True),
            ),
        )

    @classmethod
    def from_json(cls, text: str) -> Arch:
        """A spec from JSON text, read with the bounded parser of `nas.io` (size and nesting capped)."""
        try:
            data = parse_json(text, "architecture")
        except NasError as err:
            raise SpecError(str(err)) from None
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> Arch:
        return dataclasses.replace(self, **changes)

    def with_blocks(self, blocks: list[Block]) -> Arch:
        """The same network shape of lists (stem, stages, head blocks) holding `blocks` in `paths()` order."""
        it = iter(blocks)
        stem = [next(it) for _ in self.stem]
        stages = [[next(it) for _ in stage] for stage in self.stages]
        head_blocks = tuple(next(it) for _ in self.head.blocks)
        return self.replace(stem=stem, stages=stages, head=dataclasses.replace(self.head, blocks=head_blocks))


def check_name(name: Any) -> None:
    """Names become file names and text of generated modules: only a bounded, identifier-like string passes."""
    if not isinstance(name, str):
        raise SpecError(f"name: must be a string, got {type(name).__name__}")
    if name and (len(name) > NAME_MAX or not NAME_PATTERN.fullmatch(name)):
        shown = name if len(name) <= 40 else name[:40] + "…"
        raise SpecError(
            f"name: {shown!r} is not a valid name (at most {NAME_MAX} characters: letters, digits, '_', '.', "
            "'+', '-' and inner spaces)"
        )


def check_resolution(resolution: Any, minimum: int = 1) -> None:
    """A user's input resolution: an integer in [minimum, MAX_RESOLUTION]."""
    if (
        isinstance(resolution, bool)
        or not isinstance(resolution, int)
        or not minimum <= resolution <= MAX_RESOLUTION
    ):
        raise SpecError(f"resolution must be an integer from {minimum} to {MAX_RESOLUTION}, got {resolution!r}")


# The JSON types a block field of each annotation accepts (bool is refused where a number is meant).
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "int": ((int,), "an integer"),
    "int | None": ((int, type(None)), "an integer or null"),
    "float": ((int, float), "a number"),
    "bool": ((bool,), "true or false"),
    "str": ((str,), "a string"),
}


def _list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise SpecError(f"{where}: must be a list")
    check_count(value, where)
    return value


def _no_unknown(data: dict, known: set[str], prefix: str) -> None:
    unknown = sorted(set(data) - known)
    if unknown:
        raise SpecError(f"{prefix}{unknown[0]}: unknown field (known: {', '.join(sorted(known))})")


def block_from_dict(data: Any, where: str = "block") -> Block:
    if not isinstance(data, dict):
        raise SpecError(f"{where}: a block must be an object, got {data!r}")
    kind = data.get("type")
    cls = BLOCK_TYPES.get(kind)  # type: ignore[arg-type]
    if cls is None:
        raise SpecError(f"{where}.type: unknown block type {kind!r} (known: {', '.join(BLOCK_TYPES)})")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    args = {k: v for k, v in data.items() if k != "type"}
    _no_unknown(args, set(fields), f"{where}.")
    missing = [
        name
        for name, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and name not in args
    ]
    if missing:
        raise SpecError(f"{where}.{missing[0]}: missing (a {kind!r} block needs it)")
    for name, value in args.items():
        types, what = _FIELD_TYPES[str(fields[name].type)]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise SpecError(f"{where}.{name}: must be {what}, got {value!r}")
    return cls(**args)
