"""ShuffleNetV1/V2, GhostNet, SqueezeNet and Xception as specs.

Each family follows the reference implementation named in its docstring (the one `model_zoo.csv`
counts), layer for layer, so that parameters match it exactly. Published widths take the reference's
channel tables; other widths scale every channel count and round it with `make_divisible` to what the
block's groups allow.
"""

from __future__ import annotations

from nas.arch import (
    Arch,
    Block,
    Conv,
    Dense,
    Fire,
    Ghost,
    Head,
    Pool,
    SeparableConv,
    ShuffleV1,
    ShuffleV2,
    XceptionBlock,
    make_divisible,
)
from nas.zoo import Family, register


def _size(width: float) -> str:
    """megvii/torchvision size label of a width: 0.5 → '0.5x'."""
    return f"{width:.1f}x"


# ---------------------------------------------------------------------------------------------- ShuffleNetV1

# megvii-model/ShuffleNet-Series ShuffleNetV1/network.py: (stem, stage 2, 3, 4 channels) per group and size.
_SHUFFLE_V1_CHANNELS: dict[int, dict[float, tuple[int, int, int, int]]] = {
    3: {
        0.5: (12, 120, 240, 480),
        1.0: (24, 240, 480, 960),
        1.5: (24, 360, 720, 1440),
        2.0: (48, 480, 960, 1920),
    },
    8: {
        0.5: (16, 192, 384, 768),
        1.0: (24, 384, 768, 1536),
        1.5: (24, 576, 1152, 2304),
        2.0: (48, 768, 1536, 3072),
    },
}


def shufflenet_v1(groups: int, width: float, resolution: int, num_classes: int) -> Arch:
    """ShuffleNetV1 (Zhang et al. 2018) as megvii's ShuffleNet-Series code (the authors' own): mid = out // 4,
    the first 1×1 of stage 2 unit 1 ungrouped, a classifier without bias.
    Implementations disagree on that bias: we follow megvii; pytorchcv's `shufflenet_g*` has one (+1000)."""
    channels = _SHUFFLE_V1_CHANNELS[groups].get(width)
    if channels is None:
        # Stages a multiple of 4·groups so that mid and every grouped conv divide; stem a multiple of groups.
        base = _SHUFFLE_V1_CHANNELS[groups][1.0]
        channels = (
            make_divisible(base[0] * width, groups),
            *(make_divisible(c * width, 4 * groups) for c in base[1:]),
        )
    stem, *stage_out = channels
    stages = []
    for s, (out, repeats) in enumerate(zip(stage_out, (4, 8, 4), strict=True)):
        stages.append(
            [
                ShuffleV1(
                    out=out,
                    mid=out // 4,
                    groups=groups,
                    s=2 if i == 0 else 1,
                    first_group=not (s == 0 and i == 0),
                )
                for i in range(repeats)
            ]
        )
    return Arch(
        resolution=resolution,
        num_classes=num_classes,
        stem=[Conv(out=stem, k=3, s=2), Pool(out=stem, kind="max", k=3, s=2, pad=1)],
        stages=stages,
        head=Head(classifier_bias=False),
    )


def _shufflenet_v1_g3(width: float, resolution: int, num_classes: int) -> Arch:
    return shufflenet_v1(3, width, resolution, num_classes)


def _shufflenet_v1_g8(width: float, resolution: int, num_classes: int) -> Arch:
    return shufflenet_v1(8, width, resolution, num_classes)


register(
    Family(
        "shufflenet_v1_g3",
        _shufflenet_v1_g3,
        widths=(0.5, 1.0, 1.5, 2.0),
        reference=lambda w: ("ShuffleNetV1", f"{_size(w)} g=3") if w in (0.5, 1.0, 1.5, 2.0) else None,
        summary="ShuffleNetV1 g=3 (Zhang et al. 2018); megvii ShuffleNet-Series channels, FC without bias",
    )
)
register(
    Family(
        "shufflenet_v1_g8",
        _shufflenet_v1_g8,
        widths=(1.0,),
        reference=lambda w: ("ShuffleNetV1", "1.0x g=8") if w == 1.0 else None,
        summary="ShuffleNetV1 g=8 (Zhang et al. 2018); megvii ShuffleNet-Series channels, FC without bias",
    )
)


# ---------------------------------------------------------------------------------------------- ShuffleNetV2

# torchvision shufflenetv2.py `stages_out_channels` (after the 24-channel stem): stages 2–4 and the last conv.
_SHUFFLE_V2_CHANNELS: dict[float, tuple[int, int, int, int]] = {
    0.5: (48, 96, 192, 1024),
    1.0: (116, 232, 464, 1024),
    1.5: (176, 352, 704, 1024),
    2.0: (244, 488, 976, 2048),
}


def shufflenet_v2(width: float, resolution: int, num_classes: int) -> Arch:
    """ShuffleNetV2 (Ma et al. 2018) as torchvision's `shufflenet_v2_x*`: 24-channel stem + max pool,
    stages of 4/8/4 units, a 1×1 conv to 1024 (2048 at 2.0×), linear classifier with bias.
    MACs count convs and the classifier only, which the paper's FLOPs exceed a little (docs/zoo.md)."""
    channels = _SHUFFLE_V2_CHANNELS.get(width)
    if channels is None:
        base = _SHUFFLE_V2_CHANNELS[1.0]
        channels = (*(make_divisible(c * width, 4) for c in base[:3]), 2048 if width > 1.5 else 1024)
    *stage_out, last = channels
    stages = [
        [ShuffleV2(out=out, s=2 if i == 0 else 1) for i in range(repeats)]
        for out, repeats in zip(stage_out, (4, 8, 4), strict=True)
    ]
    return Arch(
        resolution=resolution,
        num_classes=num_classes,
        stem=[Conv(out=24, k=3, s=2), Pool(out=24, kind="max", k=3, s=2, pad=1)],
        stages=stages,
        head=Head(blocks=(Conv(out=last, k=1),)),
    )


register(
    Family(
        "shufflenet_v2",
        shufflenet_v2,
        widths=(0.5, 1.0, 1.5, 2.0),
        reference=lambda w: ("ShuffleNetV2", _size(w)) if w in (0.5, 1.0, 1.5, 2.0) else None,
        summary="ShuffleNetV2 (Ma et al. 2018); torchvision",
    )
)


# ---------------------------------------------------------------------------------------------- GhostNet

# timm ghostnet.py cfgs, one row per block: (kernel, expansion channels, out channels, SE ratio, stride).
_GHOSTNET_STAGES: tuple[tuple[tuple[int, int, int, float, int], ...], ...] = (
    ((3, 16, 16, 0, 1),),
    ((3, 48, 24, 0, 2),),
    ((3, 72, 24, 0, 1),),
    ((5, 72, 40, 0.25, 2),),
    ((5, 120, 40, 0.25, 1),),
    ((3, 240, 80, 0, 2),),
    (
        (3, 200, 80, 0, 1),
        (3, 184, 80, 0, 1),
        (3, 184, 80, 0, 1),
        (3, 480, 112, 0.25, 1),
        (3, 672, 112, 0.25, 1),
    ),
    ((5, 672, 160, 0.25, 2),),
    ((5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1), (5, 960, 160, 0, 1), (5, 960, 160, 0.25, 1)),
)


def ghostnet(width: float, resolution: int, num_classes: int) -> Arch:
    """GhostNet (Han et al. 2020) as timm's `ghostnet_050/100/130` (a port of huawei-noah's code): every
    channel count make_divisible(c·w, 4), SE width make_divisible(mid/4, 4) with a hard-sigmoid gate, a 1×1
    conv to 960·w before the pool and a 1280-wide dense layer (bias, ReLU; not scaled by the width) after it.
    Implementations disagree slightly: we follow timm, not pytorchcv's `ghostnet` (docs/zoo.md)."""
    c = lambda v: make_divisible(v * width, 4)  # noqa: E731
    stages = [
        [Ghost(out=c(out), mid=c(mid), k=k, s=s, se=se) for k, mid, out, se, s in stage]
        for stage in _GHOSTNET_STAGES
    ]
    return Arch(
        resolution=resolution,
        num_classes=num_classes,
        stem=[Conv(out=c(16), k=3, s=2)],
        stages=stages,
        head=Head(
            blocks=(Conv(out=c(960), k=1),), hidden=(Dense(out=1280, act="relu", bias=True),), dropout=0.2
        ),
    )


register(
    Family(
        "ghostnet",
        ghostnet,
        widths=(0.5, 1.0, 1.3),
        reference=lambda w: ("GhostNet", _size(w)) if w in (0.5, 1.0, 1.3) else None,
        summary="GhostNet (Han et al. 2020); timm ghostnet_*, channels make_divisible(c·w, 4)",
    )
)


# ---------------------------------------------------------------------------------------------- SqueezeNet


def _fire(squeeze: int, expand: int) -> Fire:
    return Fire(out=2 * expand, squeeze=squeeze, e1=expand)


def _squeeze_pool(ch: int) -> Pool:
    return Pool(out=ch, kind="max", k=3, s=2, pad=0, ceil=True)


def squeezenet_1_0(width: float, resolution: int, num_classes: int) -> Arch:
    """SqueezeNet 1.0 (Iandola et al. 2016) as torchvision's `squeezenet1_0`: 7×7/2 conv without padding,
    max pools with ceil_mode, biased convs without BN, a 1×1 conv classifier (ReLU) before the pool.
    Follows torchvision's input 224, not the paper's (Caffe) 227."""
    return Arch(
        resolution=resolution,
        num_classes=num_classes,
        stem=[Conv(out=96, k=7, s=2, pad=0, bn=False, bias=True), _squeeze_pool(96)],
        stages=[
            [_fire(16, 64), _fire(16, 64), _fire(32, 128), _squeeze_pool(256)],
            [_fire(32, 128), _fire(48, 192), _fire(48, 192), _fire(64, 256), _squeeze_pool(512)],
            [_fire(64, 256)],
        ],
        head=Head(dropout=0.5, classifier="conv"),
    )


def squeezenet_1_1(width: float, resolution: int, num_classes: int) -> Arch:
    """SqueezeNet 1.1 (forresti/SqueezeNet v1.1) as torchvision's `squeezenet1_1`: a 3×3/2 64-channel first
    conv and the pools moved earlier (after fire 3 and fire 5); same head as 1.0."""
    return Arch(
        resolution=resolution,
        num_classes=num_classes,
        stem=[Conv(out=64, k=3, s=2, pad=0, bn=False, bias=True), _squeeze_pool(64)],
        stages=[
            [_fire(16, 64), _fire(16, 64), _squeeze_pool(128)],
            [_fire(32, 128), _fire(32, 128), _squeeze_pool(256)],
            [_fire(48, 192), _fire(48, 192), _fire(64, 256), _fire(64, 256)],
        ],
        head=Head(dropout=0.5, classifier="conv"),
    )


register(
    Family(
        "squeezenet_1_0",
        squeezenet_1_0,
        reference=lambda w: ("SqueezeNet", "1.0") if w == 1.0 else None,
        summary="SqueezeNet 1.0 (Iandola et al. 2016); torchvision, input 224",
    )
)
register(
    Family(
        "squeezenet_1_1",
        squeezenet_1_1,
        reference=lambda w: ("SqueezeNet", "1.1") if w == 1.0 else None,
        summary="SqueezeNet 1.1; torchvision",
    )
)


# ---------------------------------------------------------------------------------------------- Xception


def xception(width: float, resolution: int, num_classes: int) -> Arch:
    """Xception (Chollet 2017) as timm's `legacy_xception` (the Keras port; parameters equal the paper's
    Tab.3): two unpadded 3×3 stem convs, entry blocks of 2 separable convs, 8 middle blocks of 3, the exit
    block widening last, two separable convs to 1536 and 2048, linear classifier; input 299."""
    entry: list[Block] = [
        XceptionBlock(out=128, reps=2, s=2, start_relu=False),
        XceptionBlock(out=256, reps=2, s=2),
        XceptionBlock(out=728, reps=2, s=2),
    ]
    middle: list[Block] = [XceptionBlock(out=728, reps=3) for _ in range(8)]
    exit_: list[Block] = [XceptionBlock(out=1024, reps=2, s=2, grow_first=False)]
    return Arch(
        resolution=resolution,
        num_classes=num_classes,
        stem=[Conv(out=32, k=3, s=2, pad=0), Conv(out=64, k=3, pad=0)],
        stages=[entry, middle, exit_],
        head=Head(blocks=(SeparableConv(out=1536), SeparableConv(out=2048))),
    )


register(
    Family(
        "xception",
        xception,
        resolution=299,
        reference=lambda w: ("Xception", "-") if w == 1.0 else None,
        summary="Xception (Chollet 2017); timm legacy_xception, input 299",
    )
)
