"""Proxy training: `train` (epochs, with pruning), `fine_tune` (a fixed number of steps), `evaluate` (top-1).

The recipe is the usual one for small CNNs on 32×32 images, shortened: SGD with Nesterov momentum 0.9, a linear
warm-up then cosine decay to zero over the whole run, weight decay on conv/linear weights only (not BN or biases),
label smoothing, random crop (4 px zero padding) and horizontal flip. Inputs are resized to `resolution` per batch
(bilinear), so a proxy resolution costs nothing to prepare.

Determinism: with the same `seed`, the same model initialisation (the caller seeds before `build`), the same
data and one thread, two runs give the same weights: the batch order and the augmentation come from a
`torch.Generator(seed)`.

Resuming: `train(..., checkpoint=save)` hands `save` the whole training state after every epoch (model,
optimizer, step, the batch-order generator and torch's RNG, the history); `train(..., resume=state)` continues from
such a state and ends with the same weights as an uninterrupted run. The state holds tensors, numbers, strings and
lists only, so it reads back with `torch.load(weights_only=True)`.

A loss that turns NaN or infinite raises `TrainingDiverged` (a `NasError`): the search marks that trial failed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from nas.accuracy.data import DataSplits, Split
from nas.arch import MAX_RESOLUTION
from nas.errors import NasError

# report(epoch, val_accuracy) -> True to stop (an Optuna trial's `should_prune`).
Report = Callable[[int, float], bool]
# checkpoint(state) after each epoch; `state` is what `train(..., resume=state)` continues from.
Checkpoint = Callable[[dict[str, Any]], None]
STATE_FORMAT = "nas.train-state/1"


class TrainingDiverged(NasError):
    """The training loss became NaN or infinite: this candidate cannot be trained with this recipe."""


@dataclass(frozen=True)
class TrainConfig:
    """How to train. `resolution=None` trains at the data's own image size; `max_steps` caps the optimizer steps
    (whatever `epochs` says); `threads` is torch's intra-op thread count during training (1: the search runs
    trials side by side)."""

    epochs: float = 2
    batch_size: int = 128
    optimizer: str = "sgd"  # "sgd" (Nesterov momentum) | "adamw" (lr ~3e-3: faster start in very short runs)
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 4e-5
    label_smoothing: float = 0.1
    warmup_fraction: float = 0.05
    resolution: int | None = None
    augment: bool = True
    seed: int = 0
    max_steps: int | None = None
    threads: int = 1
    eval_batch_size: int = 500
    # Validation reports per epoch: >1 lets a pruner stop a one-epoch proxy run half-way. `report`'s first
    # argument then counts reports (the epoch when this is 1), and so do `TrainResult.history`'s entries.
    reports_per_epoch: int = 1
    # NHWC tensors: 1.7–2.5× faster depthwise-conv training on this CPU (measured with torch 2.13, one thread).
    channels_last: bool = True

    def __post_init__(self) -> None:
        if not self.epochs > 0:
            raise NasError(f"epochs must be positive, got {self.epochs}")
        for name in ("batch_size", "threads", "eval_batch_size", "reports_per_epoch"):
            if getattr(self, name) < 1:
                raise NasError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.optimizer not in ("sgd", "adamw"):
            raise NasError(f"optimizer must be sgd or adamw, got {self.optimizer!r}")
        if not self.lr > 0:
            raise NasError(f"lr must be positive, got {self.lr}")
        if self.resolution is not None and not 8 <= self.resolution <= MAX_RESOLUTION:
            raise NasError(f"resolution must be from 8 to {MAX_RESOLUTION} (MAX_RESOLUTION), got {self.resolution}")
        if self.max_steps is not None and self.max_steps < 1:
            raise NasError(f"max_steps must be at least 1, got {self.max_steps}")
        if not 0 <= self.label_smoothing < 1:
            raise NasError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")


@dataclass
class TrainResult:
    """`accuracy`: top-1 on the validation split at the end (None for `fine_tune`, which does not evaluate);
    `history`: (epoch, val accuracy) after each epoch; `losses`: the mean training loss of each epoch;
    `pruned`: stopped early by `report`; `seconds`: this call's time (not a resumed run's earlier epochs)."""

    accuracy: float | None
    epochs: float
    steps: int
    seconds: float
    pruned: bool = False
    train_loss: float = math.nan
    history: list[tuple[int, float]] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)


@contextmanager
def _threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _resize(x: torch.Tensor, resolution: int | None) -> torch.Tensor:
    if resolution is None or resolution == x.shape[-1]:
        return x
    return F.interpolate(x, size=(resolution, resolution), mode="bilinear", align_corners=False,
                         antialias=resolution < x.shape[-1])


def _augment(x: torch.Tensor, gen: torch.Generator, pad: int = 4) -> torch.Tensor:
    """Random crop after zero padding, and a horizontal flip for half the batch (vectorised over the batch)."""
    n, c, h, w = x.shape
    padded = F.pad(x, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * pad + 1, (n,), generator=gen)
    rows = (torch.arange(h)[None] + dy[:, None])[:, None, :, None]
    cols = (torch.arange(w)[None] + dx[:, None])[:, None, None, :]
    flip = torch.rand(n, generator=gen) < 0.5
    cols = torch.where(flip[:, None, None, None], cols.flip(-1), cols)
    return padded[torch.arange(n)[:, None, None, None], torch.arange(c)[None, :, None, None], rows, cols]


def _param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            (decay if p.ndim > 1 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def _lr_at(step: int, total: int, cfg: TrainConfig) -> float:
    warmup = int(total * cfg.warmup_fraction)
    if step < warmup:
        return cfg.lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))


def evaluate(
    model: nn.Module, split: Split, resolution: int | None = None, batch_size: int = 500, channels_last: bool = True
) -> float:
    """Top-1 accuracy in [0, 1] of `model` (in eval mode: BN running statistics) on a split. The model runs in
    NHWC (faster here) and is handed back in the ordinary layout and in its previous train/eval mode."""
    x, y = split
    if len(y) == 0:
        raise NasError("cannot evaluate on an empty split")
    was_training = model.training
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model.eval()
    model.to(memory_format=fmt)
    correct = 0
    try:
        with torch.no_grad():
            for i in range(0, len(y), batch_size):
                xb = _resize(x[i : i + batch_size], resolution)
                logits = model(xb.contiguous(memory_format=fmt))
                correct += int((logits.argmax(1) == y[i : i + batch_size]).sum())
    finally:
        model.to(memory_format=torch.contiguous_format)
        model.train(was_training)
    return correct / len(y)


def _loop(
    model: nn.Module,
    data: DataSplits,
    cfg: TrainConfig,
    total_steps: int,
    steps_per_epoch: int,
    report: Report | None,
    evaluate_epochs: bool,
    resume: dict[str, Any] | None = None,
    checkpoint: Checkpoint | None = None,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    start = time.perf_counter()
    x, y = data.train
    n = len(y)
    batch = min(cfg.batch_size, n)
    gen = torch.Generator().manual_seed(cfg.seed)
    groups = _param_groups(model, cfg.weight_decay)
    if cfg.optimizer == "adamw":
        opt: torch.optim.Optimizer = torch.optim.AdamW(groups, lr=cfg.lr)
    else:
        opt = torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    result = TrainResult(accuracy=None, epochs=0.0, steps=0, seconds=0.0)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    model.to(memory_format=fmt)
    model.train()
    step, epoch, reported = 0, 0, 0
    losses: list[float] = []
    # Steps within an epoch after which to report, besides the epoch's end.
    interval = math.ceil(steps_per_epoch / cfg.reports_per_epoch)
    midway = {i * interval for i in range(1, cfg.reports_per_epoch)} if evaluate_epochs else set()
    if resume is not None:
        if resume.get("format") != STATE_FORMAT or resume.get("total_steps") != total_steps:
            raise NasError(
                f"cannot resume: the saved training state is not {STATE_FORMAT} for {total_steps} steps "
                "(another recipe or data set?)"
            )
        model.load_state_dict(resume["model"])
        opt.load_state_dict(resume["optimizer"])
        gen.set_state(resume["generator"])
        torch.set_rng_state(resume["torch_rng"])
        step, epoch, reported = int(resume["step"]), int(resume["epoch"]), int(resume["reported"])
        result.history = [(int(e), float(a)) for e, a in resume["history"]]
        result.losses = [float(v) for v in resume["losses"]]
        result.accuracy = result.history[-1][1] if result.history else None
        result.steps, result.epochs = step, step / steps_per_epoch

    def state() -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "total_steps": total_steps,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "generator": gen.get_state(),
            "torch_rng": torch.get_rng_state(),
            "step": step,
            "epoch": epoch,
            "reported": reported,
            "history": [[e, a] for e, a in result.history],
            "losses": list(result.losses),
        }

    def check() -> bool:
        """Evaluate on the validation split and report it; True when the caller's pruner says stop and
        training is not over."""
        nonlocal reported
        acc = evaluate(model, data.val, cfg.resolution, cfg.eval_batch_size, cfg.channels_last)
        model.to(memory_format=fmt)
        model.train()
        reported += 1
        result.history.append((reported, acc))
        result.accuracy = acc
        # Every report is made, the last too (a pruner learns from finished trials); a "prune" answer only
        # matters while there is training left to skip.
        return report is not None and bool(report(reported, acc)) and step < total_steps

    with _threads(cfg.threads):
        while step < total_steps:
            order = torch.randperm(n, generator=gen)
            losses = []
            for b in range(steps_per_epoch):
                if step >= total_steps:
                    break
                idx = order[b * batch : (b + 1) * batch]
                xb = x[idx]
                if cfg.augment:
                    xb = _augment(xb, gen)
                xb = _resize(xb, cfg.resolution).contiguous(memory_format=fmt)
                for group in opt.param_groups:
                    group["lr"] = _lr_at(step, total_steps, cfg)
                loss = F.cross_entropy(model(xb), y[idx], label_smoothing=cfg.label_smoothing)
                if not torch.isfinite(loss):
                    raise TrainingDiverged(
                        f"training diverged: loss became {loss.item()} at step {step + 1} "
                        f"(epoch {epoch + 1}, lr {cfg.lr})"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.item())
                step += 1
                if on_step is not None:
                    on_step(step)
                if b + 1 in midway and step < total_steps and check():
                    result.pruned = True
                    break
            epoch += 1
            result.epochs = step / steps_per_epoch
            result.steps = step
            if losses:
                result.losses.append(sum(losses) / len(losses))
            if result.pruned:
                break
            if evaluate_epochs and check():
                result.pruned = True
                break
            if checkpoint is not None:
                checkpoint(state())
    model.to(memory_format=torch.contiguous_format)  # hand back ordinary tensors (export, pruning by slicing)
    model.eval()
    result.train_loss = result.losses[-1] if result.losses else math.nan
    result.seconds = time.perf_counter() - start
    return result


def train(
    model: nn.Module,
    data: DataSplits,
    cfg: TrainConfig | None = None,
    report: Report | None = None,
    *,
    resume: dict[str, Any] | None = None,
    checkpoint: Checkpoint | None = None,
    on_step: Callable[[int], None] | None = None,
) -> TrainResult:
    """Train `model` in place for `cfg.epochs` (capped by `cfg.max_steps`), evaluating on `data.val` after each
    epoch; `report(epoch, val_acc)` returning True stops it (`result.pruned`). `checkpoint(state)` after each
    epoch and `resume=state` to continue (module docstring); `on_step(step)` after each optimizer step (a progress
    bar). Leaves the model in eval mode."""
    cfg = cfg or TrainConfig()
    n = len(data.train)
    steps_per_epoch = max(1, n // min(cfg.batch_size, n))  # drop the last partial batch: no BN on tiny batches
    total = max(1, round(cfg.epochs * steps_per_epoch))
    if cfg.max_steps is not None:
        total = min(total, cfg.max_steps)
    return _loop(model, data, cfg, total, steps_per_epoch, report, True, resume, checkpoint, on_step)


def fine_tune(model: nn.Module, data: DataSplits, steps: int, cfg: TrainConfig | None = None) -> TrainResult:
    """Exactly `steps` SGD steps on `data.train` with `cfg`'s recipe (the cosine schedule spans the `steps`), no
    evaluation: NetAdapt's short fine-tune of each proposal. Leaves the model in eval mode."""
    if steps < 1:
        raise NasError(f"fine-tune steps must be at least 1, got {steps}")
    cfg = cfg or TrainConfig()
    n = len(data.train)
    steps_per_epoch = max(1, n // min(cfg.batch_size, n))
    return _loop(model, data, cfg, steps, steps_per_epoch, None, evaluate_epochs=False)
