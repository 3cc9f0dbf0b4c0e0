"""Builders of the MBConv family: plain conv, depthwise-separable, inverted residual."""

from __future__ import annotations

import torch
from torch import nn

from nas.arch import Conv, DepthwiseSeparable, InvertedResidual
from nas.model import register
from nas.model.layers import ChannelShuffle, ConvBNAct, SqueezeExcite


@register("conv")
def _conv(b: Conv, cin: int) -> nn.Module:
    return ConvBNAct(cin, b.out, b.k, b.s, b.groups, b.act, b.bn, b.bias, b.padding)


class DSConv(nn.Module):
    def __init__(self, b: DepthwiseSeparable, cin: int):
        super().__init__()
        self.residual = b.has_residual(cin)
        self.dw = ConvBNAct(cin, cin, b.k, b.s, groups=cin, act=b.act)
        self.se = SqueezeExcite(cin, b.se_channels(cin), b.se_act, b.se_gate) if b.se else nn.Identity()
        self.pw = ConvBNAct(cin, b.out, 1, act=b.act if b.pw_act else "none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pw(self.se(self.dw(x)))
        return x + y if self.residual else y


class MBConv(nn.Module):
    def __init__(self, b: InvertedResidual, cin: int):
        super().__init__()
        self.residual = b.has_residual(cin)
        self.expand = (
            ConvBNAct(cin, b.mid, 1, groups=b.groups, act=b.act, bias=b.bias)
            if b.has_expand(cin)
            else nn.Identity()
        )
        self.shuffle = ChannelShuffle(b.groups) if b.groups > 1 else nn.Identity()
        self.dw = ConvBNAct(b.mid, b.mid, b.k, b.s, groups=b.mid, act=b.act, bias=b.bias)
        self.se = SqueezeExcite(b.mid, b.se_channels(cin), b.se_act, b.se_gate) if b.se else nn.Identity()
        self.project = ConvBNAct(b.mid, b.out, 1, groups=b.groups, act="none", bias=b.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.dw(self.shuffle(self.expand(x)))))
        return x + y if self.residual else y


register("ds")(DSConv)
register("ir")(MBConv)
