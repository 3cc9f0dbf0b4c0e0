"""Spec → `torch.nn.Module`: one builder; each block type's module takes (block, input channels)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nas.arch import Arch, Block
from nas.model.layers import activation

# Filled by the block modules below: block type → factory(block, cin) → nn.Module.
BUILDERS: dict[str, Callable[[Block, int], nn.Module]] = {}


def register(block_type: str) -> Callable:
    def deco(factory: Callable[[Block, int], nn.Module]) -> Callable[[Block, int], nn.Module]:
        BUILDERS[block_type] = factory
        return factory

    return deco


def build_block(block: Block, cin: int) -> nn.Module:
    return BUILDERS[block.type](block, cin)


class Net(nn.Module):
    """The network of an `Arch`: `features` (every block before the pool, one child per spec block, in
    `Arch.paths()` order), then the head. Keeps its spec as `.arch`."""

    def __init__(self, arch: Arch):
        super().__init__()
        self.arch = arch
        self.features = nn.Sequential(*(build_block(site.block, site.x.c) for site in arch.sites()))
        head = arch.head
        width = arch.features.c
        hidden: list[nn.Module] = []
        for dense in head.hidden:
            hidden += [nn.Linear(width, dense.out, bias=dense.bias), activation(dense.act)]
            width = dense.out
        self.hidden = nn.Sequential(*hidden)
        self.dropout = nn.Dropout(head.dropout) if head.dropout else nn.Identity()
        if head.classifier == "conv":
            self.classifier: nn.Module = nn.Sequential(
                nn.Conv2d(width, arch.num_classes, 1, bias=head.classifier_bias), nn.ReLU(inplace=True)
            )
        else:
            self.classifier = nn.Linear(width, arch.num_classes, bias=head.classifier_bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        if self.arch.head.classifier == "conv":
            return self.classifier(self.dropout(x)).mean((2, 3))
        x = self.hidden(x.mean((2, 3)))
        return self.classifier(self.dropout(x))


def build(arch: Arch) -> Net:
    """Build the network a spec describes, freshly initialised (He init for convs, as the reference nets).

    Nothing to check first: an `Arch` is within the limits of `nas.arch` (channels, resolution, parameters, MACs,
    tensor size) from the moment it exists, so no spec reaches torch's allocator with a size it cannot take."""
    net = Net(arch)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0, 0.01)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return net


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def count_macs(module: nn.Module, arch: Arch) -> int:
    """Multiply-accumulates of conv and linear layers, counted by running the module once (forward hooks)."""
    total = 0

    def hook(m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        nonlocal total
        if isinstance(m, nn.Conv2d):
            total += out.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]
        elif isinstance(m, nn.Linear):
            total += m.in_features * m.out_features

    handles = [
        m.register_forward_hook(hook) for m in module.modules() if isinstance(m, nn.Conv2d | nn.Linear)
    ]
    try:
        module.eval()
        with torch.no_grad():
            module(torch.zeros(1, arch.in_channels, arch.resolution, arch.resolution))
    finally:
        for h in handles:
            h.remove()
    return total


# Block modules register themselves on import.
from nas.model import classic, mbconv  # noqa: E402, F401
