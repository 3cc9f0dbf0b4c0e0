"""NetAdapt's one loop (Yang et al. 2018, as MobileNetV3 used it), with its history, checkpoints and resume, over
anything with width units (`nas.netadapt.subject.Adaptable`: a spec and its network, or a user's traced module).

Iteration i asks for latency L_{i-1} − ΔR_i, ΔR_i = step·L₀·decay^(i−1) (never below the final target).
Every unit proposes its widest width that meets it; each proposal is pruned from the current network (L2-norm
filter choice, weights inherited), scored on the held-out validation split after adaptive BatchNorm and/or a
short fine-tune, and the winner (largest ΔAcc/|ΔLat| by default, MobileNetV3; or highest accuracy, the paper)
becomes the next network. It stops when the final target is met, then fine-tunes long.

Run directory (`out`): history.json (the whole run, written atomically after every iteration), journal.jsonl
(the same records appended one line each: a torn or lost history.json is rebuilt from its complete lines),
checkpoints/iter_NNN.pt (the network after iteration NNN; 000 is the start), the result files of the subject
(spec: arch.json + weights.pt; traced module: weights.pt + channels.json) and netadapt.png.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from nas.arch import Arch
from nas.errors import NasError
from nas.io import atomic_write, read_json, read_state_dict, writable_dir, write_json
from nas.netadapt.config import NetAdaptConfig
from nas.netadapt.proposals import Proposal, propose_units
from nas.netadapt.subject import Adaptable

HISTORY_FORMAT = "nas.netadapt-history/1"
MAX_HALVINGS = 12
CHANCE_MARGIN = 1.25  # a final validation top-1 at or below this × 1/classes is reported as chance


class Trainer(Protocol):
    """What NetAdapt needs from training: a brief first training, BN recalibration, short and long fine-tunes,
    accuracy."""

    def pretrain(self, net: nn.Module) -> None: ...

    def recalibrate(self, net: nn.Module, batches: int) -> None: ...

    def short(self, net: nn.Module, steps: int) -> None: ...

    def long(self, net: nn.Module, epochs: int) -> None: ...

    def accuracy(self, net: nn.Module, split: str = "val") -> float: ...


@dataclass
class NetAdaptResult:
    start: Adaptable
    final: Adaptable
    latency_ms: float
    accuracy: float  # validation top-1 after the long fine-tune
    test_accuracy: float | None
    initial_latency_ms: float
    initial_accuracy: float
    iterations: list[dict[str, Any]]
    pretrained: bool  # True when the starting model was trained here (no weights given)
    out: Path | None
    seconds: float
    resumed: bool = False
    history: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def net(self) -> nn.Module:
        return self.final.net

    @property
    def arch(self) -> Arch | None:
        """The result's spec (None for a traced module: it is not expressed as one)."""
        return getattr(self.final, "arch", None)

    @property
    def initial_arch(self) -> Arch | None:
        return getattr(self.start, "arch", None)

    def widths(self) -> dict[str, int]:
        return self.final.widths()

    def summary(self) -> dict[str, Any]:
        arch = self.arch
        return {
            "arch": arch.to_dict() if arch is not None else None,
            "latency_ms": round(self.latency_ms, 4),
            "accuracy": self.accuracy,
            "test_accuracy": self.test_accuracy,
            "initial_latency_ms": round(self.initial_latency_ms, 4),
            "initial_accuracy": self.initial_accuracy,
            "iterations": len(self.iterations),
            "pretrained": self.pretrained,
            "resumed": self.resumed,
            "params": self.final.params,
            "initial_params": self.history.get("initial", {}).get("params", self.start.params),
            "widths": self.widths(),
            "warnings": self.warnings,
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


def check_target(subject: Adaptable, target_ms: float) -> tuple[float, float]:
    """(initial latency, smallest reachable latency); NasError when there is nothing to do or no way to it."""
    if not subject.units:
        raise NasError("netadapt: the model has no channels that can be pruned (every group is fixed)")
    initial = subject.latency()
    assert initial is not None
    if initial <= target_ms:
        raise NasError(
            f"nothing to do: {subject.name} is predicted at {initial:.2f} ms, "
            f"already within the {target_ms:g} ms target"
        )
    floor_widths = subject.floor_widths()
    subject.measure([floor_widths])
    floor = subject.latency(floor_widths)
    if floor is None or floor > target_ms:
        raise NasError(
            f"target {target_ms:g} ms is unreachable: the smallest latency reachable by shrinking widths is "
            f"{floor if floor is not None else initial:.2f} ms (every layer at 8 channels; initial {initial:.2f} ms)"
        )
    return initial, floor


def _seed(config: NetAdaptConfig, iteration: int, k: int) -> None:
    torch.manual_seed(config.seed * 1_000_003 + iteration * 1_000 + k)


def _score(metric: str, acc: float, lat: float, acc_prev: float, lat_prev: float) -> float:
    if metric == "accuracy":
        return acc
    return (acc - acc_prev) / max(abs(lat_prev - lat), 1e-9)


def choose(
    proposals: list[Proposal],
    make: Callable[[Proposal], Adaptable],
    trainer: Trainer,
    config: NetAdaptConfig,
    iteration: int,
    lat_prev: float,
    acc_prev: float,
) -> tuple[Proposal, Adaptable, float, float, list[dict[str, Any]]]:
    """Prune (`make`), score every proposal (adaptive BN and/or a short fine-tune, then validation top-1); the
    winner by `config.metric`. Returns (winner, its pruned subject, its accuracy, its score, a record per
    proposal). `config` must be resolved."""
    best: tuple[float, Proposal, Adaptable, float] | None = None
    records = []
    for prop in proposals:
        cand = make(prop)
        _seed(config, iteration, 1)  # every proposal of an iteration sees the same batches
        if config.score == "adaptive-bn":
            trainer.recalibrate(cand.net, config.bn_batches)
        if config.short_steps:
            trainer.short(cand.net, config.short_steps)
        acc = trainer.accuracy(cand.net, "val")
        score = _score(config.metric, acc, prop.latency_ms, acc_prev, lat_prev)
        records.append({"unit": prop.unit.name, "width": prop.width, "latency_ms": prop.latency_ms,
                        "accuracy": acc, "score": score})  # fmt: skip
        if best is None or score > best[0]:
            best = (score, prop, cand, acc)
    assert best is not None
    score, prop, cand, acc = best
    return prop, cand, acc, score, records


def _proposals(
    subject: Adaptable, config: NetAdaptConfig, initial_ms: float, lat_prev: float, i: int
) -> tuple[list[Proposal], float, int]:
    """This iteration's proposals, its target and how often its step was halved: when no unit alone saves ΔR_i
    any more (the big ones are narrow already), ask for less, up to MAX_HALVINGS times."""
    delta = config.delta(initial_ms, i)
    for halved in range(MAX_HALVINGS + 1):
        target_i = max(lat_prev - delta, config.target_ms)
        proposals = propose_units(subject, target_i)
        if proposals:
            return proposals, target_i, halved
        delta /= 2
    raise NasError(f"iteration {i}: no unit can lower the latency below {lat_prev:.2f} ms any more")


class _Run:
    """The run directory: history.json, journal.jsonl and checkpoints (nothing at all without `out`)."""

    def __init__(self, out: Path | None):
        self.out = out

    def has_run(self) -> bool:
        return self.out is not None and ((self.out / "history.json").exists() or (self.out / "journal.jsonl").exists())

    def ckpt(self, i: int) -> Path:
        assert self.out is not None
        return self.out / "checkpoints" / f"iter_{i:03d}.pt"

    def start(self, history: dict[str, Any], subject: Adaptable) -> None:
        if self.out is None:
            return
        self.save_checkpoint(0, subject)
        self._rewrite(history)

    def save_checkpoint(self, i: int, subject: Adaptable) -> None:
        payload = {**subject.checkpoint(), "iteration": i}
        atomic_write(self.ckpt(i), lambda tmp: torch.save(payload, tmp))

    def record(self, history: dict[str, Any], entry: dict[str, Any]) -> None:
        """Append one journal line (flushed to disk), then rewrite history.json."""
        if self.out is None:
            return
        with open(self.out / "journal.jsonl", "a") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()
            os.fsync(f.fileno())
        write_json(self.out / "history.json", history)

    def load_checkpoint(self, start: Adaptable, i: int) -> Adaptable:
        path = self.ckpt(i)
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
            return start.restore(payload)
        except Exception as err:
            raise NasError(f"cannot resume: checkpoint {path} is unreadable ({str(err).splitlines()[0]})") from None

    def read(self, log: Callable[[str], None]) -> dict[str, Any]:
        """The history to resume from: history.json, or (torn, lost, or behind) the journal's complete lines;
        trailing iterations whose checkpoint cannot be read are dropped. Says what it dropped."""
        assert self.out is not None
        history: dict[str, Any] | None = None
        try:
            history = read_json(self.out / "history.json", "NetAdapt history")
            if not isinstance(history, dict) or history.get("format") != HISTORY_FORMAT:
                history = None
        except NasError:
            history = None
        header, lines, torn = self._journal()
        if history is None:
            if header is None:
                raise NasError(f"cannot resume: {self.out} holds no readable NetAdapt history ({HISTORY_FORMAT})")
            log(f"history.json of {self.out} is unreadable: rebuilt from journal.jsonl ({len(lines)} iterations)")
            history = {**header, "iterations": _consecutive(lines), "final": None}
            finals = [e["final"] for e in lines if "final" in e]
            history["final"] = finals[-1] if finals else None
        else:
            from_journal = _consecutive(lines)
            if len(from_journal) > len(history["iterations"]):
                log(f"journal.jsonl holds {len(from_journal) - len(history['iterations'])} iteration(s) more than "
                    "history.json: taking them")  # fmt: skip
                history["iterations"] = from_journal
        if torn:
            log(f"dropped a torn last line of {self.out / 'journal.jsonl'} ({torn} bytes; an interrupted write)")
        while history["iterations"] and not self._readable(len(history["iterations"])):
            dropped = history["iterations"].pop()
            history["final"] = None
            log(f"dropped iteration {dropped['iteration']}: its checkpoint is missing or unreadable")
        self._rewrite(history)  # the journal again holds exactly what is kept
        return history

    def _rewrite(self, history: dict[str, Any]) -> None:
        assert self.out is not None
        header = {k: v for k, v in history.items() if k not in ("iterations", "final")}
        lines = [header, *({"iteration": it} for it in history["iterations"])]
        if history.get("final"):
            lines.append({"final": history["final"]})
        text = "".join(json.dumps(line) + "\n" for line in lines)
        atomic_write(self.out / "journal.jsonl", lambda tmp: tmp.write_text(text))
        write_json(self.out / "history.json", history)

    def _journal(self) -> tuple[dict[str, Any] | None, list[dict[str, Any]], int]:
        assert self.out is not None
        path = self.out / "journal.jsonl"
        if not path.exists():
            return None, [], 0
        header, entries, torn = None, [], 0
        for line in path.read_bytes().split(b"\n"):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                torn += len(line)
                break  # nothing after a torn line is trusted
            if header is None:
                header = entry if isinstance(entry, dict) and entry.get("format") == HISTORY_FORMAT else None
                if header is None:
                    break
            else:
                entries.append(entry)
        return header, entries, torn

    def _readable(self, i: int) -> bool:
        try:
            torch.load(self.ckpt(i), map_location="cpu", weights_only=True)
            return True
        except Exception:
            return False


def _consecutive(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The journal's iteration records 1, 2, … (a later record of a number replaces an earlier one)."""
    by_number = {
        e["iteration"].get("iteration"): e["iteration"] for e in entries if isinstance(e.get("iteration"), dict)
    }
    out = []
    while len(out) + 1 in by_number:
        out.append(by_number[len(out) + 1])
    return out


def netadapt_loop(
    start: Adaptable,
    trainer: Trainer,
    config: NetAdaptConfig,
    *,
    weights: str | Path | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    log: Callable[[str], None] = lambda _msg: None,
    meta: dict[str, Any] | None = None,
    stats: Callable[[], dict[str, Any]] | None = None,
) -> NetAdaptResult:
    """NetAdapt over anything with width units (the API for tests and other predictors). `start` holds the
    starting network (weights from `weights`, else trained here briefly first); `stats()`, when given, is
    recorded with every iteration (e.g. the cost of timing new ops)."""
    config = config.resolved()
    t0 = time.perf_counter()
    run = _Run(Path(out) if out is not None else None)
    made_dir = out is not None and not Path(out).exists()
    settings = {k: v for k, v in asdict(config).items() if k != "long_epochs"}
    resumed = run.has_run()
    try:
        if resumed:
            if not resume:
                raise NasError(f"{out} already holds a NetAdapt run; pass --resume to continue it, or another --out")
            history = run.read(log)
            saved = {k: v for k, v in history.get("config", {}).items() if k != "long_epochs"}
            if saved != settings or history.get("start_hash") != start.identity:
                diff = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
                raise NasError(f"cannot resume {out}: it was started with another "
                               f"{', '.join(diff) if diff else 'starting model'}")  # fmt: skip
        else:
            initial_ms, floor_ms = check_target(start, config.target_ms)  # before any training
            if out is not None:
                writable_dir(out)
            _seed(config, 0, 0)  # the starting weights (when trained here) are reproducible
            if weights is not None:
                load_weights(start.net, weights, start.name)
                log(f"loaded weights {weights}")
    except NasError:
        if made_dir and out is not None and not run.has_run():
            shutil.rmtree(out, ignore_errors=True)  # a refused run leaves nothing behind
        raise

    if resumed:
        done = len(history["iterations"])
        if history.get("final") and done == history["final"].get("iterations", done) and run.out is not None:
            final = run.load_checkpoint(start, done)
            try:
                load_weights(final.net, run.out / "weights.pt", "result")
            except NasError:
                history["final"] = None
            else:
                log(f"{out} holds a finished run; returning its result")
                return _result(start, final, history, run.out, time.perf_counter() - t0, resumed=True)
        current = run.load_checkpoint(start, done)
        log(f"resuming {out} after iteration {done}")
    else:
        if weights is None:
            log("no --weights given: training the starting model briefly first")
            trainer.pretrain(start.net)
        acc0 = trainer.accuracy(start.net, "val")
        log(f"start: {start.name} {initial_ms:.2f} ms predicted, val top-1 {acc0:.4f}")
        history = {
            "format": HISTORY_FORMAT,
            "model": start.name,
            "config": {**settings, "long_epochs": config.long_epochs},
            "start_hash": start.identity,
            **({"start_arch": start.arch.to_dict()} if isinstance(getattr(start, "arch", None), Arch) else {}),
            **(meta or {}),
            "initial": {
                "latency_ms": initial_ms,
                "accuracy": acc0,
                "smallest_reachable_ms": floor_ms,
                "pretrained": weights is None,
                "weights": str(weights) if weights is not None else None,
                "widths": start.widths(),
                "params": start.params,
            },
            "iterations": [],
            "final": None,
        }
        current = start
        run.start(history, start)

    init = history["initial"]
    initial_ms, acc_prev, lat_prev = init["latency_ms"], init["accuracy"], init["latency_ms"]
    if history["iterations"]:
        lat_prev, acc_prev = history["iterations"][-1]["latency_ms"], history["iterations"][-1]["accuracy"]

    while lat_prev > config.target_ms:
        i = len(history["iterations"]) + 1
        t_iter = time.perf_counter()
        proposals, target_i, halved = _proposals(current, config, initial_ms, lat_prev, i)
        if halved:
            log(f"iteration {i}: no unit saves {config.delta(initial_ms, i):.3f} ms alone; "
                f"step lowered to {config.delta(initial_ms, i) / 2**halved:.3f} ms")  # fmt: skip

        def make(prop: Proposal, cur: Adaptable = current) -> Adaptable:
            return cur.prune({prop.unit: cur.keep(prop.unit, prop.width)})

        prop, current, acc, score, records = choose(proposals, make, trainer, config, i, lat_prev, acc_prev)
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
            "params": current.params,
            "widths": current.widths(),
            "proposals": records,
            "seconds": round(time.perf_counter() - t_iter, 3),
            **({"pricing": stats()} if stats else {}),
        }
        history["iterations"].append(record)
        if run.out is not None:
            run.save_checkpoint(i, current)
            run.record(history, {"iteration": record})
        log(
            f"iteration {i}: target {target_i:.2f} ms, {len(proposals)} proposals; chose {prop.unit.name} "
            f"{prop.unit.width}→{prop.width}: {prop.latency_ms:.2f} ms, val top-1 {acc:.4f}"
        )
        lat_prev, acc_prev = prop.latency_ms, acc

    if config.long_epochs:
        log(f"long fine-tune: {config.long_epochs} epochs")
        _seed(config, len(history["iterations"]) + 1, 0)
        trainer.long(current.net, config.long_epochs)
    acc_final = trainer.accuracy(current.net, "val")
    final_ms = current.latency()
    assert final_ms is not None
    warnings = []
    classes = getattr(trainer, "num_classes", None)
    if classes and acc_final <= CHANCE_MARGIN / classes:
        warnings.append(
            f"the result's validation top-1 ({acc_final:.3f}) is at chance for {classes} classes: its widths were "
            "chosen on noise. Train longer (--pretrain-epochs, or --weights of a trained model) or use real data"
        )
    history["final"] = {
        "latency_ms": final_ms,
        "accuracy": acc_final,
        "test_accuracy": trainer.accuracy(current.net, "test"),
        "long_epochs": config.long_epochs,
        "iterations": len(history["iterations"]),
        "params": current.params,
        "widths": current.widths(),
        "warnings": warnings,
        **({"pricing": stats()} if stats else {}),
    }
    for w in warnings:
        log(f"warning: {w}")
    if run.out is not None:
        history["final"]["files"] = current.write_result(run.out)
        run.record(history, {"final": history["final"]})
        plot_history(history, run.out / "netadapt.png")
    return _result(start, current, history, run.out, time.perf_counter() - t0, resumed=resumed)


def _result(
    start: Adaptable, final: Adaptable, history: dict[str, Any], out: Path | None, seconds: float, resumed: bool
) -> NetAdaptResult:
    init, fin = history["initial"], history["final"]
    return NetAdaptResult(
        start=start,
        final=final,
        latency_ms=fin["latency_ms"],
        accuracy=fin["accuracy"],
        test_accuracy=fin.get("test_accuracy"),
        initial_latency_ms=init["latency_ms"],
        initial_accuracy=init["accuracy"],
        iterations=history["iterations"],
        pretrained=bool(init["pretrained"]),
        out=out,
        seconds=seconds,
        resumed=resumed,
        history=history,
        warnings=list(fin.get("warnings", [])),
    )
