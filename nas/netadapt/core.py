"""The NetAdapt loop (Yang et al. 2018, as MobileNetV3 used it), with its history, checkpoints and resume.

Iteration i asks for latency L_{i-1} − ΔR_i, ΔR_i = step·L₀·decay^(i−1) (never below the final target).
Every unit proposes its widest width that meets it; each proposal is pruned from the current network (L2-norm
filter choice, weights inherited), fine-tuned for a few steps and scored on the held-out validation split; the
winner (largest ΔAcc/|ΔLat| by default, MobileNetV3; or highest accuracy, the paper) becomes the next network.
It stops when the final target is met, then fine-tunes long.

Run directory (`out`): history.json (written atomically after every iteration), checkpoints/iter_NNN.pt
(arch JSON + state_dict of the network after iteration NNN; 000 is the starting network), and at the end
arch.json + weights.pt (the result, for `nas export arch.json --weights weights.pt`) and netadapt.png.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from nas.arch import Arch
from nas.errors import NasError
from nas.io import atomic_write, read_json, read_state_dict, writable_dir, write_json, write_text
from nas.model import Net, build
from nas.netadapt.proposals import LatencyFn, Proposal, propose, smallest
from nas.netadapt.prune import keep_largest, prune
from nas.netadapt.units import find_units

HISTORY_FORMAT = "nas.netadapt-history/1"
METRICS = ("slope", "accuracy")
# MobileNetV3 (Howard et al. 2019, §4.2): a constant step δ = 0.01·L₀.
PRESETS = {"mobilenetv3": {"step": 0.01, "decay": 1.0}}
MAX_HALVINGS = 12


class Trainer(Protocol):
    """What NetAdapt needs from training: a brief first training, short and long fine-tunes, accuracy."""

    def pretrain(self, net: nn.Module) -> None: ...

    def short(self, net: nn.Module, steps: int) -> None: ...

    def long(self, net: nn.Module, epochs: int) -> None: ...

    def accuracy(self, net: nn.Module, split: str = "val") -> float: ...


@dataclass(frozen=True)
class NetAdaptConfig:
    target_ms: float
    step: float = 0.05
    decay: float = 1.0
    short_steps: int = 100
    long_epochs: int = 5
    metric: str = "slope"
    seed: int = 0

    def check(self) -> None:
        if not (math.isfinite(self.target_ms) and self.target_ms > 0):
            raise NasError(f"target latency must be above 0 ms, got {self.target_ms}")
        if not 0 < self.step < 1:
            raise NasError(f"--step must be a fraction of the initial latency in (0, 1), got {self.step}")
        if not 0 < self.decay <= 1:
            raise NasError(f"--decay must be in (0, 1], got {self.decay}")
        if self.short_steps < 0 or self.long_epochs < 0:
            raise NasError("--short-steps and --long-epochs must be ≥ 0")
        if self.metric not in METRICS:
            raise NasError(f"--metric must be one of {', '.join(METRICS)}, got {self.metric!r}")

    def delta(self, initial_ms: float, iteration: int) -> float:
        return self.step * initial_ms * self.decay ** (iteration - 1)


@dataclass
class NetAdaptResult:
    arch: Arch
    net: Net
    latency_ms: float
    accuracy: float  # validation top-1 after the long fine-tune
    test_accuracy: float | None
    initial_arch: Arch
    initial_latency_ms: float
    initial_accuracy: float
    iterations: list[dict[str, Any]]
    pretrained: bool  # True when the starting model was trained here (no weights given)
    out: Path | None
    seconds: float
    resumed: bool = False
    history: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "arch": self.arch.to_dict(),
            "latency_ms": round(self.latency_ms, 4),
            "accuracy": self.accuracy,
            "test_accuracy": self.test_accuracy,
            "initial_latency_ms": round(self.initial_latency_ms, 4),
            "initial_accuracy": self.initial_accuracy,
            "iterations": len(self.iterations),
            "pretrained": self.pretrained,
            "resumed": self.resumed,
            "params": self.arch.params,
            "initial_params": self.initial_arch.params,
            "seconds": round(self.seconds, 2),
            "out": str(self.out) if self.out else None,
        }


# ---------------------------------------------------------------------------------------------- weights


def load_weights(net: nn.Module, path: str | Path, what: str = "network") -> None:
    """Load a state_dict file into `net`; NasError naming the first tensor that does not fit."""
    state = read_state_dict(path)
    mine = net.state_dict()
    missing = sorted(set(mine) - set(state))
    extra = sorted(set(state) - set(mine))
    wrong = [k for k in mine if k in state and state[k].shape != mine[k].shape]
    if missing or extra or wrong:
        if wrong:
            k = wrong[0]
            detail = f"{k} is {tuple(state[k].shape)} in the file, {tuple(mine[k].shape)} in the {what}"
        elif missing:
            detail = f"{len(missing)} tensors missing, e.g. {missing[0]}"
        else:
            detail = f"{len(extra)} unexpected tensors, e.g. {extra[0]}"
        raise NasError(f"weights {path} do not fit the {what}: {detail}")
    net.load_state_dict(state)


def _save_checkpoint(path: Path, arch: Arch, net: nn.Module, extra: dict[str, Any]) -> None:
    state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    payload = {"arch": arch.to_json(None), "state_dict": state, **extra}
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def _load_checkpoint(path: Path) -> tuple[Arch, Net, dict[str, Any]]:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        arch = Arch.from_json(payload["arch"])
    except Exception as err:
        raise NasError(f"cannot resume: checkpoint {path} is unreadable ({str(err).splitlines()[0]})") from None
    net = build(arch)
    net.load_state_dict(payload["state_dict"])
    return arch, net, payload


# ---------------------------------------------------------------------------------------------- plot


def plot_history(history: dict[str, Any], path: Path) -> Path:
    """Validation accuracy against predicted latency, a point per iteration (the NetAdapt trade-off curve)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    init = history["initial"]
    lat = [init["latency_ms"]] + [it["latency_ms"] for it in history["iterations"]]
    acc = [init["accuracy"]] + [it["accuracy"] for it in history["iterations"]]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lat, [a * 100 for a in acc], "o-", label="after short fine-tune")
    for i, (x, y) in enumerate(zip(lat, acc, strict=True)):
        ax.annotate(str(i), (x, y * 100), textcoords="offset points", xytext=(3, 3), fontsize=7)
    final = history.get("final")
    if final:
        ax.plot(
            [final["latency_ms"]],
            [final["accuracy"] * 100],
            "r*",
            markersize=12,
            label="after long fine-tune",
        )
    ax.axvline(history["config"]["target_ms"], color="grey", linestyle="--", label="target")
    ax.invert_xaxis()
    ax.set_xlabel(f"predicted latency (ms, {history.get('device', '')})")
    ax.set_ylabel("validation top-1 (%)")
    ax.set_title(f"NetAdapt: {history.get('model', '')}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=110))
    plt.close(fig)
    return path


# ---------------------------------------------------------------------------------------------- loop


def check_target(arch: Arch, latency: LatencyFn, target_ms: float) -> tuple[float, float]:
    """(initial latency, smallest reachable latency); NasError when there is nothing to do or no way to it."""
    initial = latency(arch)
    if initial <= target_ms:
        raise NasError(
            f"nothing to do: {arch.name or 'the model'} is predicted at {initial:.2f} ms, "
            f"already within the {target_ms:g} ms target"
        )
    _, floor = smallest(arch, latency)
    if floor > target_ms:
        raise NasError(
            f"target {target_ms:g} ms is unreachable: the smallest latency reachable by shrinking widths is "
            f"{floor:.2f} ms (every layer at 8 channels; initial {initial:.2f} ms)"
        )
    return initial, floor


def _widths(arch: Arch) -> dict[str, int]:
    return {u.name: u.width for u in find_units(arch).units}


def _seed(config: NetAdaptConfig, iteration: int, k: int) -> None:
    torch.manual_seed(config.seed * 1_000_003 + iteration * 1_000 + k)


def _score(metric: str, acc: float, lat: float, acc_prev: float, lat_prev: float) -> float:
    if metric == "accuracy":
        return acc
    return (acc - acc_prev) / max(abs(lat_prev - lat), 1e-9)


def _pruner(net: nn.Module, arch: Arch, units: Any) -> Callable[[Proposal], nn.Module]:
    def make(prop: Proposal) -> nn.Module:
        keep = keep_largest(net, arch, prop.unit, prop.width)
        return prune(net, arch, {prop.unit: keep}, units)[0]

    return make


def choose(
    proposals: list[Proposal],
    make: Callable[[Proposal], nn.Module],
    trainer: Trainer,
    config: NetAdaptConfig,
    iteration: int,
    lat_prev: float,
    acc_prev: float,
) -> tuple[Proposal, nn.Module, float, float, list[dict[str, Any]]]:
    """Prune (`make`), fine-tune briefly and score every proposal; the winner by `config.metric`.
    Returns (winner, its network, its accuracy, its score, one record per proposal)."""
    best: tuple[float, Proposal, nn.Module, float] | None = None
    records = []
    for prop in proposals:
        cand_net = make(prop)
        _seed(config, iteration, 1)  # every proposal of an iteration sees the same batches
        if config.short_steps:
            trainer.short(cand_net, config.short_steps)
        acc = trainer.accuracy(cand_net, "val")
        score = _score(config.metric, acc, prop.latency_ms, acc_prev, lat_prev)
        records.append(
            {
                "unit": prop.unit.name,
                "width": prop.width,
                "latency_ms": prop.latency_ms,
                "accuracy": acc,
                "score": score,
            }
        )
        if best is None or score > best[0]:
            best = (score, prop, cand_net, acc)
    assert best is not None
    score, prop, net, acc = best
    return prop, net, acc, score, records


def netadapt_loop(
    arch: Arch,
    latency: LatencyFn,
    trainer: Trainer,
    config: NetAdaptConfig,
    *,
    weights: str | Path | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    log: Callable[[str], None] = lambda _msg: None,
    meta: dict[str, Any] | None = None,
) -> NetAdaptResult:
    """NetAdapt over any latency function and trainer (the API for tests and other predictors)."""
    config.check()
    t0 = time.perf_counter()
    if out is None or not (Path(out) / "history.json").exists():
        check_target(arch, latency, config.target_ms)  # before any directory is made: a bad target leaves none
    out_dir = writable_dir(out) if out is not None else None
    hist_path = out_dir / "history.json" if out_dir else None
    ckpt_dir = out_dir / "checkpoints" if out_dir else None
    settings = {k: v for k, v in asdict(config).items() if k != "long_epochs"}

    history: dict[str, Any] | None = None
    resumed = False
    if hist_path is not None and hist_path.exists():
        if not resume:
            raise NasError(f"{out_dir} already holds a NetAdapt run; pass --resume to continue it, or another --out")
        history = read_json(hist_path, "NetAdapt history")
        if not isinstance(history, dict) or history.get("format") != HISTORY_FORMAT:
            raise NasError(f"cannot resume: {hist_path} is not a NetAdapt history ({HISTORY_FORMAT})")
        saved = {k: v for k, v in history.get("config", {}).items() if k != "long_epochs"}
        if saved != settings or history.get("start_hash") != arch.hash:
            diff = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
            what = ", ".join(diff) if diff else "the starting architecture"
            raise NasError(f"cannot resume {out_dir}: it was started with another {what}")
        resumed = True

    if history is None:
        initial_ms, floor_ms = check_target(arch, latency, config.target_ms)
        _seed(config, 0, 0)  # the starting weights (when trained here) are reproducible
        net = build(arch)
        pretrained = weights is None
        if weights is not None:
            load_weights(net, weights, f"architecture {arch.name or ''}".strip())
            log(f"loaded weights {weights}")
        else:
            log("no --weights given: training the starting model briefly first")
            trainer.pretrain(net)
        acc0 = trainer.accuracy(net, "val")
        log(f"start: {arch.name} {initial_ms:.2f} ms predicted, val top-1 {acc0:.4f}")
        history = {
            "format": HISTORY_FORMAT,
            "model": arch.name,
            "config": {**settings, "long_epochs": config.long_epochs},
            "start_hash": arch.hash,
            "start_arch": arch.to_dict(),
            **(meta or {}),
            "initial": {
                "latency_ms": initial_ms,
                "accuracy": acc0,
                "smallest_reachable_ms": floor_ms,
                "pretrained": pretrained,
                "weights": str(weights) if weights is not None else None,
                "widths": _widths(arch),
                "params": arch.params,
            },
            "iterations": [],
            "final": None,
        }
        current_arch, current_net = arch, net
        if ckpt_dir is not None and hist_path is not None:
            _save_checkpoint(ckpt_dir / "iter_000.pt", arch, net, {"iteration": 0})
            write_json(hist_path, history)
    else:
        done = len(history["iterations"])
        assert ckpt_dir is not None and out_dir is not None
        if history.get("final") and (out_dir / "arch.json").exists() and (out_dir / "weights.pt").exists():
            log(f"{out_dir} holds a finished run; returning its result")
            return _finished(arch, history, out_dir, time.perf_counter() - t0)
        current_arch, current_net, _ = _load_checkpoint(ckpt_dir / f"iter_{done:03d}.pt")
        log(f"resuming {out_dir} after iteration {done}")

    init = history["initial"]
    initial_ms, acc_prev = init["latency_ms"], init["accuracy"]
    if history["iterations"]:
        last = history["iterations"][-1]
        lat_prev, acc_prev = last["latency_ms"], last["accuracy"]
    else:
        lat_prev = initial_ms

    while lat_prev > config.target_ms:
        i = len(history["iterations"]) + 1
        t_iter = time.perf_counter()
        delta = config.delta(initial_ms, i)
        units = find_units(current_arch)
        target_i = max(lat_prev - delta, config.target_ms)
        proposals = propose(current_arch, latency, target_i, units)
        halved = 0
        while not proposals and halved < MAX_HALVINGS:
            # No unit alone saves ΔR_i any more (the big ones are narrow already): ask for less this time.
            delta /= 2
            halved += 1
            target_i = lat_prev - delta
            proposals = propose(current_arch, latency, target_i, units)
        if not proposals:
            where = f"; the history so far is in {out_dir}" if out_dir else ""
            raise NasError(f"iteration {i}: no unit can lower the latency below {lat_prev:.2f} ms any more{where}")
        if halved:
            log(
                f"iteration {i}: no unit saves {config.delta(initial_ms, i):.3f} ms alone; "
                f"step lowered to {delta:.3f} ms"
            )
        prop, current_net, acc, score, records = choose(
            proposals, _pruner(current_net, current_arch, units), trainer, config, i, lat_prev, acc_prev
        )
        assert prop.arch is not None
        current_arch = prop.arch.replace(name=current_arch.name)
        record = {
            "iteration": i,
            "target_ms": target_i,
            "step_halved": halved,
            "unit": prop.unit.name,
            "width_before": prop.unit.width,
            "width": prop.width,
            "latency_ms": prop.latency_ms,
            "accuracy": acc,
            "score": score,
            "params": current_arch.params,
            "widths": _widths(current_arch),
            "proposals": records,
            "seconds": round(time.perf_counter() - t_iter, 3),
        }
        history["iterations"].append(record)
        if ckpt_dir is not None and hist_path is not None:
            _save_checkpoint(ckpt_dir / f"iter_{i:03d}.pt", current_arch, current_net, {"iteration": i})
            write_json(hist_path, history)
        log(
            f"iteration {i}: target {target_i:.2f} ms, {len(proposals)} proposals; chose {prop.unit.name} "
            f"{prop.unit.width}→{prop.width}: {prop.latency_ms:.2f} ms, val top-1 {acc:.4f}"
        )
        lat_prev, acc_prev = prop.latency_ms, acc

    if config.long_epochs:
        log(f"long fine-tune: {config.long_epochs} epochs")
        _seed(config, len(history["iterations"]) + 1, 0)
        trainer.long(current_net, config.long_epochs)
    acc_final = trainer.accuracy(current_net, "val")
    test_acc = trainer.accuracy(current_net, "test")
    final_ms = latency(current_arch)
    history["final"] = {
        "latency_ms": final_ms,
        "accuracy": acc_final,
        "test_accuracy": test_acc,
        "long_epochs": config.long_epochs,
        "params": current_arch.params,
        "widths": _widths(current_arch),
    }
    if out_dir is not None and hist_path is not None:
        write_text(out_dir / "arch.json", current_arch.to_json())
        state = {k: v.detach().cpu() for k, v in current_net.state_dict().items()}
        atomic_write(out_dir / "weights.pt", lambda tmp: torch.save(state, tmp))
        write_json(hist_path, history)
        plot_history(history, out_dir / "netadapt.png")
    return NetAdaptResult(
        arch=current_arch,
        net=current_net,
        latency_ms=final_ms,
        accuracy=acc_final,
        test_accuracy=test_acc,
        initial_arch=arch,
        initial_latency_ms=initial_ms,
        initial_accuracy=init["accuracy"],
        iterations=history["iterations"],
        pretrained=bool(init["pretrained"]),
        out=out_dir,
        seconds=time.perf_counter() - t0,
        resumed=resumed,
        history=history,
    )


def _finished(start: Arch, history: dict[str, Any], out_dir: Path, seconds: float) -> NetAdaptResult:
    final_arch = Arch.from_json((out_dir / "arch.json").read_text())
    net = build(final_arch)
    load_weights(net, out_dir / "weights.pt", "result architecture")
    init, final = history["initial"], history["final"]
    return NetAdaptResult(
        arch=final_arch,
        net=net,
        latency_ms=final["latency_ms"],
        accuracy=final["accuracy"],
        test_accuracy=final.get("test_accuracy"),
        initial_arch=start,
        initial_latency_ms=init["latency_ms"],
        initial_accuracy=init["accuracy"],
        iterations=history["iterations"],
        pretrained=bool(init["pretrained"]),
        out=out_dir,
        seconds=seconds,
        resumed=True,
        history=history,
    )
