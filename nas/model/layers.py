"""Small torch modules shared by the block builders."""

from __future__ import annotations

import torch
from torch import nn

from nas.arch import make_divisible  # noqa: F401  (re-exported for builders that size layers)


def activation(name: str) -> nn.Module:
    """Module for an activation name of the spec (`nas.arch.ACTIVATIONS`)."""
    if name == "none":
        return nn.Identity()
    if name == "relu":
        return nn.ReLU(inplace=True)
    if name == "relu6":
        return nn.ReLU6(inplace=True)
    if name == "hswish":
        return nn.Hardswish(inplace=True)
    if name == "swish":
        return nn.SiLU(inplace=True)
    raise ValueError(f"unknown activation {name!r}")


def gate(name: str) -> nn.Module:
    return nn.Hardsigmoid(inplace=True) if name == "hsigmoid" else nn.Sigmoid()


class ConvBNAct(nn.Sequential):
    """Conv2d, then BatchNorm and activation when asked; the unit most blocks are made of."""

    def __init__(
        self,
        cin: int,
        cout: int,
        k: int = 1,
        s: int = 1,
        groups: int = 1,
        act: str = "relu",
        bn: bool = True,
        bias: bool = False,
        pad: int | None = None,
    ):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, k, s, k // 2 if pad is None else pad, groups=groups, bias=bias)
        ]
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        if act != "none":
            layers.append(activation(act))
        super().__init__(*layers)


class SqueezeExcite(nn.Module):
    """Channel attention: pool, reduce to `rd` channels, activate, expand, gate, rescale."""

    def __init__(self, ch: int, rd: int, act: str = "relu", gate_name: str = "sigmoid"):
        super().__init__()
        self.reduce = nn.Conv2d(ch, rd, 1, bias=True)
        self.act = activation(act)
        self.expand = nn.Conv2d(rd, ch, 1, bias=True)
        self.gate = gate(gate_name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        return x * self.gate(self.expand(self.act(self.reduce(s))))


class ChannelShuffle(nn.Module):
    """Interleave channels across `groups` so grouped convs see each other's outputs (ShuffleNet)."""

    def __init__(self, groups: int):
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)
