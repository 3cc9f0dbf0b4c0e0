"""MobileNetV1/V2/V3, MnasNet, ProxylessNAS, FBNet and EfficientNet-B0 as specs.

Each family is a function of (width, resolution, num_classes): a layer table of `nas.stages.Row`s resolved by
`nas.stages.StageBuilder` at the family's width, as the reference implementation named in its docstring
scales it (each docstring names the rounding rule; stem and head conv follow the family's own rule). Layer
tables are written out here (not decoded from block strings) so that `nas.block_strings` can be checked
against them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nas.arch import Arch, Block, Conv, Dense, Head, make_divisible
from nas.stages import Row, StageBuilder
from nas.zoo import Family, register


def _arch(resolution: int, num_classes: int, stem: Block, stages: list[list[Block]], head: Head) -> Arch:
    return Arch(resolution=resolution, num_classes=num_classes, stem=[stem], stages=stages, head=head)


def _se(ratio: float, source: str, gate: str, act: str) -> dict[str, Any]:
    """SE fields of a block with SE; none (the block type's defaults) without."""
    return {"se": ratio, "se_from": source, "se_gate": gate, "se_act": act} if ratio else {}


def _ir(row: tuple, act: str, se_from: str, se_gate: str, se_act: str | None = None) -> Row:
    """An inverted-residual row from (expansion, kernel, out, repeats, stride, se ratio, act or None: `act`);
    `se_act` None means the block's activation."""
    e, k, c, n, s, se, row_act = row
    a = row_act or act
    return Row("ir", c, n, s, k, e, a, _se(se, se_from, se_gate, se_act or a))


# ---------------------------------------------------------------------------------------------- MobileNetV1


def mobilenet_v1(width: float, resolution: int, num_classes: int) -> Arch:
    """MobileNetV1 (Howard et al. 2017), as timm's `_gen_mobilenet_v1`: depthwise-separable blocks with an
    activation after both convs and no residual, ReLU6, no last 1×1 conv (the classifier reads the 1024·α
    channels of the last block). Width: timm's round_chs_fn, make_divisible(c·α, 8) on the stem and every
    block; the paper's `int(c·α)` gives the same channels at the published widths."""
    table = [(64, 1, 1), (128, 2, 2), (256, 2, 2), (512, 6, 2), (1024, 2, 2)]  # (out, repeats, stride)
    ds = {"pw_act": True, "skip": False}
    rows = [[Row("ds", c, n, s, k=3, act="relu6", fields=ds)] for c, n, s in table]
    b = StageBuilder(width)
    stem = Conv(out=b.channels(32), k=3, s=2, act="relu6")
    return _arch(resolution, num_classes, stem, b.stages(rows, stem.out), Head())


register(
    Family(
        "mobilenet_v1",
        mobilenet_v1,
        widths=(1.0, 0.75, 0.5, 0.25),
        reference=lambda w: (
            ("MobileNetV1", f"{w:g}" if w != 1.0 else "1.0") if w in (1.0, 0.75, 0.5, 0.25) else None
        ),
        summary="MobileNetV1 (Howard et al. 2017); timm's mobilenetv1 layout",
    )
)


# ---------------------------------------------------------------------------------------------- MobileNetV2


def mobilenet_v2(width: float, resolution: int, num_classes: int) -> Arch:
    """MobileNetV2 (Sandler et al. 2018), as torchvision's `mobilenet_v2`. Width: torchvision's
    `_make_divisible(c·α, 8)` on the stem and every block, the last conv kept at 1280 below α = 1
    (make_divisible(1280·max(1, α))). Expansion from the rounded input channels: torchvision's
    round(in·t) equals make_divisible(in·t) here, every in being a multiple of 8 and t an integer."""
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2)]
    settings.append((6, 320, 1, 1))
    rows = [[Row("ir", c, n, s, k=3, e=t, act="relu6")] for t, c, n, s in settings]
    b = StageBuilder(width)
    stem = Conv(out=b.channels(32), k=3, s=2, act="relu6")
    last = make_divisible(1280 * max(1.0, width))
    head = Head(blocks=(Conv(out=last, k=1, act="relu6"),), dropout=0.2)
    return _arch(resolution, num_classes, stem, b.stages(rows, stem.out), head)


register(
    Family(
        "mobilenet_v2",
        mobilenet_v2,
        widths=(1.4, 1.0, 0.75, 0.5, 0.35),
        reference=lambda w: (
            ("MobileNetV2", f"{w:g}" if w != 1.0 else "1.0") if w in (1.4, 1.0, 0.75, 0.5) else None
        ),
        summary="MobileNetV2 (Sandler et al. 2018); torchvision's channel rounding",
    )
)


# ---------------------------------------------------------------------------------------------- MobileNetV3

# Rows: (expansion, kernel, out, repeats, stride, se ratio, act). SE width = make_divisible(mid/4),
# hard-sigmoid gate, ReLU inside (the InvertedResidual defaults).
_MNV3_LARGE = [
    [(4, 3, 24, 1, 2, 0.0, "relu"), (3, 3, 24, 1, 1, 0.0, "relu")],
    [(3, 5, 40, 3, 2, 0.25, "relu")],
    [(6, 3, 80, 1, 2, 0.0, None), (2.5, 3, 80, 1, 1, 0.0, None), (2.3, 3, 80, 2, 1, 0.0, None)],
    [(6, 3, 112, 2, 1, 0.25, None)],
    [(6, 5, 160, 3, 2, 0.25, None)],
]
_MNV3_SMALL = [
    [(4.5, 3, 24, 1, 2, 0.0, "relu"), (3.67, 3, 24, 1, 1, 0.0, "relu")],
    [(4, 5, 40, 1, 2, 0.25, None), (6, 5, 40, 2, 1, 0.25, None)],
    [(3, 5, 48, 2, 1, 0.25, None)],
    [(6, 5, 96, 3, 2, 0.25, None)],
]


def _mobilenet_v3(width: float, resolution: int, num_classes: int, small: bool) -> Arch:
    se = _se(0.25, "mid", "hsigmoid", "relu") if small else {}
    first = Row("ds", 16, stride=2 if small else 1, k=3, act="relu", fields=se)
    table = _MNV3_SMALL if small else _MNV3_LARGE
    middle = [[_ir(row, "hswish", "mid", "hsigmoid", "relu") for row in rows] for rows in table]
    last = Row("conv", 576 if small else 960, k=1, act="hswish")
    b = StageBuilder(width)
    stem = Conv(out=b.channels(16) if width >= 0.75 else 16, k=3, s=2, act="hswish")  # timm: fix_stem below 0.75
    head = Head(hidden=(Dense(out=1024 if small else 1280, act="hswish"),), dropout=0.2)
    return _arch(resolution, num_classes, stem, b.stages([[first], *middle, [last]], stem.out), head)


def mobilenet_v3_large(width: float, resolution: int, num_classes: int) -> Arch:
    """MobileNetV3-Large (Howard et al. 2019), as timm's `mobilenetv3_large_100/_075`: mid =
    make_divisible(in·e) from the paper's ratios, SE on make_divisible(mid/4), the 1280 hidden layer kept at
    every width. torchvision differs at 0.75 (it scales the absolute expansions and the head 1280→960; csv
    notes): we follow timm. Width: timm's round_chs_fn, make_divisible(c·α, 8) on every block and the 1×1
    conv to 960; the stem stays 16 below α = 0.75 (timm's fix_stem)."""
    return _mobilenet_v3(width, resolution, num_classes, small=False)


def mobilenet_v3_small(width: float, resolution: int, num_classes: int) -> Arch:
    """MobileNetV3-Small (Howard et al. 2019), as timm's `mobilenetv3_small_100/_075`; like the
    implementations (csv notes) and unlike the paper's Table 2, no SE on the last 1×1 conv. At 0.75 we follow
    timm (1024-wide hidden layer; torchvision scales it to 768). Width: as `mobilenet_v3_large` (the 1×1
    conv to 576 scales)."""
    return _mobilenet_v3(width, resolution, num_classes, small=True)


def _mnv3_reference(model: str) -> Callable[[float], tuple[str, str] | None]:
    return lambda w: (model, f"{w:g}" if w != 1.0 else "1.0") if w in (1.0, 0.75) else None


register(
    Family(
        "mobilenet_v3_large",
        mobilenet_v3_large,
        widths=(1.0, 0.75),
        reference=_mnv3_reference("MobileNetV3-Large"),
        summary="MobileNetV3-Large (Howard et al. 2019); timm's layout",
    )
)
register(
    Family(
        "mobilenet_v3_small",
        mobilenet_v3_small,
        widths=(1.0, 0.75),
        reference=_mnv3_reference("MobileNetV3-Small"),
        summary="MobileNetV3-Small (Howard et al. 2019); timm's layout",
    )
)


# ---------------------------------------------------------------------------------------------- MnasNet


def _mnasnet(width: float, resolution: int, num_classes: int, stem: int, first: Row, table: list[tuple]) -> Arch:
    """timm's MnasNet layout: stem, a depthwise-separable block, inverted residuals, 1×1 conv to 1280, ReLU;
    SE on round(in/4) channels (`se_from="in"`), sigmoid gate. Width, as the TF reference's round_filters, timm's
    round_chs_fn and torchvision's `_round_to_multiple_of(c·α, 8, round_up_bias=0.9)` (all three
    make_divisible(c·α, 8)): the stem and every block scale, the 1280-wide last conv does not."""
    b = StageBuilder(width)
    stem_conv = Conv(out=b.channels(stem), k=3, s=2, act="relu")
    rows = [[first], *([_ir(row, "relu", "in", "sigmoid")] for row in table)]
    head = Head(blocks=(Conv(out=1280, k=1, act="relu"),), dropout=0.2)
    return _arch(resolution, num_classes, stem_conv, b.stages(rows, stem_conv.out), head)


def mnasnet_a1(width: float, resolution: int, num_classes: int) -> Arch:
    """MnasNet-A1 (Tan et al. 2019), as timm's `semnasnet_100` (= the TF TPU reference, pytorchcv
    mnasnet_a1): SE width round(0.25 · block input channels), not make_divisible (csv notes). Width: see
    `_mnasnet` (timm's semnasnet_050/075/140; the TF reference publishes the 0.35–1.4 grid)."""
    table = [
        (6, 3, 24, 2, 2, 0.0, None),
        (3, 5, 40, 3, 2, 0.25, None),
        (6, 3, 80, 4, 2, 0.0, None),
        (6, 3, 112, 2, 1, 0.25, None),
        (6, 5, 160, 3, 2, 0.25, None),
        (6, 3, 320, 1, 1, 0.0, None),
    ]
    first = Row("ds", 16, k=3, fields={"skip": False})
    return _mnasnet(width, resolution, num_classes, 32, first, table)


def mnasnet_b1(width: float, resolution: int, num_classes: int) -> Arch:
    """MnasNet-B1 (Tan et al. 2019, the no-SE search space), as timm's `mnasnet_100` (= torchvision
    `mnasnet1_0`, pytorchcv mnasnet_b1). Width: see `_mnasnet` (torchvision's mnasnet0_5/0_75/1_3)."""
    table = [
        (3, 3, 24, 3, 2, 0.0, None),
        (3, 5, 40, 3, 2, 0.0, None),
        (6, 5, 80, 3, 2, 0.0, None),
        (6, 3, 96, 2, 1, 0.0, None),
        (6, 5, 192, 4, 2, 0.0, None),
        (6, 3, 320, 1, 1, 0.0, None),
    ]
    first = Row("ds", 16, k=3, fields={"skip": False})
    arch = _mnasnet(width, resolution, num_classes, 32, first, table)
    last = arch.stages[-1][-1].replace(skip=False)  # timm's `noskip` (no effect on a 192 → 320 block)
    return arch.replace(stages=[*arch.stages[:-1], [last]])


def mnasnet_small(width: float, resolution: int, num_classes: int) -> Arch:
    """MnasNet-small (Tan et al. 2019, the 'search2' model), as timm's `mnasnet_small` (= TF's mnasnet-small;
    MobileNetV3's 'Mnas-small' row quotes the search1 figures, csv notes). Width: see `_mnasnet`."""
    table = [
        (3, 3, 16, 1, 2, 0.0, None),
        (6, 3, 16, 2, 2, 0.0, None),
        (6, 5, 32, 4, 2, 0.25, None),
        (6, 3, 32, 3, 1, 0.25, None),
        (6, 5, 88, 3, 2, 0.25, None),
        (6, 3, 144, 1, 1, 0.0, None),
    ]
    return _mnasnet(width, resolution, num_classes, 8, Row("ds", 8, k=3), table)


register(
    Family(
        "mnasnet_a1",
        mnasnet_a1,
        any_width=True,
        reference=lambda w: ("MnasNet-A1", "1.0") if w == 1.0 else None,
        summary="MnasNet-A1 (Tan et al. 2019); timm semnasnet_100",
    )
)
register(
    Family(
        "mnasnet_b1",
        mnasnet_b1,
        any_width=True,
        reference=lambda w: ("MnasNet-B1", "1.0") if w == 1.0 else None,
        summary="MnasNet-B1 (Tan et al. 2019); torchvision mnasnet1_0",
    )
)
register(
    Family(
        "mnasnet_small",
        mnasnet_small,
        any_width=True,
        reference=lambda w: ("MnasNet-small", "1.0") if w == 1.0 else None,
        summary="MnasNet-small (Tan et al. 2019); timm mnasnet_small",
    )
)


# ---------------------------------------------------------------------------------------------- ProxylessNAS

# mit-han-lab's proxyless_mobile.config, stages of (out, kernel, expansion); a kernel of None is a zero op (an
# identity unit where the shape is kept). The first block of every stage but the first has stride 2.
_PROXYLESS = [
    [(16, 3, 1)],
    [(32, 5, 3), (32, 3, 3), (32, None, 0), (32, None, 0)],
    [(40, 7, 3), (40, 3, 3), (40, 5, 3), (40, 5, 3)],
    [(80, 7, 6), (80, 5, 3), (80, 5, 3), (80, 5, 3), (96, 5, 6), (96, 5, 3), (96, 5, 3), (96, 5, 3)],
    [(192, 7, 6), (192, 7, 6), (192, 7, 3), (192, 7, 3), (320, 7, 6)],
]


def proxylessnas_mobile(width: float, resolution: int, num_classes: int) -> Arch:
    """ProxylessNAS-mobile (Cai et al. 2019), as pytorchcv's `proxylessnas_mobile` (the layers of
    mit-han-lab's proxyless_mobile.config). ReLU6 throughout as the official code; pytorchcv puts ReLU on the
    stem and last conv (same parameters). Width, as the official code's `width_mult`: make_divisible(c·α, 8) on
    the stem and every block, the last conv 1280 unless α > 1 (make_divisible(1280·α, 8)); its mid
    round(in·e) equals make_divisible(in·e) here (every in a multiple of 8, e an integer)."""
    rows = [
        [
            Row("skip", c) if k is None else Row("ir", c, stride=2 if i and not j else 1, k=k, e=e, act="relu6")
            for j, (c, k, e) in enumerate(stage)
        ]
        for i, stage in enumerate(_PROXYLESS)
    ]
    b = StageBuilder(width)
    stem = Conv(out=b.channels(32), k=3, s=2, act="relu6")
    head = Head(blocks=(Conv(out=make_divisible(1280 * max(1.0, width)), k=1, act="relu6"),))
    return _arch(resolution, num_classes, stem, b.stages(rows, stem.out), head)


register(
    Family(
        "proxylessnas_mobile",
        proxylessnas_mobile,
        any_width=True,
        reference=lambda w: ("ProxylessNAS-mobile", "1.0") if w == 1.0 else None,
        summary="ProxylessNAS-mobile (Cai et al. 2019); pytorchcv proxylessnas_mobile",
    )
)


# ---------------------------------------------------------------------------------------------- FBNet

# mobile-vision's fbnet_modeldef_cls_fbnet.py: stages of (kernel, out, stride, expansion, groups); a kernel of
# None is a "skip" op, an identity here (it is only used where the shape is kept). Stage 0 is the stem.
_FBNET: dict[str, tuple[list[list[tuple]], int]] = {
    "a": (
        [
            [(None, 16, 1, 1, 1)],
            [(3, 24, 2, 3, 1), (3, 24, 1, 1, 1), (None, 24, 1, 1, 1), (None, 24, 1, 1, 1)],
            [(5, 32, 2, 6, 1), (3, 32, 1, 3, 1), (5, 32, 1, 1, 1), (3, 32, 1, 3, 1)],
            [
                (5, 64, 2, 6, 1),
                (5, 64, 1, 3, 1),
                (5, 64, 1, 1, 2),
                (5, 64, 1, 6, 1),
                (3, 112, 1, 6, 1),
                (5, 112, 1, 1, 2),
                (5, 112, 1, 3, 1),
                (3, 112, 1, 1, 2),
            ],
            [(5, 184, 2, 6, 1), (5, 184, 1, 6, 1), (5, 184, 1, 3, 1), (5, 184, 1, 6, 1), (5, 352, 1, 6, 1)],
        ],
        1504,
    ),
    "b": (
        [
            [(3, 16, 1, 1, 1)],
            [(3, 24, 2, 6, 1), (5, 24, 1, 1, 1), (3, 24, 1, 1, 1), (3, 24, 1, 1, 1)],
            [(5, 32, 2, 6, 1), (5, 32, 1, 3, 1), (3, 32, 1, 6, 1), (5, 32, 1, 6, 1)],
            [
                (5, 64, 2, 6, 1),
                (5, 64, 1, 6, 1),
                (None, 64, 1, 1, 1),
                (5, 64, 1, 3, 1),
                (5, 112, 1, 6, 1),
                (3, 112, 1, 1, 1),
                (5, 112, 1, 1, 1),
                (5, 112, 1, 3, 1),
            ],
            [(5, 184, 2, 6, 1), (5, 184, 1, 1, 1), (5, 184, 1, 6, 1), (5, 184, 1, 6, 1), (3, 352, 1, 6, 1)],
        ],
        1984,
    ),
    "c": (
        [
            [(3, 16, 1, 1, 1)],
            [(3, 24, 2, 6, 1), (None, 24, 1, 1, 1), (3, 24, 1, 1, 1), (3, 24, 1, 1, 1)],
            [(5, 32, 2, 6, 1), (5, 32, 1, 3, 1), (5, 32, 1, 6, 1), (3, 32, 1, 6, 1)],
            [
                (5, 64, 2, 6, 1),
                (5, 64, 1, 3, 1),
                (5, 64, 1, 6, 1),
                (5, 64, 1, 6, 1),
                (5, 112, 1, 6, 1),
                (5, 112, 1, 6, 1),
                (5, 112, 1, 6, 1),
                (5, 112, 1, 3, 1),
            ],
            [(5, 184, 2, 6, 1), (5, 184, 1, 6, 1), (5, 184, 1, 6, 1), (5, 184, 1, 6, 1), (3, 352, 1, 6, 1)],
        ],
        1984,
    ),
}


def _fbnet_ir(groups: int) -> dict[str, Any]:
    return {"groups": groups, "bias": True}


def _fbnet(variant: str, width: float, resolution: int, num_classes: int) -> Arch:
    """FBNet (Wu et al. 2019) as facebookresearch/mobile-vision's fbnet_v2 `fbnet_<variant>`: every conv has a
    bias, the `_g2` ops group the 1×1 convs in two and shuffle channels, mid = make_divisible(in · e).
    timm's `fbnetc_100` (no conv biases, its own reading of the paper) differs: we follow mobile-vision.
    Width, as mobile-vision's FBNetBuilder(width_ratio, width_divisor=8): every conv of the model definition,
    the stem and the last 1×1 conv included, gets make_divisible(int(c·α), 8) (the product truncated first).
    mobile-vision publishes 1.0 only (its FBNet-96-0.35-1 writes its channels out)."""
    table, last = _FBNET[variant]
    rows = [
        [
            Row("skip", c, stride=s) if k is None else Row("ir", c, stride=s, k=k, e=e, fields=_fbnet_ir(g))
            for k, c, s, e, g in stage
        ]
        for stage in table
    ]
    b = StageBuilder(width, truncate=True)
    stem = Conv(out=b.channels(16), k=3, s=2, bias=True)
    head = Head(blocks=(Conv(out=b.channels(last), k=1, bias=True),))
    return _arch(resolution, num_classes, stem, b.stages(rows, stem.out), head)


def fbnet_a(width: float, resolution: int, num_classes: int) -> Arch:
    """FBNet-A (Wu et al. 2019), as mobile-vision's `fbnet_a` (see `_fbnet`)."""
    return _fbnet("a", width, resolution, num_classes)


def fbnet_b(width: float, resolution: int, num_classes: int) -> Arch:
    """FBNet-B (Wu et al. 2019), as mobile-vision's `fbnet_b` (see `_fbnet`)."""
    return _fbnet("b", width, resolution, num_classes)


def fbnet_c(width: float, resolution: int, num_classes: int) -> Arch:
    """FBNet-C (Wu et al. 2019), as mobile-vision's `fbnet_c` (see `_fbnet`); timm's fbnetc_100 has no conv
    biases (its parameter count is in the csv)."""
    return _fbnet("c", width, resolution, num_classes)


for _variant, _make in (("A", fbnet_a), ("B", fbnet_b), ("C", fbnet_c)):
    register(
        Family(
            f"fbnet_{_variant.lower()}",
            _make,
            any_width=True,
            reference=lambda w, v=_variant: ("FBNet", v) if w == 1.0 else None,
            summary=f"FBNet-{_variant} (Wu et al. 2019); mobile-vision fbnet_v2",
        )
    )


# ---------------------------------------------------------------------------------------------- EfficientNet


def efficientnet_b0(width: float, resolution: int, num_classes: int) -> Arch:
    """EfficientNet-B0 (Tan & Le 2019), as torchvision's `efficientnet_b0` (= timm): swish, SE on
    0.25 · block input channels with a sigmoid gate, the first block depthwise-separable (no expansion).
    Width (the channel multiplier of compound scaling, depth kept), as the TF reference's round_filters and
    timm's round_chs_fn: make_divisible(c·α, 8) on the stem, every block and the 1280-wide last conv."""
    table = [
        (6, 3, 24, 2, 2, 0.25, None),
        (6, 5, 40, 2, 2, 0.25, None),
        (6, 3, 80, 3, 2, 0.25, None),
        (6, 5, 112, 3, 1, 0.25, None),
        (6, 5, 192, 4, 2, 0.25, None),
        (6, 3, 320, 1, 1, 0.25, None),
    ]
    first = Row("ds", 16, k=3, act="swish", fields=_se(0.25, "in", "sigmoid", "swish"))
    rows = [[first], *([_ir(row, "swish", "in", "sigmoid", "swish")] for row in table)]
    b = StageBuilder(width)
    stem = Conv(out=b.channels(32), k=3, s=2, act="swish")
    head = Head(blocks=(Conv(out=b.channels(1280), k=1, act="swish"),), dropout=0.2)
    return _arch(resolution, num_classes, stem, b.stages(rows, stem.out), head)


register(
    Family(
        "efficientnet_b0",
        efficientnet_b0,
        any_width=True,
        reference=lambda w: ("EfficientNet-B0", "-") if w == 1.0 else None,
        summary="EfficientNet-B0 (Tan & Le 2019); torchvision efficientnet_b0",
    )
)
