"""The run directory `runs/<name>/`: what a search leaves behind, written so that a kill loses nothing but the
trial in flight, and read back by `--resume` and `nas export runs/<name>`.

    config.json        the effective configuration (what `--resume` reloads)
    study.journal      the Optuna study (`nas.search.journal`; `optuna-dashboard runs/<name>/study.journal`)
    trials/NNNN.json   one `TrialRecord` per finished trial
    best.json          the best trial's record (highest reward)
    pareto.json        the records not dominated in (accuracy ↑, predicted latency ↓)
    pareto.png         accuracy vs predicted latency, zoo baselines at their predicted latency
    summary.md         the result in words
    .lock              held (flock) by the one process running the search; holds its pid
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import math
import os
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.arch import NAME_MAX, Arch, SpecError
from nas.errors import NasError
from nas.io import read_json, write_json

STUDY_NAME = "nas-search"
STUDY_FILE = "study.journal"
LOCK_FILE = ".lock"
RECORD_SCHEMA = "nas.search.trial/1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

# Trial outcomes. Evaluated ones count against `--trials`; a rejected candidate (screened out on predicted
# latency), a reused one (its architecture was already evaluated) and an interrupted one cost no evaluation.
EVALUATED = ("complete", "pruned", "failed")
STATUSES = (*EVALUATED, "rejected", "interrupted")


def default_name() -> str:
    return "search-" + _dt.datetime.now().strftime("%Y%m%d-%H%M%S")


TRIAL_ROOM = len("-trial000000")  # what `trial_name` adds to the run's name, up to a million trials


def check_name(name: str) -> str:
    """A run name names a directory and, with `trial_name`'s suffix, every trial's architecture."""
    limit = NAME_MAX - TRIAL_ROOM
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > limit:
        raise NasError(
            f"--name {str(name)[:40]!r}: use up to {limit} letters, digits, '.', '_' or '-', starting with a letter "
            "or digit (it names a directory and, with -trialNNNN, each trial's architecture)"
        )
    return name


def trial_name(run: str, number: int) -> str:
    """The name a trial's architecture carries (and `nas export --pareto` names its folders by)."""
    return f"{run}-trial{number:04d}"


def record_path(run_dir: Path, number: int) -> Path:
    return run_dir / "trials" / f"{number:04d}.json"


@dataclass
class TrialRecord:
    """One finished trial, as trials/NNNN.json holds it."""

    number: int
    status: str
    params: dict[str, Any]
    arch: dict[str, Any] | None
    latency_ms: float | None
    accuracy: float | None = None
    reward: float | None = None
    error: str | None = None
    eval_seconds: float | None = None
    eval: Any = None
    wall_s: float | None = None
    reused_from: int | None = None  # the earlier trial whose result this one reuses (same architecture)
    schema: str = RECORD_SCHEMA
    arch_hash: str | None = field(default=None, repr=False, compare=False)  # not stored: derived from arch

    @property
    def counts(self) -> bool:
        """Whether the trial cost an evaluation (and so counts against `--trials`)."""
        return self.status in EVALUATED and self.reused_from is None

    @property
    def done(self) -> bool:
        """Completed with a finite accuracy and reward: a candidate for best.json and the front."""
        return self.status == "complete" and _finite(self.accuracy) and _finite(self.reward)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        del out["arch_hash"]
        return out

    @classmethod
    def from_dict(cls, data: Any, where: str) -> TrialRecord:
        if not isinstance(data, dict) or not isinstance(data.get("number"), int) or "status" not in data:
            raise NasError(f"{where} is not a trial record")
        known = {f.name for f in dataclasses.fields(cls)} - {"arch_hash"}
        values = {k: v for k, v in data.items() if k in known}
        values.setdefault("params", {})
        values.setdefault("arch", None)
        values.setdefault("latency_ms", None)
        record = cls(**values)
        if record.arch:
            try:
                record.arch_hash = Arch.from_dict(record.arch).hash
            except (SpecError, KeyError, TypeError, ValueError):
                record.arch_hash = None
        return record

    def arch_spec(self, where: str) -> Arch:
        return arch_of(self.to_dict(), where)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def write_record(run_dir: Path, record: TrialRecord) -> Path:
    return write_json(record_path(run_dir, record.number), record.to_dict())


def load_records(run_dir: Path) -> list[TrialRecord]:
    """Every readable record, by trial number (`Ledger.load` says which files are not records)."""
    return Ledger.load(run_dir).sorted()


class Ledger:
    """The run's records in memory: by number, by architecture hash (to reuse an evaluated candidate), and
    the count of evaluations; written through to trials/ and best.json/pareto.json."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.records: dict[int, TrialRecord] = {}
        self.by_hash: dict[str, TrialRecord] = {}
        self.unreadable: list[Path] = []

    @classmethod
    def load(cls, run_dir: Path) -> Ledger:
        ledger = cls(run_dir)
        for path in sorted((run_dir / "trials").glob("[0-9]*.json")):
            try:
                ledger._index(TrialRecord.from_dict(read_json(path, "trial record"), str(path)))
            except NasError:  # a power cut can leave an empty file behind a rename
                ledger.unreadable.append(path)
        return ledger

    def _index(self, record: TrialRecord) -> None:
        self.records[record.number] = record
        if record.counts and record.arch_hash and record.arch_hash not in self.by_hash:
            self.by_hash[record.arch_hash] = record

    def add(self, record: TrialRecord) -> None:
        write_record(self.run_dir, record)
        self._index(record)

    @property
    def evaluated(self) -> int:
        return sum(1 for r in self.records.values() if r.counts)

    def sorted(self) -> list[TrialRecord]:
        return [self.records[n] for n in sorted(self.records)]

    def write_results(self) -> TrialRecord | None:
        return write_results(self.run_dir, self.sorted())


def best_record(records: Iterable[TrialRecord]) -> TrialRecord | None:
    """Highest reward among completed trials; ties go to the lower latency, then the earlier trial."""
    done = [r for r in records if r.done]
    if not done:
        return None
    return max(done, key=lambda r: (r.reward, -(r.latency_ms or 0.0), -r.number))


def best_under(records: Iterable[TrialRecord], target_ms: float) -> TrialRecord | None:
    """The best completed trial predicted at or under the target (what a hard constraint would pick)."""
    return best_record(r for r in records if r.latency_ms is not None and r.latency_ms <= target_ms)


def pareto_records(records: Iterable[TrialRecord]) -> list[TrialRecord]:
    """Completed trials that no other completed trial beats on both accuracy (↑) and predicted latency (↓),
    fastest first; one entry per (accuracy, latency) point (equal points are the same trade-off: the earliest
    trial stands for them). A sweep by latency: a point is on the front when it beats every faster one."""
    done = sorted(
        (r for r in records if r.done and r.latency_ms is not None),
        key=lambda r: (r.latency_ms, -r.accuracy, r.number),
    )
    front: list[TrialRecord] = []
    for r in done:
        if not front or r.accuracy > front[-1].accuracy:
            front.append(r)
    return front


def write_results(run_dir: Path, records: list[TrialRecord]) -> TrialRecord | None:
    """best.json and pareto.json from the records (cheap: rewritten after every trial)."""
    best = best_record(records)
    front = pareto_records(records)
    write_json(run_dir / "best.json", best.to_dict() if best is not None else {"status": "no completed trial"})
    write_json(run_dir / "pareto.json", {"trials": [r.number for r in front], "records": [r.to_dict() for r in front]})
    return best


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


# ---------------------------------------------------------------------------------------------- lock


class RunLock:
    """One process per run: an exclusive `flock` on runs/<name>/.lock, which holds the owner's pid and host.
    The kernel drops the lock when its process dies, so a killed run never leaves a stale lock behind (the
    pid left in the file is only read to name the owner of a live lock)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.read(fd, 200).decode("utf-8", "replace").split()
            os.close(fd)
            who = (
                (f"process {owner[0]}" + (f" on {owner[1]}" if len(owner) > 1 else "")) if owner else "another process"
            )
            raise NasError(
                f"run {self.path.parent} is in use by {who}; wait for it to finish (or stop it), then --resume"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
