"""Builders of the other classic blocks: pooling, Ghost, ShuffleNet V1/V2, Fire, Xception."""

from __future__ import annotations

import math

import torch
from torch import nn

from nas.arch import Fire, Ghost, Pool, SeparableConv, ShuffleV1, ShuffleV2, XceptionBlock
from nas.model import register
from nas.model.layers import ChannelShuffle, ConvBNAct, SqueezeExcite, activation


@register("pool")
def _pool(b: Pool, cin: int) -> nn.Module:
    if b.kind == "max":
        return nn.MaxPool2d(b.k, b.s, b.pad, ceil_mode=b.ceil)
    return nn.AvgPool2d(b.k, b.s, b.pad, ceil_mode=b.ceil, count_include_pad=False)


class GhostModule(nn.Module):
    """Half the channels from a 1×1 conv, the other half from a cheap depthwise 3×3 over them."""

    def __init__(self, cin: int, cout: int, act: bool):
        super().__init__()
        self.cout = cout
        init = math.ceil(cout / 2)
        a = "relu" if act else "none"
        self.primary = ConvBNAct(cin, init, 1, act=a)
        self.cheap = ConvBNAct(init, init, 3, groups=init, act=a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.primary(x)
        return torch.cat([y, self.cheap(y)], 1)[:, : self.cout]


class GhostBottleneck(nn.Module):
    def __init__(self, b: Ghost, cin: int):
        super().__init__()
        self.ghost1 = GhostModule(cin, b.mid, act=True)
        self.dw = ConvBNAct(b.mid, b.mid, b.k, b.s, groups=b.mid, act="none") if b.s > 1 else nn.Identity()
        self.se = SqueezeExcite(b.mid, b.se_channels(cin), "relu", "hsigmoid") if b.se else nn.Identity()
        self.ghost2 = GhostModule(b.mid, b.out, act=False)
        if b.has_residual(cin):
            self.shortcut: nn.Module = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                ConvBNAct(cin, cin, b.k, b.s, groups=cin, act="none"), ConvBNAct(cin, b.out, 1, act="none")
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ghost2(self.se(self.dw(self.ghost1(x)))) + self.shortcut(x)


class ShuffleV1Unit(nn.Module):
    def __init__(self, b: ShuffleV1, cin: int):
        super().__init__()
        self.stride = b.s
        self.branch = nn.Sequential(
            ConvBNAct(cin, b.mid, 1, groups=b.groups if b.first_group else 1),
            ChannelShuffle(b.groups) if b.groups > 1 else nn.Identity(),
            ConvBNAct(b.mid, b.mid, 3, b.s, groups=b.mid, act="none"),
            ConvBNAct(b.mid, b.branch_out(cin), 1, groups=b.groups, act="none"),
        )
        self.pool = nn.AvgPool2d(3, 2, 1) if b.s > 1 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.branch(x)
        if self.stride > 1:
            return torch.cat([self.pool(x), torch.relu(y)], 1)
        return torch.relu(x + y)


class ShuffleV2Unit(nn.Module):
    def __init__(self, b: ShuffleV2, cin: int):
        super().__init__()
        self.stride = b.s
        half = b.out // 2
        if b.s > 1:
            self.left: nn.Module = nn.Sequential(
                ConvBNAct(cin, cin, 3, b.s, groups=cin, act="none"), ConvBNAct(cin, half, 1)
            )
        else:
            self.left = nn.Identity()
        self.right = nn.Sequential(
            ConvBNAct(cin if b.s > 1 else half, half, 1),
            ConvBNAct(half, half, 3, b.s, groups=half, act="none"),
            ConvBNAct(half, half, 1),
        )
        self.shuffle = ChannelShuffle(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride > 1:
            y = torch.cat([self.left(x), self.right(x)], 1)
        else:
            a, b = x.chunk(2, dim=1)
            y = torch.cat([a, self.right(b)], 1)
        return self.shuffle(y)


class FireModule(nn.Module):
    def __init__(self, b: Fire, cin: int):
        super().__init__()
        self.squeeze = ConvBNAct(cin, b.squeeze, 1, bn=False, bias=True)
        self.expand1 = ConvBNAct(b.squeeze, b.e1, 1, bn=False, bias=True)
        self.expand3 = ConvBNAct(b.squeeze, b.out - b.e1, 3, bn=False, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(x)
        return torch.cat([self.expand1(s), self.expand3(s)], 1)


class SepConv(nn.Sequential):
    """Depthwise then pointwise conv with nothing between; BN and activation follow (Xception)."""

    def __init__(
        self, cin: int, cout: int, k: int = 3, s: int = 1, act: str = "relu", act_first: bool = False
    ):
        # A leading ReLU must not act in place: the block's shortcut still reads its input.
        layers: list[nn.Module] = [nn.ReLU()] if act_first else []
        layers += [
            nn.Conv2d(cin, cin, k, s, k // 2, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if not act_first and act != "none":
            layers.append(activation(act))
        super().__init__(*layers)


@register("sep")
def _sep(b: SeparableConv, cin: int) -> nn.Module:
    return SepConv(cin, b.out, b.k, b.s, b.act)


class XceptionUnit(nn.Module):
    def __init__(self, b: XceptionBlock, cin: int):
        super().__init__()
        reps: list[nn.Module] = [
            SepConv(ci, co, act_first=(i > 0 or b.start_relu))
            for i, (ci, co) in enumerate(b.sep_channels(cin))
        ]
        if b.s > 1:
            reps.append(nn.MaxPool2d(3, b.s, 1))
        self.rep = nn.Sequential(*reps)
        self.skip = nn.Identity() if b.has_residual(cin) else ConvBNAct(cin, b.out, 1, b.s, act="none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rep(x) + self.skip(x)


register("ghost")(GhostBottleneck)
register("shuffle_v1")(ShuffleV1Unit)
register("shuffle_v2")(ShuffleV2Unit)
register("fire")(FireModule)
register("xception")(XceptionUnit)
