"""Training a supernet, its run directory, and reading a subnet's accuracy from it.

Run directory (`--out DIR`):
- `supernet.json`: what the supernet is (space, data, classes, resolution, recipe); written first, never changed
  by `--resume` except for `epochs`.
- `checkpoint.pt`: shared weights, optimizer state and the epoch reached; written atomically after every epoch
  (`torch.save` to a temporary file, then `os.replace`), read back with `torch.load(weights_only=True)`.
- `log.json`: one entry per epoch (loss, validation top-1 of the largest, smallest and a fixed random subnet,
  each after BatchNorm recalibration, seconds); `curves.png`: those curves.

Recipe (`SupernetConfig`): `warmup_epochs` epochs train the largest subnet alone (OFA's first phase), then the
channels are sorted by importance (`Supernet.sort_channels`) and every step follows the sandwich rule (BigNAS,
Yu et al. ECCV 2020, Sec. 3.1): the largest subnet on the labels (label smoothing), then the smallest and
`random_subnets` random ones on the largest's soft predictions (in-place distillation), gradients summed, one SGD
step. The learning rate warms up linearly over the first epoch then follows a cosine to zero over the run.
Every epoch's batch order, augmentation, dropout and subnet draws derive from (seed, epoch), so a run resumed
after a kill goes on exactly as it would have.

Reading an accuracy (`read_accuracy`): reset the BatchNorm statistics, average them over `calib_images`
training images run through the subnet, then top-1 on the validation split (never the test split).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from nas.accuracy.data import DataSplits, Split
from nas.accuracy.train import TrainConfig, _augment, _lr_at, _threads
from nas.arch import Arch
from nas.errors import NasError
from nas.io import atomic_write, read_json, write_json
from nas.space import SearchSpace, load_space
from nas.supernet.model import Supernet, max_arch

FORMAT = "nas.supernet/1"
CHECKPOINT = "checkpoint.pt"
META = "supernet.json"
LOG = "log.json"
PLOT = "curves.png"


@dataclass(frozen=True)
class SupernetConfig:
    """How to train a supernet (see the module docstring). `calib_images`: training images whose statistics
    recalibrate BatchNorm before each accuracy read; `val_images`: the first so many validation images score the
    per-epoch curves (0: all)."""

    epochs: int = 12
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 3e-5
    label_smoothing: float = 0.1
    warmup_epochs: int = 1
    random_subnets: int = 2
    augment: bool = True
    calib_images: int = 512
    val_images: int = 0
    seed: int = 0
    threads: int = 1
    max_steps: int | None = None  # per epoch; for smoke runs and tests

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "calib_images"):
            if getattr(self, name) < 1:
                raise NasError(f"supernet {name} must be at least 1, got {getattr(self, name)}")
        if self.random_subnets < 2:
            raise NasError(f"the sandwich rule needs at least 2 random subnets per step, got {self.random_subnets}")
        if not 0 <= self.warmup_epochs < self.epochs:
            raise NasError(f"warmup_epochs must be in [0, epochs), got {self.warmup_epochs} of {self.epochs}")
        if not self.lr > 0:
            raise NasError(f"lr must be positive, got {self.lr}")


# ---------------------------------------------------------------------------------------------- identity


def space_id(space: SearchSpace) -> str:
    """A short hash of everything in a space that shapes its subnets: its decisions and its widest network."""
    body = json.dumps(
        {
            "decisions": [[d.name, [repr(c) for c in d.choices]] for d in space.decisions],
            "max": max_arch(space, 32, 10).hash,
        },
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:16]


def data_id(data: DataSplits) -> dict[str, Any]:
    """What the supernet must share with the data a search reads it on: the same images in the same splits."""
    h = hashlib.sha256()
    for split in (data.train, data.val):
        h.update(split.y.numpy().tobytes())
        h.update(split.x[:: max(1, len(split) // 64)].numpy().tobytes())
    return {
        "name": data.name,
        "train": len(data.train),
        "val": len(data.val),
        "num_classes": data.num_classes,
        "image_size": data.image_size,
        "hash": h.hexdigest()[:16],
    }


# ---------------------------------------------------------------------------------------------- run directory


@dataclass
class SupernetRun:
    """A loaded run directory: the supernet (weights as of the last finished epoch), its metadata, its log."""

    supernet: Supernet
    meta: dict[str, Any]
    config: SupernetConfig
    epoch: int
    log: list[dict[str, Any]]
    optimizer_state: dict[str, Any] | None = None


def _config_from(data: dict[str, Any]) -> SupernetConfig:
    known = {f.name for f in fields(SupernetConfig)}
    return SupernetConfig(**{k: v for k, v in data.items() if k in known})


def load_run(directory: str | Path, *, with_optimizer: bool = False) -> SupernetRun:
    """Read DIR/supernet.json and DIR/checkpoint.pt; a missing, corrupt or foreign file is a one-line NasError."""
    d = Path(directory)
    if not d.is_dir():
        raise NasError(f"supernet directory {d} does not exist")
    if not (d / META).is_file() or not (d / CHECKPOINT).is_file():
        raise NasError(f"{d} is not a supernet run directory (needs {META} and {CHECKPOINT})")
    meta = read_json(d / META, "supernet description")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise NasError(f"{d / META}: not a supernet description (format {FORMAT})")
    try:
        ckpt = torch.load(d / CHECKPOINT, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several kinds for a file that is not its format
        first = str(err).strip().split("\n")[0].split(". ")[0]
        raise NasError(f"{d / CHECKPOINT}: not a readable supernet checkpoint ({first})") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or not isinstance(ckpt.get("state"), dict):
        raise NasError(f"{d / CHECKPOINT}: not a supernet checkpoint (format {FORMAT})")
    if ckpt.get("space_id") != meta.get("space_id"):
        raise NasError(f"{d / CHECKPOINT} belongs to another supernet than {d / META} describes")
    try:
        space = load_space(meta.get("space_source", meta["space"]))
        config = _config_from(meta["config"])
        data = meta["data"]
        net = Supernet(space, int(data["num_classes"]), int(data["image_size"]))
    except (KeyError, TypeError, ValueError) as err:
        raise NasError(f"{d / META}: malformed ({err})") from None
    if space_id(space) != meta["space_id"]:
        raise NasError(
            f"{d}: the search space {meta['space']!r} has changed since this supernet was trained "
            "(its decisions or widest network differ)"
        )
    try:
        net.load_state_dict(ckpt["state"])
    except (RuntimeError, TypeError) as err:
        lines = str(err).strip().splitlines()
        raise NasError(f"{d / CHECKPOINT}: weights do not fit space {meta['space']}: {lines[-1] if lines else err}") \
            from None
    log = read_json(d / LOG, "supernet log") if (d / LOG).is_file() else []
    epoch = int(ckpt.get("epoch", 0))
    return SupernetRun(
        supernet=net,
        meta=meta,
        config=config,
        epoch=epoch,
        log=[e for e in log if e.get("epoch", 0) <= epoch],
        optimizer_state=ckpt.get("optimizer") if with_optimizer else None,
    )


def _space_source(given: str | SearchSpace, space: SearchSpace) -> str:
    """How to load the space again: a shipped space by name, a YAML file by its absolute path."""
    source = given if isinstance(given, str) else space.source
    if source.endswith((".yaml", ".yml")) or "/" in source:
        return str(Path(source).resolve())
    return source


def _save_checkpoint(d: Path, net: Supernet, opt: torch.optim.Optimizer, epoch: int, meta: dict[str, Any]) -> None:
    ckpt = {
        "format": FORMAT,
        "space_id": meta["space_id"],
        "epoch": epoch,
        "state": net.state_dict(),
        "optimizer": opt.state_dict(),
    }
    atomic_write(d / CHECKPOINT, lambda tmp: torch.save(ckpt, tmp))


# ---------------------------------------------------------------------------------------------- reading accuracy


def calibration_images(data: DataSplits, n: int, seed: int = 0) -> torch.Tensor:
    """A fixed random draw of `n` training images (the same for every subnet read with that seed)."""
    gen = torch.Generator().manual_seed(seed + 17)
    idx = torch.randperm(len(data.train), generator=gen)[: min(n, len(data.train))]
    return data.train.x[idx]


@torch.no_grad()
def recalibrate(net: Supernet, arch: Arch, images: torch.Tensor, batch_size: int = 256) -> None:
    """BatchNorm statistics of subnet `arch`: reset, then the average over `images` (shared buffers only)."""
    with net.calibrating():
        for i in range(0, len(images), batch_size):
            net(images[i : i + batch_size].contiguous(memory_format=torch.channels_last), arch)


@torch.no_grad()
def top1(net: Supernet, arch: Arch, split: Split, n: int = 0, batch_size: int = 500) -> float:
    net.eval()
    correct, total = 0, 0
    x, y = (split.x[:n], split.y[:n]) if n else (split.x, split.y)
    for i in range(0, len(y), batch_size):
        logits = net(x[i : i + batch_size].contiguous(memory_format=torch.channels_last), arch)
        correct += int((logits.argmax(1) == y[i : i + batch_size]).sum())
        total += len(logits)
    return correct / total


def read_accuracy(net: Supernet, arch: Arch, calib: torch.Tensor, val: Split, n: int = 0) -> float:
    """Top-1 on (the first `n` images of) the validation split after BatchNorm recalibration on `calib`."""
    recalibrate(net, arch, calib)
    return top1(net, arch, val, n)


# ---------------------------------------------------------------------------------------------- training


def _soft_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return -(target * F.log_softmax(logits, 1)).sum(1).mean()


def _optimizer(net: Supernet, cfg: SupernetConfig) -> torch.optim.Optimizer:
    decay = [p for p in net.net.parameters() if p.ndim > 1]
    no_decay = [p for p in net.net.parameters() if p.ndim <= 1] + list(net.transforms.parameters())
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=True)


Progress = Callable[[int, int, int, int, float], None]  # (epoch, epochs, step, steps, loss)


def train_supernet(
    space: str | SearchSpace,
    data: DataSplits,
    out: str | Path,
    config: SupernetConfig | None = None,
    *,
    resume: bool = False,
    progress: Progress | None = None,
    data_spec: str | None = None,
) -> SupernetRun:
    """Train (or, with `resume`, continue) a supernet of `space` on `data` into run directory `out`.

    On resume the stored recipe is kept; `config.epochs` (and `threads`) may change. `data_spec` is recorded so
    that a resume or an extraction can load the same data again."""
    d = Path(out)
    sp = space if isinstance(space, SearchSpace) else load_space(space)
    cfg = config or SupernetConfig()
    did = data_id(data) | {"spec": data_spec or data.name}
    opt_state = None
    if resume:
        run = load_run(d, with_optimizer=True)
        if run.meta["space"] != sp.name:
            raise NasError(f"{d} holds a supernet of space {run.meta['space']!r}, not {sp.name!r}")
        did["spec"] = run.meta["data"].get("spec", did["spec"])
        if run.meta["data"]["hash"] != did["hash"]:
            raise NasError(f"{d} was trained on other data ({run.meta['data']['name']}); resume it with that data")
        net, meta, epoch, log, opt_state = run.supernet, run.meta, run.epoch, run.log, run.optimizer_state
        cfg = run.config
        if config is not None:
            changed = [f.name for f in fields(cfg) if f.name not in ("epochs", "threads")
                       and getattr(config, f.name) != getattr(cfg, f.name)]
            if changed:
                raise NasError(f"{d}: a resumed run keeps its recipe; {changed[0]} cannot change")
            cfg = replace(cfg, epochs=max(config.epochs, epoch), threads=config.threads)
        meta["config"] = asdict(cfg)
    else:
        if (d / CHECKPOINT).exists() or (d / META).exists():
            raise NasError(f"{d} already holds a supernet; pass --resume to continue it, or choose another --out")
        torch.manual_seed(cfg.seed)
        net = Supernet(sp, data.num_classes, data.image_size)
        meta = {
            "format": FORMAT,
            "space": sp.name,
            "space_source": _space_source(space, sp),
            "space_id": space_id(sp),
            "data": did,
            "config": asdict(cfg),
            "params": sum(p.numel() for p in net.parameters()),
        }
        epoch, log = 0, []
    d.mkdir(parents=True, exist_ok=True)
    write_json(d / META, meta)
    opt = _optimizer(net, cfg)
    if opt_state is not None:
        opt.load_state_dict(opt_state)

    n = len(data.train)
    batch = min(cfg.batch_size, n)
    steps = max(1, n // batch)
    if cfg.max_steps is not None:
        steps = min(steps, cfg.max_steps)
    total = steps * cfg.epochs
    lr_cfg = TrainConfig(lr=cfg.lr, warmup_fraction=1 / cfg.epochs)
    largest, smallest = net.largest(), net.smallest()
    fixed_random = net.random_subnet(random.Random(cfg.seed + 12345))
    calib = calibration_images(data, cfg.calib_images, cfg.seed)
    x_all, y_all = data.train
    with _threads(cfg.threads):
        while epoch < cfg.epochs:
            start, cpu_start = time.perf_counter(), time.process_time()
            torch.manual_seed(cfg.seed * 100_003 + epoch)
            gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            rng = random.Random(cfg.seed * 100_003 + epoch)
            sandwich = epoch >= cfg.warmup_epochs
            if sandwich and epoch == cfg.warmup_epochs:
                net.sort_channels(opt)
            order = torch.randperm(n, generator=gen)
            net.train()
            losses = []
            for b in range(steps):
                step = epoch * steps + b
                idx = order[b * batch : (b + 1) * batch]
                xb = _augment(x_all[idx], gen) if cfg.augment else x_all[idx]
                xb = xb.contiguous(memory_format=torch.channels_last)
                yb = y_all[idx]
                for group in opt.param_groups:
                    group["lr"] = _lr_at(step, total, lr_cfg)
                opt.zero_grad(set_to_none=True)
                logits = net(xb, largest)
                loss = F.cross_entropy(logits, yb, label_smoothing=cfg.label_smoothing)
                loss.backward()
                step_loss = loss.item()
                if sandwich:
                    soft = F.softmax(logits.detach(), 1)
                    for arch in [smallest] + [net.random_subnet(rng) for _ in range(cfg.random_subnets)]:
                        kd = _soft_ce(net(xb, arch), soft)
                        kd.backward()
                        step_loss += kd.item()
                if not math.isfinite(step_loss):
                    raise NasError(f"supernet training diverged at epoch {epoch + 1}, step {b + 1} (lr {cfg.lr})")
                opt.step()
                losses.append(step_loss)
                if progress is not None:
                    progress(epoch, cfg.epochs, b + 1, steps, step_loss)
            train_s = time.perf_counter() - start
            epoch += 1
            entry: dict[str, Any] = {
                "epoch": epoch,
                "phase": "sandwich" if sandwich else "largest",
                "loss": sum(losses) / len(losses),
                "lr_end": opt.param_groups[0]["lr"],
                "train_seconds": round(train_s, 1),
                "train_cpu_seconds": round(time.process_time() - cpu_start, 1),  # this process's CPU time
            }
            t0 = time.perf_counter()
            for name, arch in (("largest", largest), ("smallest", smallest), ("random", fixed_random)):
                entry[f"val_{name}"] = read_accuracy(net, arch, calib, data.val, cfg.val_images)
            entry["eval_seconds"] = round(time.perf_counter() - t0, 1)
            log.append(entry)
            _save_checkpoint(d, net, opt, epoch, meta)
            write_json(d / LOG, log)
            plot_curves(log, d / PLOT)
    return SupernetRun(supernet=net, meta=meta, config=cfg, epoch=epoch, log=log)


def plot_curves(log: list[dict[str, Any]], path: Path) -> None:
    """Validation top-1 of the three tracked subnets and the training loss, per epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [e["epoch"] for e in log]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name in ("largest", "smallest", "random"):
        ax1.plot(epochs, [e[f"val_{name}"] for e in log], marker="o", label=name)
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("validation top-1 (BN recalibrated)")
    ax1.legend()
    ax1.grid(alpha=0.3)
    ax2.plot(epochs, [e["loss"] for e in log], marker="o", color="black")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("training loss (sum over the step's subnets)")
    ax2.grid(alpha=0.3)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
