"""Scoring a pruned proposal cheaply: adaptive BatchNorm (EagleEye, Li et al. ECCV 2020) and validation metrics.

A proposal pruned from a trained network inherits BatchNorm running statistics that were collected for the
wider network; its accuracy with those stale statistics says little about its accuracy after fine-tuning.
`recalibrate_bn` re-estimates the statistics on a few training batches (forward passes only, no gradient step),
which is most of what a short fine-tune fixes, at a fraction of its cost.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nas.accuracy.data import Split
from nas.accuracy.train import _resize
from nas.errors import NasError


def recalibrate_bn(
    net: nn.Module, train: Split, batches: int, *, batch_size: int = 128, resolution: int | None = None, seed: int = 0
) -> None:
    """Replace every BatchNorm layer's running mean and variance by their average over `batches` training batches
    (a seeded sample without augmentation; weights untouched). Leaves the network in eval mode."""
    if batches < 1:
        raise NasError(f"adaptive-BN needs at least 1 batch, got {batches}")
    bns = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        net.eval()
        return
    x, _ = train
    n = len(train)
    batch = min(batch_size, n)
    gen = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=gen)
    saved = [m.momentum for m in bns]
    net.eval()
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches seen
        m.train()
    try:
        with torch.no_grad():
            for b in range(batches):
                idx = order[(b * batch) % n :][:batch]
                if len(idx) < 2:
                    idx = order[:batch]
                net(_resize(x[idx], resolution))
    finally:
        for m, momentum in zip(bns, saved, strict=True):
            m.momentum = momentum
        net.eval()


def val_metrics(
    net: nn.Module, split: Split, resolution: int | None = None, batch_size: int = 500
) -> tuple[float, float]:
    """(top-1, mean cross-entropy) of `net` in eval mode on a split."""
    x, y = split
    if len(y) == 0:
        raise NasError("cannot evaluate on an empty split")
    was_training = net.training
    net.eval()
    correct, loss = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            logits = net(_resize(x[i : i + batch_size], resolution))
            yb = y[i : i + batch_size]
            correct += int((logits.argmax(1) == yb).sum())
            loss += float(F.cross_entropy(logits, yb, reduction="sum"))
    net.train(was_training)
    return correct / len(y), loss / len(y)
