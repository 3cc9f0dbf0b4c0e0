"""Train a found (or hand-designed) architecture for real: `train_source(SOURCE, data, out)` (`nas train`).

SOURCE is anything `nas export` takes (`nas.sources.resolve`). The recipe is the project's (`TrainConfig`: SGD
with Nesterov momentum, warm-up then cosine decay, label smoothing, crop+flip; residual blocks start as the
identity, `zero_init_residuals`) at the data's own image size. The fair-recipe protocol of the evidence
benchmarks: with `lr="auto"` the peak rate is chosen from `LR_GRID` by top-1 on the *validation* split (one run
per rate, seed = the first seed, `lr_epochs` epochs), then every seed trains at that rate. The test split is
read only when `test=True`, after training.

The validation split is carved from the training images with data seed 0 for every seed and rate, so all runs
select on the same images; the training seed sets the initialisation, batch order and augmentation.

Output directory (`out`), written atomically; one run's files are the layout `nas export` and `nas netadapt`
take as a SOURCE (arch.json + weights.pt + history.json):

    config.json            what was asked (a resume must ask the same)
    arch.json              the architecture, with the data's class count
    lr-search.json         with lr="auto": validation top-1 per rate, the choice
    lr-search/lr-0.05/     with lr="auto": one run per rate (as below)
    weights.pt             one seed: state_dict of `nas.model.build(arch)`
    history.json           one seed: the learning curve (val top-1, train loss, lr per epoch)
    curve.png              the learning curve (every seed)
    checkpoint.pt          while a run is unfinished: its whole training state after the last epoch
    result.json            the figures; with several seeds, mean ± standard error over the seeds
    seed-N/                several seeds: one run per seed (arch.json, weights.pt, history.json, result.json)

A kill loses at most the current epoch: `resume=True` continues every unfinished run from its checkpoint (read
with `torch.load(weights_only=True)`) and skips the finished ones; the weights end the same as an uninterrupted
run's (same seed, one thread).
"""

from __future__ import annotations

import dataclasses
import math
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from nas.accuracy.data import DataSplits, load_data
from nas.accuracy.evaluator import zero_init_residuals
from nas.accuracy.train import TrainConfig, TrainingDiverged, _lr_at, evaluate, train
from nas.arch import Arch
from nas.errors import NasError
from nas.io import atomic_write, read_json, read_state_dict, writable_dir, write_json
from nas.sources import NETADAPT_HISTORY, NETADAPT_RESULT, NETADAPT_WEIGHTS

LR_GRID = (0.05, 0.1, 0.2)
LR_MAX = 2.0  # a peak SGD rate above this diverges on every net here: a typo, not a choice
SEEDS_MAX = 100
DEFAULT_EPOCHS = 15
CONFIG = "config.json"
RESULT = "result.json"
CHECKPOINT = "checkpoint.pt"
CURVE = "curve.png"
LR_SEARCH = "lr-search.json"
RESULT_FORMAT = "nas.train-result/1"
HISTORY_FORMAT = "nas.train-history/1"

# progress(steps done, steps in all, label of the run now training)
Progress = Callable[[int, int, str], None]


@dataclass
class TrainingRun:
    """What `train_source` did: `lr` the peak rate used, `lr_search` {rate: val top-1} when it was chosen,
    `runs` one result dict per seed (as in its result.json), `summary` the top-level result.json."""

    out: Path
    arch: Arch
    lr: float
    lr_search: dict[float, float | None] | None
    runs: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)


def mean_se(values: list[float]) -> dict[str, Any]:
    """Mean ± standard error of the mean (sample std / √n; None for one value)."""
    n = len(values)
    se = statistics.stdev(values) / math.sqrt(n) if n > 1 else None
    return {"mean": statistics.fmean(values), "se": se, "n": n, "values": values}


def check_args(epochs: Any, lr: Any, seeds: Any, lr_epochs: Any = None) -> float | None:
    """The user's numbers, checked before any work; returns the rate (None for "auto")."""

    def whole(name: str, value: Any, top: int | None = None) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1 or (top and value > top):
            limit = f" and at most {top}" if top else ""
            raise NasError(f"{name} must be a whole number of at least 1{limit}, got {value!r}")

    whole("epochs", epochs)
    whole("seeds", seeds, SEEDS_MAX)
    if lr_epochs is not None:
        whole("lr_epochs", lr_epochs)
    if lr == "auto":
        return None
    if isinstance(lr, str):
        try:
            lr = float(lr)
        except ValueError:
            raise NasError(f"lr must be auto or a number in (0, {LR_MAX:g}], got {lr!r}") from None
    if isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr <= LR_MAX:
        raise NasError(f"lr must be auto or a number in (0, {LR_MAX:g}], got {lr!r}")
    return float(lr)


def _resolve(source: str | Arch, num_classes: int) -> Arch:
    from nas.sources import resolve

    if isinstance(source, Arch):
        arch = source
    else:
        arch, _weights = resolve(str(source), num_classes=num_classes)  # its weights are not a starting point
    return arch if arch.num_classes == num_classes else arch.replace(num_classes=num_classes)


def _history_doc(
    result_history: list[tuple[int, float]],
    losses: list[float],
    cfg: TrainConfig,
    steps_per_epoch: int,
    total_steps: int,
) -> dict[str, Any]:
    rows = []
    for (epoch, acc), loss in zip(result_history, losses, strict=False):
        step = min(epoch * steps_per_epoch, total_steps)
        rows.append({"epoch": epoch, "val_top1": acc, "train_loss": loss, "lr": _lr_at(step - 1, total_steps, cfg)})
    return {"format": HISTORY_FORMAT, "epochs": rows}


def _plot(path: Path, curves: dict[str, list[dict[str, Any]]], title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6, 5), sharex=True)
    for label, rows in curves.items():
        epochs = [r["epoch"] for r in rows]
        top.plot(epochs, [r["val_top1"] for r in rows], marker="o", ms=3, label=label)
        bottom.plot(epochs, [r["train_loss"] for r in rows], marker="o", ms=3, label=label)
    top.set_ylabel("val top-1")
    bottom.set_ylabel("train loss")
    bottom.set_xlabel("epoch")
    top.set_title(title, fontsize=9)
    top.legend(fontsize=7)
    top.grid(alpha=0.3)
    bottom.grid(alpha=0.3)
    fig.tight_layout()
    try:
        atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    finally:
        plt.close(fig)


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several kinds for a damaged file
        first = str(err).strip().split("\n")[0][:120]
        raise NasError(f"checkpoint {path} is damaged ({first}); delete it to restart that run") from None
    if not isinstance(state, dict):
        raise NasError(f"checkpoint {path} is damaged (holds a {type(state).__name__}); delete it to restart that run")
    return state


def _run(
    arch: Arch,
    data: DataSplits,
    cfg: TrainConfig,
    out: Path,
    *,
    test: bool,
    label: str,
    tick: Callable[[int, str], None],
    probe: bool = False,
) -> dict[str, Any]:
    """One training (one rate, one seed) into `out`, continuing its checkpoint if there is one. A `probe` (a rate
    of the lr search) that diverges is a result (val_top1 None), not an error."""
    done_path = out / RESULT
    n = len(data.train)
    steps_per_epoch = max(1, n // min(cfg.batch_size, n))
    total = round(cfg.epochs * steps_per_epoch)
    if done_path.is_file():
        result = read_json(done_path, "training result")
        if test and result.get("test_top1") is None:  # finished without the test figure: add it now
            model = _model(arch, cfg.seed)
            model.load_state_dict(read_state_dict(out / NETADAPT_WEIGHTS))
            result["test_top1"] = evaluate(model, data.test)
            write_json(done_path, result)
        tick(total, label)
        return result
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / NETADAPT_RESULT, arch.to_dict())
    ckpt = out / CHECKPOINT
    state = _load_state(ckpt) if ckpt.is_file() else None
    resumed_from = int(state["epoch"]) if state else 0
    # The training time of the epochs before a kill, as the last checkpoint's history.json recorded it.
    before = (
        read_json(out / NETADAPT_HISTORY).get("seconds", 0.0) if state and (out / NETADAPT_HISTORY).is_file() else 0
    )
    model = _model(arch, cfg.seed)
    tick(int(state["step"]) if state else 0, label)

    def save(st: dict[str, Any]) -> None:
        atomic_write(ckpt, lambda tmp: torch.save(st, tmp))
        doc = _history_doc(st["history"], st["losses"], cfg, steps_per_epoch, total)
        write_json(out / NETADAPT_HISTORY, {**doc, "seconds": round(before + time.perf_counter() - started, 2)})

    started = time.perf_counter()
    try:
        res = train(model, data, cfg, resume=state, checkpoint=save, on_step=lambda s: tick(s, label))
    except TrainingDiverged as err:
        if not probe:
            raise
        result = {"format": RESULT_FORMAT, "seed": cfg.seed, "lr": cfg.lr, "val_top1": None, "diverged": str(err)}
        write_json(done_path, result)
        ckpt.unlink(missing_ok=True)
        tick(total, label)
        return result
    seconds = before + time.perf_counter() - started
    history = {**_history_doc(res.history, res.losses, cfg, steps_per_epoch, total), "seconds": round(seconds, 2)}
    atomic_write(out / NETADAPT_WEIGHTS, lambda tmp: torch.save(model.state_dict(), tmp))
    write_json(out / NETADAPT_HISTORY, history)
    _plot(out / CURVE, {label: history["epochs"]}, f"{arch.name or arch.hash}: {label}")
    result = {
        "format": RESULT_FORMAT,
        "arch": arch.name or arch.hash,
        "seed": cfg.seed,
        "lr": cfg.lr,
        "epochs": cfg.epochs,
        "steps": res.steps,
        "val_top1": res.accuracy,
        "test_top1": evaluate(model, data.test) if test else None,
        "train_loss": res.train_loss,
        "params": arch.params,
        "seconds": round(seconds, 2),
        "resumed_from_epoch": resumed_from,
    }
    write_json(done_path, result)
    ckpt.unlink(missing_ok=True)
    return result


def _model(arch: Arch, seed: int) -> torch.nn.Module:
    from nas.model import build

    torch.manual_seed(seed)  # the initialisation is the seed's, as the batch order is
    model = build(arch)
    zero_init_residuals(model)
    return model


def _copy_run(src: Path, dst: Path) -> None:
    """A finished run copied (its seed and rate are those asked for): the lr search's run at the chosen rate."""
    for name in (NETADAPT_RESULT, NETADAPT_WEIGHTS, NETADAPT_HISTORY, CURVE, RESULT):
        if (src / name).is_file():
            atomic_write(dst / name, lambda tmp, s=src / name: shutil.copyfile(s, tmp))


def train_source(
    source: str | Arch,
    data: str | DataSplits,
    out: str | Path,
    *,
    epochs: int = DEFAULT_EPOCHS,
    lr: float | str = "auto",
    seeds: int = 1,
    first_seed: int = 0,
    lr_epochs: int | None = None,
    test: bool = False,
    resume: bool = False,
    recipe: TrainConfig | None = None,
    progress: Progress | None = None,
) -> TrainingRun:
    """Train SOURCE on `data` (a `--data` spec or loaded splits) into `out` (module docstring for the files).

    `lr`: a peak rate in (0, LR_MAX] or "auto" (chosen from LR_GRID on the validation split, runs of `lr_epochs`
    epochs, default `epochs`); `seeds` runs first_seed, first_seed+1, …; `recipe` sets the rest of the recipe
    (its epochs, lr and seed are replaced; default TrainConfig(), one thread). `resume` continues what `out`
    holds. NasError, before any file is written, for a bad source, data set, number or output directory."""
    fixed_lr = check_args(epochs, lr, seeds, lr_epochs)
    if isinstance(first_seed, bool) or not isinstance(first_seed, int) or first_seed < 0:
        raise NasError(f"first_seed must be a whole number ≥ 0, got {first_seed!r}")
    if isinstance(data, str):
        data = load_data(data, seed=0)
    arch = _resolve(source, data.num_classes)
    base = recipe or TrainConfig()
    out = Path(out)
    config = {
        "source": source if isinstance(source, str) else "(an Arch)",
        "arch_hash": arch.hash,
        "data": data.name,
        "data_sizes": [len(data.train), len(data.val), len(data.test)],
        "epochs": epochs,
        "lr": "auto" if fixed_lr is None else fixed_lr,
        "lr_grid": list(LR_GRID) if fixed_lr is None else None,
        "lr_epochs": (lr_epochs or epochs) if fixed_lr is None else None,
        "seeds": list(range(first_seed, first_seed + seeds)),
        "recipe": {k: v for k, v in dataclasses.asdict(base).items() if k not in ("epochs", "lr", "seed", "threads")},
    }
    existing = out / CONFIG
    if existing.is_file() or (out / RESULT).is_file():
        if not resume:
            raise NasError(f"{out} already holds a training; pass --resume to continue it, or choose another --out")
        before = read_json(existing, "training config")
        if not isinstance(before, dict) or any(before.get(k) != v for k, v in config.items() if k != "source"):
            diff = (
                sorted(k for k in config if k != "source" and before.get(k) != config[k])
                if isinstance(before, dict)
                else []
            )
            raise NasError(f"cannot resume {out}: it was started with other settings ({', '.join(diff)})")
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise NasError(f"--out {out} exists and is not an empty directory")
    created = not out.exists()
    writable_dir(out)
    try:
        write_json(existing, config)
        write_json(out / NETADAPT_RESULT, arch.to_dict())
    except OSError as err:
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise NasError(f"cannot write to {out}: {err.strerror or err}") from None

    n = len(data.train)
    steps_per_epoch = max(1, n // min(base.batch_size, n))
    probe_epochs = lr_epochs or epochs
    total = steps_per_epoch * epochs * seeds + (
        steps_per_epoch * probe_epochs * len(LR_GRID) if fixed_lr is None else 0
    )
    done_before = 0

    def tick(step: int, label: str) -> None:
        if progress is not None:
            progress(done_before + step, total, label)

    def cfg(rate: float, seed: int, n_epochs: int) -> TrainConfig:
        return dataclasses.replace(base, epochs=n_epochs, lr=rate, seed=seed)

    lr_search: dict[float, float | None] | None = None
    lr_search_seconds = 0.0
    rate = fixed_lr
    if rate is None:
        lr_search = {}
        for r in LR_GRID:
            probe = _run(
                arch,
                data,
                cfg(r, first_seed, probe_epochs),
                out / "lr-search" / f"lr-{r:g}",
                test=False,
                label=f"lr {r:g}",
                tick=tick,
                probe=True,
            )
            lr_search[r] = probe["val_top1"]
            lr_search_seconds += probe.get("seconds", 0.0)
            done_before += steps_per_epoch * probe_epochs
        trained = [r for r in LR_GRID if lr_search[r] is not None]
        if not trained:
            raise NasError(f"training diverged at every rate of {LR_GRID}; give --lr")
        rate = max(trained, key=lambda r: (lr_search[r], -r))  # ties: the gentler rate
        write_json(
            out / LR_SEARCH,
            {
                "grid": list(LR_GRID),
                "epochs": probe_epochs,
                "seed": first_seed,
                "val_top1": {f"{r:g}": a for r, a in lr_search.items()},
                "chosen": rate,
            },
        )

    runs = []
    for seed in range(first_seed, first_seed + seeds):
        run_dir = out if seeds == 1 else out / f"seed-{seed}"
        if lr_search is not None and seed == first_seed and probe_epochs == epochs and not (run_dir / RESULT).is_file():
            _copy_run(out / "lr-search" / f"lr-{rate:g}", run_dir)  # the very same training: not run twice
        runs.append(_run(arch, data, cfg(rate, seed, epochs), run_dir, test=test, label=f"seed {seed}", tick=tick))
        done_before += steps_per_epoch * epochs

    summary: dict[str, Any] = {
        "format": RESULT_FORMAT,
        "arch": arch.name or arch.hash,
        "data": data.name,
        "lr": rate,
        "lr_search": None if lr_search is None else {f"{r:g}": a for r, a in lr_search.items()},
        "epochs": epochs,
        "seeds": [r["seed"] for r in runs],
        "val_top1": mean_se([r["val_top1"] for r in runs]),
        "test_top1": mean_se([r["test_top1"] for r in runs]) if test else None,
        "params": arch.params,
        "seconds": round(sum(r["seconds"] for r in runs), 2),
        "lr_search_seconds": round(lr_search_seconds, 2) if lr_search is not None else None,
    }
    if seeds > 1:
        curves = {f"seed {r['seed']}": read_json(out / f"seed-{r['seed']}" / NETADAPT_HISTORY)["epochs"] for r in runs}
        _plot(out / CURVE, curves, f"{arch.name or arch.hash}: lr {rate:g}, {seeds} seeds")
        write_json(out / RESULT, summary)
    else:
        runs[0].update({k: summary[k] for k in ("data", "lr_search", "lr_search_seconds")})
        write_json(out / RESULT, runs[0])
    return TrainingRun(out=out, arch=arch, lr=rate, lr_search=lr_search, runs=runs, summary=summary)
