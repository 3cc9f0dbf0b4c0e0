"""Removing channels from a built network while keeping the weights of the rest.

Which channels stay: the filters with the largest L2 norm (Yang et al. 2018, NetAdapt §3.2 "filter pruning");
for a group tied by residual adds, the norms of every conv that writes into the sum are added, so one set of
kept channels serves them all. Weights are inherited by truncation: every layer that reads a removed channel
(depthwise conv, BatchNorm, SE reduce and expand, the next 1×1 conv, the hidden or classifier Linear)
loses it.
"""

from __future__ import annotations

import torch
from torch import nn

from nas.arch import Arch, Conv, DepthwiseSeparable, InvertedResidual, Pool
from nas.errors import NasError
from nas.model import Net, build
from nas.netadapt.units import MID, Unit, UnitMap, find_units, set_widths

Index = torch.Tensor | None  # kept channel indices (sorted), None = all of them


def _conv_of(module: nn.Module) -> nn.Conv2d:
    """The Conv2d of a ConvBNAct (Sequential(conv, [bn], [act]))."""
    conv = module[0]  # type: ignore[index]
    assert isinstance(conv, nn.Conv2d)
    return conv


def _bn_of(module: nn.Module) -> nn.BatchNorm2d | None:
    for child in module.children():
        if isinstance(child, nn.BatchNorm2d):
            return child
    return None


def _producers(net: Net, arch: Arch, unit: Unit) -> list[nn.Conv2d]:
    """The convs whose filters make the unit's channels."""
    if unit.kind == MID:
        return [_conv_of(net.features[unit.index].expand)]
    convs = []
    for i in unit.members:
        block, module = arch.blocks[i], net.features[i]
        if isinstance(block, Conv):
            convs.append(_conv_of(module))
        elif isinstance(block, DepthwiseSeparable):
            convs.append(_conv_of(module.pw))
        elif isinstance(block, InvertedResidual):
            convs.append(_conv_of(module.project))
    return convs


def channel_scores(net: nn.Module, arch: Arch, unit: Unit) -> torch.Tensor:
    """Importance of each channel of the unit: the L2 norm of its filter, summed over tied producers."""
    with torch.no_grad():
        return sum(conv.weight.detach().flatten(1).norm(dim=1).float().cpu() for conv in _producers(net, arch, unit))


def top_channels(scores: torch.Tensor, unit: Unit, width: int) -> torch.Tensor:
    """Indices (ascending) of the `width` channels with the largest scores: the channels a pruned unit keeps."""
    if not 1 <= width <= unit.width:
        raise ValueError(f"{unit.name}: cannot keep {width} of {unit.width} channels")
    return torch.topk(scores, width, sorted=False).indices.sort().values


def check_keep(unit: Unit, idx: torch.Tensor) -> torch.Tensor:
    """Kept channel indices as a sorted tensor; NasError unless they are distinct channels of the unit."""
    idx = torch.as_tensor(idx, dtype=torch.long).flatten().sort().values
    if idx.numel() < 1 or idx.unique().numel() != idx.numel() or idx[0] < 0 or idx[-1] >= unit.width:
        raise NasError(f"netadapt: bad kept channels for {unit.name} (width {unit.width})")
    return idx


def keep_largest(net: nn.Module, arch: Arch, unit: Unit, width: int) -> torch.Tensor:
    """Indices (ascending) of the `width` channels of the unit with the largest filter norms."""
    return top_channels(channel_scores(net, arch, unit), unit, width)


# ---------------------------------------------------------------------------------------------- copying


def _take(t: torch.Tensor, dim: int, idx: Index) -> torch.Tensor:
    return t if idx is None else t.index_select(dim, idx.to(t.device))


def _copy_conv(dst: nn.Conv2d, src: nn.Conv2d, out_idx: Index, in_idx: Index) -> None:
    depthwise = src.groups > 1
    if depthwise and src.groups != src.in_channels:
        raise NasError("netadapt: grouped convs other than depthwise cannot be pruned")
    w = _take(src.weight, 0, out_idx)
    if not depthwise:
        w = _take(w, 1, in_idx)
    dst.weight.copy_(w)
    if src.bias is not None:
        dst.bias.copy_(_take(src.bias, 0, out_idx))


def _copy_bn(dst: nn.BatchNorm2d | None, src: nn.BatchNorm2d | None, idx: Index) -> None:
    if src is None or dst is None:
        return
    for name in ("weight", "bias", "running_mean", "running_var"):
        s = getattr(src, name)
        if s is not None:
            getattr(dst, name).copy_(_take(s, 0, idx))
    if src.num_batches_tracked is not None:
        dst.num_batches_tracked.copy_(src.num_batches_tracked)


def _copy_cba(dst: nn.Module, src: nn.Module, out_idx: Index, in_idx: Index) -> None:
    _copy_conv(_conv_of(dst), _conv_of(src), out_idx, in_idx)
    _copy_bn(_bn_of(dst), _bn_of(src), out_idx)


def _copy_se(dst: nn.Module, src: nn.Module, ch_idx: Index) -> None:
    """SE over kept channels; where its bottleneck narrows (the spec derives it from the width), keep the
    bottleneck units with the largest reduce filters over the kept channels."""
    if not hasattr(src, "reduce"):
        return
    rd_new, rd_old = dst.reduce.out_channels, src.reduce.out_channels
    if rd_new > rd_old:
        raise NasError(f"netadapt: SE bottleneck would grow from {rd_old} to {rd_new}")
    rd_idx: Index = None
    if rd_new < rd_old:
        norms = _take(src.reduce.weight, 1, ch_idx).flatten(1).norm(dim=1)
        rd_idx = torch.topk(norms, rd_new, sorted=False).indices.sort().values
    _copy_conv(dst.reduce, src.reduce, rd_idx, ch_idx)
    _copy_conv(dst.expand, src.expand, ch_idx, rd_idx)


def _copy_block(dst: nn.Module, src: nn.Module, block: object, in_idx: Index, mid_idx: Index, out_idx: Index) -> None:
    if isinstance(block, Conv):
        _copy_cba(dst, src, out_idx, in_idx)
    elif isinstance(block, DepthwiseSeparable):
        _copy_cba(dst.dw, src.dw, in_idx, None)
        _copy_se(dst.se, src.se, in_idx)
        _copy_cba(dst.pw, src.pw, out_idx, in_idx)
    elif isinstance(block, InvertedResidual):
        if not isinstance(src.expand, nn.Identity):
            _copy_cba(dst.expand, src.expand, mid_idx, in_idx)
        _copy_cba(dst.dw, src.dw, mid_idx, None)
        _copy_se(dst.se, src.se, mid_idx)
        _copy_cba(dst.project, src.project, out_idx, mid_idx)
    elif not isinstance(block, Pool):
        raise NasError(f"netadapt: cannot prune a {getattr(block, 'type', block)!r} block")


def _copy_linear(dst: nn.Linear, src: nn.Linear, in_idx: Index) -> None:
    dst.weight.copy_(_take(src.weight, 1, in_idx))
    if src.bias is not None:
        dst.bias.copy_(src.bias)


def prune(net: nn.Module, arch: Arch, keep: dict[Unit, torch.Tensor], units: UnitMap | None = None) -> tuple[Net, Arch]:
    """A new network with, for each unit in `keep`, only the channels listed, and its spec; `net` is left
    untouched (a traced module: `nas.netadapt.graph.prune_module`). Raises NasError when the new widths would
    change the network's structure (see `set_widths`)."""
    assert isinstance(net, Net)
    units = units or find_units(arch)
    resolved = {unit.name: check_keep(unit, idx) for unit, idx in keep.items()}
    new_arch = set_widths(arch, {u: len(i) for u, i in keep.items()}, units)
    if new_arch is None:
        raise NasError(f"netadapt: widths {', '.join(f'{n}={len(i)}' for n, i in resolved.items())} break the network")
    new_arch = new_arch.replace(name=arch.name)
    param = next(net.parameters())
    new_net = build(new_arch).to(device=param.device, dtype=param.dtype)

    def index(unit: Unit | None) -> Index:
        return None if unit is None else resolved.get(unit.name)

    with torch.no_grad():
        for i, block in enumerate(arch.blocks):
            in_idx = index(units.in_unit(i))
            mid_u = units.mid_unit[i]
            mid_idx = index(mid_u) if mid_u is not None else in_idx
            _copy_block(new_net.features[i], net.features[i], block, in_idx, mid_idx, index(units.out_unit[i]))
        feat_idx = index(units.feature_unit)
        if arch.head.classifier == "conv":
            _copy_conv(new_net.classifier[0], net.classifier[0], None, feat_idx)
        else:
            linears_old = [m for m in net.hidden if isinstance(m, nn.Linear)] + [net.classifier]
            linears_new = [m for m in new_net.hidden if isinstance(m, nn.Linear)] + [new_net.classifier]
            for k, (dst, src) in enumerate(zip(linears_new, linears_old, strict=True)):
                _copy_linear(dst, src, feat_idx if k == 0 else None)
    new_net.train(net.training)
    return new_net, new_arch
