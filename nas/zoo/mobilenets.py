"""MobileNetV1/V2/V3, MnasNet, ProxylessNAS, FBNet and EfficientNet-B0 as specs.

Each family is a function of (width, resolution, num_classes) that resolves every channel count with
`make_divisible`, exactly as the reference implementation named in its docstring does.
"""

from __future__ import annotations

from nas.arch import Arch, Conv, Head, InvertedResidual, make_divisible
from nas.zoo import Family, register


def mobilenet_v2(width: float, resolution: int, num_classes: int) -> Arch:
    """MobileNetV2 (Sandler et al. 2018), as torchvision's `mobilenet_v2`: every width rounded to a multiple of
    8, the last conv kept at 1280 for widths below 1, expansion taken from the rounded input channels."""
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    cin = make_divisible(32 * width)
    stages = []
    for t, c, n, s in settings:
        out = make_divisible(c * width)
        stage = []
        for i in range(n):
            stage.append(InvertedResidual(out=out, mid=cin * t, k=3, s=s if i == 0 else 1, act="relu6"))
            cin = out
        stages.append(stage)
    last = make_divisible(1280 * max(1.0, width))
    return Arch(
        resolution=resolution,
        num_classes=num_classes,
        stem=[Conv(out=make_divisible(32 * width), k=3, s=2, act="relu6")],
        stages=stages,
        head=Head(blocks=(Conv(out=last, k=1, act="relu6"),), dropout=0.2),
    )


register(
    Family(
        "mobilenet_v2",
        mobilenet_v2,
        widths=(1.4, 1.0, 0.75, 0.5, 0.35),
        reference=lambda w: ("MobileNetV2", f"{w:g}" if w != 1.0 else "1.0") if w in (1.4, 1.0, 0.75, 0.5) else None,
        summary="MobileNetV2 (Sandler et al. 2018); torchvision's channel rounding",
    )
)
