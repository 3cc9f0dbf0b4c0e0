"""Training-free scores of an untrained network, for fast screening of candidates.

- **SynFlow** (Tanaka et al. 2020, used as a NAS proxy by Abdelfattah et al. 2021, "Zero-Cost Proxies for
  Lightweight NAS"): with every parameter replaced by its absolute value and an all-ones input, R = Σ outputs;
  the score is Σ_θ |θ · ∂R/∂θ|. As in their code, BatchNorm is taken out (here: eval mode with fresh statistics,
  the identity at initialisation) and double precision is used. The network is *linearised*: with positive
  weights and inputs ReLU is the identity, and we make hard-swish, swish and ReLU6 the identity too, so the score
  stays the path-norm it was meant to be instead of overflowing through x² growth. Returned as **log** score (the
  raw one spans hundreds of orders of magnitude).
- **NASWOT** (Mellor et al. 2021, "Neural Architecture Search without Training"): the binary activation pattern
  c_i of each image of a batch over every activation unit (input > 0); with N_A units,
  K_ij = N_A − Hamming(c_i, c_j); the score is log |det K|. We add the identity to K before the log-determinant so
  two identical codes give a finite (very low) score instead of −∞.

Both are *proxies*: they rank networks with some correlation to trained accuracy and are not accuracies.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

from nas.errors import NasError

KINDS = ("synflow", "naswot")
_ACTIVATIONS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.SiLU, nn.GELU, nn.LeakyReLU)


def _linearised_copy(model: nn.Module) -> nn.Module:
    net = copy.deepcopy(model).double()
    for module in list(net.modules()):
        for child_name, child in list(module.named_children()):
            if isinstance(child, _ACTIVATIONS):
                setattr(module, child_name, nn.Identity())
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.reset_running_stats()
    net.eval()
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    return net


def synflow(model: nn.Module, input_shape: tuple[int, int, int]) -> float:
    """log Σ|θ·∂R/∂θ| of the linearised, positive network on an all-ones input of `input_shape` (C, H, W)."""
    net = _linearised_copy(model)
    net.zero_grad()
    out = net(torch.ones((1, *input_shape), dtype=torch.float64))
    out.sum().backward()
    total = 0.0
    for p in net.parameters():
        if p.grad is not None:
            total += float((p.detach() * p.grad).abs().sum())
    if not math.isfinite(total) or total <= 0:
        return -math.inf if total <= 0 else math.inf
    return math.log(total)


def naswot(model: nn.Module, batch: torch.Tensor) -> float:
    """log det of the Hamming kernel of the binary activation codes of `batch` (Mellor et al. 2021)."""
    net = copy.deepcopy(model)
    net.train()  # batch statistics, as the untrained network in the paper
    codes: list[torch.Tensor] = []

    def hook(_m: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        codes.append((inputs[0].detach() > 0).flatten(1).to(torch.float64))

    handles = [m.register_forward_pre_hook(hook) for m in net.modules() if isinstance(m, _ACTIVATIONS)]
    if not handles:
        raise NasError("NASWOT needs activation layers (ReLU, hard-swish, …); this network has none")
    try:
        with torch.no_grad():
            net(batch)
    finally:
        for h in handles:
            h.remove()
    c = torch.cat(codes, dim=1)
    k = c @ c.T + (1 - c) @ (1 - c).T
    k += torch.eye(len(k), dtype=k.dtype)
    _sign, logdet = torch.linalg.slogdet(k)
    return float(logdet)


def zero_cost_score(model: nn.Module, batch: torch.Tensor, kind: str = "synflow") -> float:
    """The `kind` score of `model` ("synflow": the batch gives only the input shape; "naswot": a batch of ≥ 2
    real images). Higher means more promising. The model itself is left untouched (scores use a copy)."""
    if kind == "synflow":
        return synflow(model, tuple(batch.shape[1:]))
    if kind == "naswot":
        if len(batch) < 2:
            raise NasError("NASWOT needs a batch of at least 2 images")
        return naswot(model, batch)
    raise NasError(f"unknown zero-cost score {kind!r} (known: {', '.join(KINDS)})")
