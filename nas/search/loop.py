"""`search()`: run (or resume) a search into its run directory. The local loop lives here; the Ray backend
(`nas.search.ray_backend`) drives the same `next_candidate`/`finish_trial` from Ray Tune."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.io import read_json, writable_dir, write_json, write_text
from nas.search import runs
from nas.search.config import DEFAULT_TRIALS, SearchConfig
from nas.search.evaluation import (
    DEPLOY_CLASSES,
    SKIPPED_STOP,
    Context,
    Evaluator,
    Outcome,
    Report,
    Session,
    build_evaluator,
    evaluate,
    finish_trial,
    latency_of,
    metric_label,
    next_candidate,
)
from nas.search.journal import repair
from nas.search.reward import make_reward
from nas.search.study import open_study, reconcile

# progress(record, evaluated so far, trials asked, time budget in seconds or None), after every trial
Progress = Callable[[runs.TrialRecord, int, int, float | None], None]
INTERRUPTED = "interrupted (Ctrl-C)"


@dataclass
class SearchResult:
    run_dir: Path
    config: SearchConfig  # the effective configuration (config.json)
    best: runs.TrialRecord | None
    trials: int  # evaluated trials in the run (screened-out, reused and interrupted ones are not counted)
    pareto: list[runs.TrialRecord]
    records: list[runs.TrialRecord]
    files: list[Path]
    table_kind: str
    fastest_ms: float
    slowest_ms: float
    wall_s: float
    metric: str  # what the accuracy column means (the evaluator's `metric_label`)
    screened_out: int = 0  # candidates rejected on predicted latency alone (never evaluated)
    stopped: str = "trials"  # why the search stopped: "trials", "time budget", ...
    notes: list[str] = field(default_factory=list)
    baselines: list[tuple[str, float]] = field(default_factory=list)  # zoo models at their predicted latency

    @property
    def target_ms(self) -> float:
        return make_reward(self.config.target_latency).target_ms

    def to_json(self) -> dict[str, Any]:
        best = None
        if self.best is not None:
            record = self.best.to_dict()
            best = {k: record[k] for k in ("arch", "latency_ms", "accuracy", "reward")}
        return {
            "run_dir": str(self.run_dir),
            "best": best,
            "trials": self.trials,
            "screened_out": self.screened_out,
            "stopped": self.stopped,
        }


class SearchInterrupted(KeyboardInterrupt):
    """Ctrl-C: the trial in flight was recorded as interrupted and the run's summary written; `result` is it."""

    def __init__(self, result: SearchResult):
        super().__init__(INTERRUPTED)
        self.result = result


# Per-process caches: the pixel table prices ops on first use and the synthetic data is generated; a process
# that runs several searches (tests, notebooks) pays for both once.
_TABLES: dict[str, Any] = {}
_DATA: dict[tuple[str, int], Any] = {}
_EXTREMES: dict[tuple[str, str, int], tuple[float, float]] = {}


def _table(device: str) -> Any:
    from nas.latency import load_table

    if device not in _TABLES:
        _TABLES[device] = load_table(device)
    return _TABLES[device]


def _data(c: SearchConfig) -> Any:
    from nas.accuracy import load_data
    from nas.accuracy.evaluator import data_seed

    key = (c.data, data_seed(c.evaluator, c.seed))
    if key not in _DATA:
        if len(_DATA) >= 2:
            _DATA.pop(next(iter(_DATA)))
        _DATA[key] = load_data(c.data, seed=key[1])
    return _DATA[key]


def _extreme(space: Any, table: Any, resolution: int, maximize: bool) -> float:
    """The least or greatest predicted latency of the space, exactly: the table's per-op entries summed by the
    space's dynamic programme; the fixed costs and a table's correction do not change which arch wins."""
    _, choices = space.extreme(table.price, maximize=maximize, resolution=resolution)
    return latency_of(space.arch(choices, resolution=resolution, num_classes=DEPLOY_CLASSES), table)


def fastest_latency(space: Any, table: Any, resolution: int = 224) -> float:
    """The fastest predicted latency the space allows (exact, see `_extreme`)."""
    return _extreme(space, table, resolution, False)


def _prepare(config: SearchConfig) -> tuple[SearchConfig, Path, bool]:
    """The effective config (checked once; on resume, the stored one with this session's limits), the run
    directory and whether the run is new. Nothing is written here."""
    root = Path(config.out_dir)
    if config.resume:
        if not config.name:
            raise NasError("--resume needs --name NAME of the run to continue")
        run_dir = root / runs.check_name(config.name)
        if not (run_dir / "config.json").is_file():
            raise NasError(f"no run to resume at {run_dir} (config.json missing)")
        stored = SearchConfig.from_dict(read_json(run_dir / "config.json", "run config"))
        return config.resumed_from(stored).validated(), run_dir, False
    c = config.validated()
    c = dataclasses.replace(c, name=runs.check_name(c.name or runs.default_name()))
    run_dir = root / c.name
    if (run_dir / "config.json").exists():
        raise NasError(f"run {run_dir} exists; pass --resume to continue it, or choose another --name")
    return c, run_dir, True


def search(config: SearchConfig, evaluator: Evaluator | None = None, progress: Progress | None = None) -> SearchResult:
    """Run (or resume) a search and write its run directory. `evaluator` replaces the configured one
    (tests, custom proxies): `evaluator(arch, report=None) -> object with .accuracy`. Ctrl-C raises
    `SearchInterrupted` once the run directory is consistent."""
    wall = time.perf_counter()
    c, run_dir, fresh = _prepare(config)
    lock = runs.RunLock(run_dir)
    if not fresh:
        lock.acquire()  # before anything is loaded: a second process on a live run is refused at once
    try:
        return _search(c, run_dir, fresh, lock, evaluator, progress, wall)
    finally:
        lock.release()


def _search(
    c: SearchConfig,
    run_dir: Path,
    fresh: bool,
    lock: runs.RunLock,
    evaluator: Evaluator | None,
    progress: Progress | None,
    wall: float,
) -> SearchResult:
    from nas.space import load_space

    reward = make_reward(c.target_latency, c.reward, c.w)
    space, table, data = load_space(c.space), _table(c.device), _data(c)
    if evaluator is None:
        evaluator = build_evaluator(c.evaluator, data, space=space, seed=c.seed, options=c.evaluator_options)
    if c.trials is None:
        c = dataclasses.replace(c, trials=getattr(evaluator, "default_trials", None) or DEFAULT_TRIALS)
    key = (c.space, c.device, c.resolution)
    if key not in _EXTREMES:
        _EXTREMES[key] = (_extreme(space, table, c.resolution, False), _extreme(space, table, c.resolution, True))
    fastest, slowest = _EXTREMES[key]
    if fastest > reward.target_ms:
        raise NasError(
            f"nothing in space {c.space!r} meets {reward.target_ms:g} ms on {c.device}: its fastest architecture "
            f"is predicted at {fastest:.1f} ms; raise --target-latency or lower --resolution"
        )
    notes = []
    if slowest <= reward.target_ms:
        notes.append(f"every architecture of the space meets the target (the slowest is predicted at {slowest:.1f} ms)")
    if (
        fresh
        and c.window is not None
        and c.objective == "reward"
        and not reward.hard
        and (slowest < reward.target_ms * (1 - c.window) or fastest > reward.target_ms * (1 + c.window))
    ):
        notes.append(f"no architecture is predicted within ±{c.window:.0%} of the target: the window is off")
        c = dataclasses.replace(c, window=None)
    if fresh:  # every check has passed: only now is anything written
        writable_dir(run_dir.parent)
        run_dir.mkdir(exist_ok=True)
        lock.acquire()
        if (run_dir / "config.json").exists():  # another process made it while this one checked
            raise NasError(f"run {run_dir} exists; pass --resume to continue it, or choose another --name")
        write_json(run_dir / "config.json", c.to_dict())
        (run_dir / "trials").mkdir(exist_ok=True)
    else:
        fixed = repair(run_dir / runs.STUDY_FILE)
        if fixed is not None:
            notes.append(fixed.describe())
    ledger = runs.Ledger.load(run_dir)
    for path in ledger.unreadable:
        notes.append(f"{path} is not a readable trial record: left out (its trial is not counted)")
    ctx = Context(c, space, table, reward, data, evaluator, run_dir)

    def report(record: runs.TrialRecord, evaluated: int) -> None:
        if progress is not None:
            progress(record, evaluated, c.trials, c.time_budget_s)

    session = Session(ctx, open_study(run_dir, c, create=fresh), ledger, report)
    if not fresh:
        interrupted = reconcile(session)
        if interrupted:
            notes.append(f"trial {', '.join(map(str, interrupted))} was interrupted by a kill: recorded, not counted")
    try:
        stopped = _run(session)
    except KeyboardInterrupt:
        result = _finish(session, fastest, slowest, INTERRUPTED, notes, wall)
        raise SearchInterrupted(result) from None
    return _finish(session, fastest, slowest, stopped, notes, wall)


def _run(session: Session) -> str:
    c = session.ctx.config
    if c.backend == "ray":
        try:
            from nas.search.ray_backend import run_ray
        except ImportError as err:
            raise NasError(f"--backend ray needs Ray installed ({err})") from None
        return run_ray(session)
    return _run_local(session)


def _run_local(session: Session) -> str:
    """Evaluate candidates until `trials` were evaluated or the time budget would be overrun: a trial is only
    started while the mean trial time so far still fits in what is left of the budget."""
    c = session.ctx.config
    budget_s = c.time_budget_s
    started = time.monotonic()
    durations: list[float] = []
    while session.ledger.evaluated < c.trials:
        if budget_s is not None:
            expected = sum(durations) / len(durations) if durations else 0.0
            if time.monotonic() - started + expected >= budget_s:
                return "time budget"
        found = next_candidate(session)
        if found is None:
            return SKIPPED_STOP
        trial, candidate = found
        pruning = None if c.objective == "pareto" else trial
        try:
            outcome = evaluate(session.ctx, candidate, Report(pruning, session.ctx.reward.factor(candidate.latency_ms)))
        except KeyboardInterrupt:
            finish_trial(session, trial, candidate, Outcome("interrupted", error=f"{INTERRUPTED}; not evaluated"))
            raise
        except BaseException as err:
            finish_trial(session, trial, candidate, Outcome("failed", error=f"the evaluator raised: {err}"))
            raise
        durations.append(finish_trial(session, trial, candidate, outcome).wall_s or 0.0)
    return "trials"


def _finish(
    session: Session, fastest: float, slowest: float, stopped: str, notes: list[str], wall: float
) -> SearchResult:
    """best.json, pareto.json, pareto.png and summary.md from every record of the run."""
    from nas.search.baselines import zoo_baselines
    from nas.search.plots import plot_pareto
    from nas.search.report import summary_markdown

    ctx, ledger = session.ctx, session.ledger
    c, run_dir = ctx.config, ctx.run_dir
    records = ledger.sorted()
    best = ledger.write_results()
    baselines = zoo_baselines(ctx.table, c.resolution)
    kind = str(getattr(ctx.table, "kind", "measured"))
    metric = metric_label(ctx.evaluator, c.evaluator)
    files = [run_dir / name for name in ("config.json", runs.STUDY_FILE, "trials", "best.json", "pareto.json")]
    files.append(plot_pareto(run_dir / "pareto.png", records, ctx.reward.target_ms, baselines, c.device, kind, metric))
    result = SearchResult(
        run_dir=run_dir,
        config=c,
        best=best,
        trials=ledger.evaluated,
        pareto=runs.pareto_records(records),
        records=records,
        files=files,
        table_kind=kind,
        fastest_ms=fastest,
        slowest_ms=slowest,
        wall_s=time.perf_counter() - wall,
        metric=metric,
        screened_out=sum(1 for r in records if r.status == "rejected"),
        stopped=stopped,
        notes=notes,
        baselines=baselines,
    )
    files.append(write_text(run_dir / "summary.md", summary_markdown(result)))
    return result
