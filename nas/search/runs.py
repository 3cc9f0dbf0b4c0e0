"""The run directory `runs/<name>/`: what a search leaves behind, written so that a kill loses nothing but the
trial in flight, and read back by `--resume` and `nas export runs/<name>`.

    config.json        the effective configuration (what `--resume` reloads)
    study.journal      the Optuna study (JournalStorage; `optuna-dashboard runs/<name>/study.journal`)
    trials/NNNN.json   one record per finished trial
    best.json          the best trial's record (highest reward)
    pareto.json        the records not dominated in (accuracy ↑, predicted latency ↓)
    pareto.png         accuracy vs predicted latency, zoo baselines at their predicted latency
    summary.md         the result in words
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from nas.arch import Arch, SpecError
from nas.errors import NasError
from nas.io import atomic_write, read_json, write_json

STUDY_NAME = "nas-search"
STUDY_FILE = "study.journal"
RECORD_SCHEMA = "nas.search.trial/1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def default_name() -> str:
    return "search-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise NasError(f"--name {name!r}: use letters, digits, '.', '_' or '-' (it names a directory)")
    return name


def record_path(run_dir: Path, number: int) -> Path:
    return run_dir / "trials" / f"{number:04d}.json"


def write_record(run_dir: Path, record: dict[str, Any]) -> Path:
    return write_json(record_path(run_dir, record["number"]), record)


def load_records(run_dir: Path) -> list[dict[str, Any]]:
    records = []
    for path in sorted((run_dir / "trials").glob("[0-9]*.json")):
        records.append(read_json(path, "trial record"))
    return sorted(records, key=lambda r: r["number"])


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def best_record(records: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """Highest reward among completed trials; ties go to the lower latency, then the earlier trial."""
    done = [r for r in records if r["status"] == "complete" and _finite(r.get("reward"))]
    if not done:
        return None
    return max(done, key=lambda r: (r["reward"], -r["latency_ms"], -r["number"]))


def pareto_records(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Completed trials that no other completed trial beats on both accuracy (↑) and predicted latency (↓)."""
    done = [r for r in records if r["status"] == "complete" and _finite(r.get("accuracy"))]
    front = []
    for r in done:
        dominated = any(
            o["accuracy"] >= r["accuracy"]
            and o["latency_ms"] <= r["latency_ms"]
            and (o["accuracy"] > r["accuracy"] or o["latency_ms"] < r["latency_ms"])
            for o in done
        )
        if not dominated:
            front.append(r)
    # One entry per (accuracy, latency) point: equal points are the same trade-off.
    unique: dict[tuple[float, float], dict[str, Any]] = {}
    for r in sorted(front, key=lambda r: r["number"]):
        unique.setdefault((r["accuracy"], r["latency_ms"]), r)
    return sorted(unique.values(), key=lambda r: r["latency_ms"])


def write_results(run_dir: Path, records: list[dict[str, Any]]) -> dict[str, Any] | None:
    """best.json and pareto.json from the records (cheap: rewritten after every trial)."""
    best = best_record(records)
    write_json(run_dir / "best.json", best if best is not None else {"status": "no completed trial"})
    write_json(
        run_dir / "pareto.json",
        {"trials": [r["number"] for r in pareto_records(records)], "records": pareto_records(records)},
    )
    return best


def plot_pareto(
    path: Path,
    records: list[dict[str, Any]],
    target_ms: float,
    baselines: list[tuple[str, float]],
    device: str,
    kind: str,
    metric: str,
) -> Path:
    """Accuracy vs predicted latency of every completed trial, the Pareto front, the target, and the zoo
    baselines as vertical lines at their predicted latency (their ImageNet accuracy is not on this task's
    scale,
    so they are placed by latency only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in records if r["status"] == "complete" and _finite(r.get("accuracy"))]
    front = pareto_records(records)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    if done:
        ax.scatter([r["latency_ms"] for r in done], [r["accuracy"] for r in done], s=14, alpha=0.5, label="trials")
        ax.plot(
            [r["latency_ms"] for r in front],
            [r["accuracy"] for r in front],
            "o-",
            color="C3",
            ms=5,
            label="Pareto front",
        )
    ax.axvline(target_ms, color="k", ls="--", lw=1, label=f"target {target_ms:g} ms")
    lats = [r["latency_ms"] for r in done] + [target_ms]
    lo, hi = min(lats) / 1.6, max(lats) * 1.6
    for i, (name, ms) in enumerate(b for b in baselines if lo <= b[1] <= hi):
        ax.axvline(ms, color="C2", ls=":", lw=1)
        ax.annotate(
            name,
            (ms, 0.02 + 0.07 * (i % 5)),
            xycoords=("data", "axes fraction"),
            rotation=90,
            fontsize=7,
            color="C2",
            ha="right",
            va="bottom",
        )
    est = " (estimated table)" if kind == "estimated" else ""
    ax.set_xlabel(f"predicted latency on {device}{est}, ms")
    ax.set_ylabel(metric)
    ax.set_title("search trials; dotted: zoo baselines at their predicted latency", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


def arch_of(record: dict[str, Any], where: str) -> Arch:
    try:
        return Arch.from_dict(record["arch"])
    except (KeyError, TypeError, SpecError) as err:
        raise NasError(f"{where}: no valid architecture in the record ({err})") from None


def is_run_dir(path: Path) -> bool:
    """A search run: its config, its study and its trial records (NetAdapt runs look different)."""
    return (path / "config.json").is_file() and (path / STUDY_FILE).is_file() and (path / "trials").is_dir()


def run_arch(run_dir: Path, trial: int | None = None) -> Arch:
    """The best trial's architecture of a search run, or trial N's."""
    if trial is not None:
        path = record_path(run_dir, trial)
        if not path.is_file():
            raise NasError(f"{run_dir} has no trial {trial} (records are in {run_dir / 'trials'})")
        record = read_json(path, "trial record")
        if not record.get("arch"):
            raise NasError(f"trial {trial} of {run_dir} has no architecture (status {record.get('status')})")
        return arch_of(record, str(path))
    best = read_json(run_dir / "best.json", "best trial file")
    if "arch" not in best:
        raise NasError(f"{run_dir} has no completed trial yet")
    return arch_of(best, str(run_dir / "best.json"))


def pareto_archs(run_dir: str | Path) -> list[Arch]:
    """Every architecture on the run's Pareto front, fastest first, named `<run>-trialNNNN`."""
    run_dir = Path(run_dir)
    front = read_json(run_dir / "pareto.json", "Pareto file").get("records", [])
    if not front:
        raise NasError(f"{run_dir} has no completed trial yet")
    return [arch_of(r, str(run_dir / "pareto.json")) for r in front]


def json_line(data: Any) -> str:
    return json.dumps(data, sort_keys=True)
