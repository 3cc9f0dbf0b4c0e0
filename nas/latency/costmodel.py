"""An op's primitive layers, counted from its shape and block alone (no torch), and the Pixel 1 cost model that
prices them.

`layers(x, block)` lists what the op's module computes, layer by layer, as `nas.model` builds it: convolutions
(dense or depthwise), fully connected layers, and the element-wise ops a mobile runtime does not fuse into a
convolution (hard-swish, swish, sigmoid gates, squeeze-excite pooling and scaling, residual adds, pooling,
concatenation, channel shuffles; ReLU/ReLU6 and BatchNorm fold away). tests/test_latency_costmodel.py checks
every count against the aten ops the module dispatches when it runs.

The cost of a network is the sum over its layers (the model's structure; why in docs/latency.md):

    ms = a·dense_MMACs + Σ_depthwise b_k·max(MACs, r·bytes) + c·elementwise_Melems_read + d·layers + g

- dense MACs run at the GEMM's rate; depthwise convolutions are roofline-priced: a layer moves
  `bytes = 4·(inputs + outputs + weights)` and costs whichever of its MACs or `r`·bytes is larger (narrow
  layers are memory-bound), with one rate for the 3×3 kernels (a dedicated kernel in TFLite) and one for others;
- element-wise ops are priced by the elements they read (memory traffic, the ShuffleNetV2 guideline G4);
- every layer pays a fixed dispatch cost `d`, every network `g` once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from nas.arch import (
    Arch,
    Block,
    Conv,
    DepthwiseSeparable,
    Fire,
    Ghost,
    InvertedResidual,
    Pool,
    SeparableConv,
    Shape,
    ShuffleV1,
    ShuffleV2,
    XceptionBlock,
    conv_out,
)
from nas.errors import NasError

MODEL_FORMAT = "nas.pixel1-cost/2"
FEATURES = ("dense_mmacs", "dw3_mmacs", "dwk_mmacs", "elementwise_melems", "layers")
FUSED_ACTS = ("none", "relu", "relu6")  # folded into the conv before them


class Layer(NamedTuple):
    """One primitive layer: kind ("conv", "dw", "fc", "elt"), MACs, elements read, elements written, weights,
    kernel size (convolutions)."""

    kind: str
    macs: int
    reads: int
    writes: int
    weights: int = 0
    k: int = 0


def conv_layer(cin: int, cout: int, k: int, h_out: int, w_out: int, groups: int, h_in: int, w_in: int) -> Layer:
    per_out = (cin // groups) * k * k
    writes = cout * h_out * w_out
    kind = "dw" if groups > 1 and cin // groups == 1 else "conv"
    return Layer(kind, writes * per_out, cin * h_in * w_in, writes, cout * per_out, k)


def _conv(cin: int, cout: int, k: int, s: int, x: Shape, groups: int = 1, act: str = "none", pad: int | None = None):
    p = k // 2 if pad is None else pad
    h, w = conv_out(x.h, k, s, p), conv_out(x.w, k, s, p)
    out = [conv_layer(cin, cout, k, h, w, groups, x.h, x.w)]
    if act not in FUSED_ACTS:
        out.append(_elt(cout * h * w))
    return out, Shape(cout, h, w)


def _elt(n_out: int, n_in: int | None = None) -> Layer:
    return Layer("elt", 0, n_out if n_in is None else n_in, n_out)


def _se(x: Shape, rd: int, act: str) -> list[Layer]:
    """Squeeze-excite on x: pool, reduce (bias), act, expand (bias), gate, scale."""
    hw, c = x.h * x.w, x.c
    out = [_elt(c, c * hw), conv_layer(c, rd, 1, 1, 1, 1, 1, 1)]
    if act not in FUSED_ACTS:
        out.append(_elt(rd))
    return [*out, conv_layer(rd, c, 1, 1, 1, 1, 1, 1), _elt(c), _elt(c * hw, c * hw + c)]


def _add(y: Shape) -> Layer:
    n = y.c * y.h * y.w
    return _elt(n, 2 * n)


def layers(x: Shape, block: Block) -> list[Layer]:
    """The primitive layers of `block` applied to an input of shape `x`."""
    fn = _BLOCKS.get(type(block))
    if fn is None:
        raise NasError(f"the cost model cannot price block type {block.type!r}")
    return fn(x, block)


def _conv_block(x: Shape, b: Conv) -> list[Layer]:
    return _conv(x.c, b.out, b.k, b.s, x, b.groups, b.act, b.padding)[0]


def _pool(x: Shape, b: Pool) -> list[Layer]:
    y = b.out_shape(x)
    return [_elt(y.c * y.h * y.w, x.c * x.h * x.w)]


def _ds(x: Shape, b: DepthwiseSeparable) -> list[Layer]:
    out, y = _conv(x.c, x.c, b.k, b.s, x, x.c, b.act)
    if b.se:
        out += _se(y, b.se_channels(x.c), b.se_act)
    pw, y = _conv(x.c, b.out, 1, 1, y, 1, b.act if b.pw_act else "none")
    out += pw
    return out + ([_add(y)] if b.has_residual(x.c) else [])


def _shuffle(x: Shape) -> Layer:
    n = x.c * x.h * x.w
    return _elt(n, n)


def _ir(x: Shape, b: InvertedResidual) -> list[Layer]:
    out: list[Layer] = []
    y = x
    if b.has_expand(x.c):
        out, y = _conv(x.c, b.mid, 1, 1, x, b.groups, b.act)
    if b.groups > 1:
        out.append(_shuffle(y))
    dw, y = _conv(b.mid, b.mid, b.k, b.s, y, b.mid, b.act)
    out += dw
    if b.se:
        out += _se(y, b.se_channels(x.c), b.se_act)
    pw, y = _conv(b.mid, b.out, 1, 1, y, b.groups)
    out += pw
    return out + ([_add(y)] if b.has_residual(x.c) else [])


def _ghost_module(x: Shape, cout: int) -> tuple[list[Layer], Shape]:
    init = math.ceil(cout / 2)
    out, y = _conv(x.c, init, 1, 1, x)
    cheap, _ = _conv(init, init, 3, 1, y, init)
    n = init * y.h * y.w
    return [*out, *cheap, _elt(2 * n, 2 * n)], Shape(cout, y.h, y.w)


def _ghost(x: Shape, b: Ghost) -> list[Layer]:
    out, y = _ghost_module(x, b.mid)
    if b.s > 1:
        dw, y = _conv(b.mid, b.mid, b.k, b.s, y, b.mid)
        out += dw
    if b.se:
        out += _se(y, b.se_channels(x.c), "relu")
    g2, y = _ghost_module(y, b.out)
    out += g2
    if not b.has_residual(x.c):
        dw, z = _conv(x.c, x.c, b.k, b.s, x, x.c)
        pw, _ = _conv(x.c, b.out, 1, 1, z)
        out += dw + pw
    return [*out, _add(y)]


def _shuffle_v1(x: Shape, b: ShuffleV1) -> list[Layer]:
    out, y = _conv(x.c, b.mid, 1, 1, x, b.groups if b.first_group else 1)
    if b.groups > 1:
        out.append(_shuffle(y))
    dw, y = _conv(b.mid, b.mid, 3, b.s, y, b.mid)
    pw, y = _conv(b.mid, b.branch_out(x.c), 1, 1, y, b.groups)
    out += dw + pw
    if b.s > 1:
        hw = y.h * y.w
        return [*out, _elt(x.c * hw, x.c * x.h * x.w), _elt(b.out * hw, b.out * hw)]
    return [*out, _add(y)]


def _shuffle_v2(x: Shape, b: ShuffleV2) -> list[Layer]:
    half = b.out // 2
    out: list[Layer] = []
    if b.s > 1:
        dw, y = _conv(x.c, x.c, 3, b.s, x, x.c)
        pw, _ = _conv(x.c, half, 1, 1, y)
        out += dw + pw
        right_in = x
    else:
        right_in = Shape(half, x.h, x.w)
    c1, y = _conv(right_in.c, half, 1, 1, right_in)
    dw, y = _conv(half, half, 3, b.s, y, half)
    c2, y = _conv(half, half, 1, 1, y)
    n = b.out * y.h * y.w
    return [*out, *c1, *dw, *c2, _elt(n, n), _shuffle(Shape(b.out, y.h, y.w))]


def _fire(x: Shape, b: Fire) -> list[Layer]:
    sq, y = _conv(x.c, b.squeeze, 1, 1, x)
    e1, _ = _conv(b.squeeze, b.e1, 1, 1, y)
    e3, _ = _conv(b.squeeze, b.out - b.e1, 3, 1, y)
    n = b.out * y.h * y.w
    return [*sq, *e1, *e3, _elt(n, n)]


def _sep(x: Shape, cin: int, cout: int, k: int, s: int, act: str) -> tuple[list[Layer], Shape]:
    dw, y = _conv(cin, cin, k, s, x, cin)
    pw, y = _conv(cin, cout, 1, 1, y, 1, act)
    return dw + pw, y


def _sep_block(x: Shape, b: SeparableConv) -> list[Layer]:
    return _sep(x, x.c, b.out, b.k, b.s, b.act)[0]


def _xception(x: Shape, b: XceptionBlock) -> list[Layer]:
    out: list[Layer] = []
    y = x
    for cin, cout in b.sep_channels(x.c):
        sep, y = _sep(Shape(cin, y.h, y.w), cin, cout, 3, 1, "none")
        out += sep
    if b.s > 1:
        z = Shape(y.c, conv_out(y.h, 3, b.s, 1), conv_out(y.w, 3, b.s, 1))
        out.append(_elt(z.c * z.h * z.w, y.c * y.h * y.w))
        y = z
    if not b.has_residual(x.c):
        out += _conv(x.c, b.out, 1, b.s, x)[0]
    return [*out, _add(y)]


_BLOCKS: dict[type, Callable[[Shape, Any], list[Layer]]] = {
    Conv: _conv_block,
    Pool: _pool,
    DepthwiseSeparable: _ds,
    InvertedResidual: _ir,
    Ghost: _ghost,
    ShuffleV1: _shuffle_v1,
    ShuffleV2: _shuffle_v2,
    Fire: _fire,
    SeparableConv: _sep_block,
    XceptionBlock: _xception,
}


def head_layers(head: Arch) -> list[Layer]:
    """Layers of a head op (`nas.latency.keys.head_arch`): the pool, hidden dense layers and classifier."""
    x = Shape(head.in_channels, head.resolution, head.resolution)
    hw = x.h * x.w
    if head.head.classifier == "conv":
        out, y = _conv(x.c, head.num_classes, 1, 1, x)
        return [*out, _elt(y.c, y.c * hw)]
    out = [_elt(x.c, x.c * hw)]
    width = x.c
    for dense in head.head.hidden:
        out.append(Layer("fc", width * dense.out, width, dense.out, width * dense.out))
        if dense.act not in FUSED_ACTS:
            out.append(_elt(dense.out))
        width = dense.out
    out.append(Layer("fc", width * head.num_classes, width, head.num_classes, width * head.num_classes))
    return out


def features(rows: list[Layer], ridge: float) -> list[float]:
    """The model's feature vector (FEATURES order) of a list of layers; `ridge` is r in MACs per byte."""
    dense = dw3 = dwk = elt = 0.0
    for layer in rows:
        if layer.kind == "dw":
            cost = max(layer.macs, ridge * 4 * (layer.reads + layer.writes + layer.weights))
            if layer.k == 3:
                dw3 += cost
            else:
                dwk += cost
        elif layer.kind == "elt":
            elt += layer.reads
        else:
            dense += layer.macs
    return [dense / 1e6, dw3 / 1e6, dwk / 1e6, elt / 1e6, float(len(rows))]


def make_estimator(model: dict[str, Any]) -> Callable[[Shape | None, Block | None, Arch | None, str], float]:
    """ms of one op under a stored cost model: (x, block) for a block, the head arch (or its key) for a head,
    key `input:` for the per-network cost."""
    if model.get("format") != MODEL_FORMAT:
        raise NasError(f"cost model format {model.get('format')!r} is not {MODEL_FORMAT!r}; regenerate the table")
    coef = [float(model["coef"][name]) for name in FEATURES]
    per_network = float(model["coef"]["network_ms"])
    ridge = float(model["dw_ridge_macs_per_byte"])

    def estimate(x: Shape | None, block: Block | None, arch: Arch | None, key: str) -> float:
        if key.startswith("input:"):
            return per_network
        if block is not None and x is not None:
            rows = layers(x, block)
        else:
            from nas.latency.keys import head_arch

            rows = head_layers(head_arch(key))
        return sum(c * f for c, f in zip(coef, features(rows, ridge), strict=True))

    return estimate
