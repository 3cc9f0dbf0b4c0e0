"""Platform-aware architecture search: find the most accurate architecture of a space that meets a latency
target on a device, as MnasNet did, with Optuna (one process) or Ray Tune (many).

Each trial samples one choice per decision of the space and looks its latency up in the device's table at
the deployment resolution (cheap: before any training). Candidates that the latency alone rules out (hard
reward: over the target; soft reward: outside the target ± `window`) are recorded and told to the sampler
without training. The others pay for accuracy through an evaluator (proxy training or a zero-cost score) on
the same blocks built at the data's image size and class count, and score ACC·(LAT/T)^w — or, with
`objective="pareto"`, keep accuracy and latency as two objectives. Everything lands in a run directory
(`nas.search.runs`) that `resume=True` continues.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.arch import Arch
from nas.errors import NasError
from nas.io import read_json, writable_dir, write_json, write_text
from nas.search import runs
from nas.search.reward import Reward, make_reward, parse_target
from nas.search.samplers import SAMPLERS, make_sampler

__all__ = [
    "SAMPLERS",
    "SearchConfig",
    "SearchResult",
    "fastest_latency",
    "make_reward",
    "parse_target",
    "search",
]

OBJECTIVES = ("reward", "pareto")
BACKENDS = ("local", "ray")
EVALUATORS = ("train", "zero-cost")
PRUNERS = ("median", "halving", "none")
DEPLOY_CLASSES = 1000  # latency is predicted for the deployed (ImageNet-sized) classifier, as the zoo baselines

optuna.logging.set_verbosity(optuna.logging.WARNING)


@dataclass
class SearchConfig:
    """Everything a search needs; saved as the run's config.json (what `--resume` reloads)."""

    target_latency: str | float = "80ms"
    device: str = "pixel"
    space: str = "mobilenetv3"
    reward: str = "soft"
    w: float | None = None
    objective: str = "reward"
    sampler: str | None = None  # None: tpe for the reward, nsga2 for pareto
    evaluator: str = "train"
    data: str = "synthetic"
    resolution: int = 224  # deployment resolution: latency is always predicted here
    trials: int = 40
    time_budget_s: float | None = 480.0
    seed: int = 0
    name: str | None = None
    out_dir: str = "runs"
    resume: bool = False
    backend: str = "local"
    address: str | None = None
    workers: int = 1
    pruner: str = "median"
    window: float | None = 0.1  # soft reward: only candidates predicted within T·(1 ± window) are evaluated
    evaluator_options: dict[str, Any] = field(default_factory=dict)

    # Fields that define what a run searches; a resumed run keeps them.
    IDENTITY = (
        "target_latency",
        "device",
        "space",
        "reward",
        "w",
        "objective",
        "sampler",
        "evaluator",
        "data",
        "resolution",
        "seed",
        "pruner",
        "window",
        "evaluator_options",
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass
class SearchResult:
    run_dir: Path
    best: dict[str, Any] | None
    trials: int  # evaluated trials in the study (screened-out candidates are not counted)
    pareto: list[dict[str, Any]]
    files: list[Path]
    table_kind: str
    fastest_ms: float
    slowest_ms: float
    wall_s: float
    screened_out: int = 0  # candidates rejected on predicted latency alone (never evaluated)
    stopped: str = "trials"  # why the search stopped: "trials", "time budget", ...
    notes: list[str] = field(default_factory=list)
    baselines: list[tuple[str, float]] = field(default_factory=list)  # zoo models at their predicted latency

    def to_json(self) -> dict[str, Any]:
        best = None
        if self.best is not None:
            best = {k: self.best[k] for k in ("arch", "latency_ms", "accuracy", "reward")}
        return {
            "run_dir": str(self.run_dir),
            "best": best,
            "trials": self.trials,
            "screened_out": self.screened_out,
            "stopped": self.stopped,
        }


# ---------------------------------------------------------------------------------------------- context


@dataclass
class Context:
    """What a trial needs, prepared once (and re-prepared inside each Ray worker)."""

    config: SearchConfig
    space: Any
    table: Any
    reward: Reward
    data: Any
    evaluator: Callable[..., Any]
    run_dir: Path


def _check_config(c: SearchConfig) -> None:
    if c.objective not in OBJECTIVES:
        raise NasError(f"unknown objective {c.objective!r}; choose one of {', '.join(OBJECTIVES)}")
    if c.sampler is not None and c.sampler not in SAMPLERS:
        raise NasError(f"unknown sampler {c.sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if c.evaluator not in EVALUATORS and not c.evaluator.startswith(("supernet:", "supernet-predictor:")):
        raise NasError(f"unknown evaluator {c.evaluator!r}; choose one of {', '.join(EVALUATORS)}")
    if c.backend not in BACKENDS:
        raise NasError(f"unknown backend {c.backend!r}; choose one of {', '.join(BACKENDS)}")
    if c.pruner not in PRUNERS:
        raise NasError(f"unknown pruner {c.pruner!r}; choose one of {', '.join(PRUNERS)}")
    if c.objective == "pareto" and c.sampler == "pg":
        raise NasError("the pg sampler learns from one reward; use --objective reward, or --sampler nsga2/tpe/random")
    if not isinstance(c.trials, int) or c.trials < 1:
        raise NasError(f"--trials must be at least 1, got {c.trials}")
    if c.time_budget_s is not None and not c.time_budget_s > 0:
        raise NasError(f"--time-budget must be positive, got {c.time_budget_s}")
    if not isinstance(c.resolution, int) or c.resolution < 32:
        raise NasError(f"--resolution must be an integer ≥ 32, got {c.resolution}")
    if c.window is not None and not (isinstance(c.window, int | float) and 0 < c.window < 10):
        raise NasError(f"--window must be a fraction above 0 (0.1 = ±10%) or none, got {c.window!r}")
    if c.workers < 1:
        raise NasError(f"--workers must be at least 1, got {c.workers}")
    if c.workers > 1 and c.backend != "ray":
        raise NasError("--workers applies to --backend ray (the local backend runs one trial at a time)")
    if c.address and c.backend != "ray":
        raise NasError("--address applies to --backend ray")
    make_reward(c.target_latency, c.reward, c.w)


def sampler_name(c: SearchConfig) -> str:
    return c.sampler or ("nsga2" if c.objective == "pareto" else "tpe")


def suggest_choices(space: Any, suggest: Callable[[str, list], Any]) -> dict[str, Any]:
    """One choice per decision through `suggest(name, choices)`; choices Optuna cannot store (lists, dicts)
    are suggested by index."""
    chosen: dict[str, Any] = {}
    for decision in space.decisions:
        options = list(decision.choices)
        if all(o is None or isinstance(o, bool | int | float | str) for o in options):
            chosen[decision.name] = suggest(decision.name, options)
        else:
            chosen[decision.name] = options[suggest(decision.name, list(range(len(options))))]
    return chosen


def params_to_choices(space: Any, params: dict[str, Any]) -> dict[str, Any]:
    """Inverse of the index trick in `suggest_choices` (Optuna stores the index for non-scalar choices)."""
    chosen = {}
    for decision in space.decisions:
        options = list(decision.choices)
        value = params[decision.name]
        scalar = all(o is None or isinstance(o, bool | int | float | str) for o in options)
        chosen[decision.name] = value if scalar else options[value]
    return chosen


def deploy_arch(ctx: Context, choices: dict[str, Any]) -> Arch:
    arch = ctx.space.arch(choices, resolution=ctx.config.resolution, num_classes=DEPLOY_CLASSES)
    return arch


def train_arch(ctx: Context, choices: dict[str, Any]) -> Arch:
    """Same blocks, at the proxy resolution (the data's image size unless the evaluator sets one) and the
    data's class count."""
    resolution = getattr(ctx.evaluator, "resolution", None) or ctx.data.image_size
    return ctx.space.arch(choices, resolution=resolution, num_classes=ctx.data.num_classes)


def latency_of(arch: Arch, table: Any) -> float:
    from nas.latency import predict

    return float(predict(arch, table).latency_ms)


def _extreme(space: Any, table: Any, resolution: int, sign: float) -> tuple[float, dict[str, Any]]:
    """The least (sign 1) or greatest (sign −1) predicted latency of the space, exactly: the table's per-op
    entries summed by the space's dynamic programme; the fixed costs and a table's correction do not change
    which architecture wins."""
    _, choices = space.extreme(table.op_ms, maximize=sign < 0, resolution=resolution)
    return latency_of(space.arch(choices, resolution=resolution, num_classes=DEPLOY_CLASSES), table), choices


def fastest_latency(space: Any, table: Any, resolution: int = 224) -> float:
    """The fastest predicted latency the space allows (exact, see `_extreme`)."""
    return _extreme(space, table, resolution, 1.0)[0]


# Per-process caches: the pixel table prices ops on first use (about 30 ms each) and the synthetic data is
# generated; a process that runs several searches (tests, notebooks) pays for both once.
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

    key = (c.data, c.seed)
    if key not in _DATA:
        if len(_DATA) >= 2:
            _DATA.pop(next(iter(_DATA)))
        _DATA[key] = load_data(c.data, seed=c.seed)
    return _DATA[key]


def _load_parts(c: SearchConfig, evaluator: Callable[..., Any] | None) -> tuple[Any, Any, Any, Callable[..., Any]]:
    from nas.space import load_space

    space = load_space(c.space)
    table = _table(c.device)
    data = _data(c)
    return space, table, data, evaluator if evaluator is not None else build_evaluator(c, data)


def build_evaluator(c: SearchConfig, data: Any) -> Callable[..., Any]:
    """nas.accuracy's evaluator for the run (its space, seed and `evaluator_options`)."""
    from nas.accuracy import build_evaluator as build

    return build(c.evaluator, data, space=c.space, seed=c.seed, options=c.evaluator_options)


# ---------------------------------------------------------------------------------------------- storage


def _journal_backend(path: Path) -> Any:
    """Optuna's journal file backend without its fsync per write: a search writes one log line per suggested
    parameter (30 per trial for the default space) and each fsync costs milliseconds. The lines still reach
    the OS before the call returns, so a killed process loses nothing; only a power cut could."""
    from optuna.storages.journal import JournalFileBackend

    try:
        from optuna.storages.journal._file import get_lock_file
    except ImportError:  # a future Optuna: keep its own (fsyncing) backend
        return JournalFileBackend(str(path))

    class _Backend(JournalFileBackend):
        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            text = "\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n"
            with get_lock_file(self._lock), open(self._file_path, "ab") as f:
                f.write(text.encode("utf-8"))
                f.flush()

    return _Backend(str(path))


class _AfterEvaluated(optuna.pruners.BasePruner):
    """Prune only once `startup` trials have finished with learning curves: screened-out candidates are
    completed trials too (reward 0, no curve), and Optuna's own startup count would include them, leaving a
    median of one curve to prune against."""

    def __init__(self, inner: optuna.pruners.BasePruner, startup: int = 5):
        self.inner, self.startup = inner, startup

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        curves = sum(
            1 for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.intermediate_values
        )
        return curves >= self.startup and self.inner.prune(study, trial)


def open_study(run_dir: Path, c: SearchConfig, create: bool, workers: int = 1) -> optuna.Study:
    """The run's study in a journal file (safe for several writers; optuna-dashboard opens it)."""
    from optuna.storages import JournalStorage

    storage = JournalStorage(_journal_backend(run_dir / runs.STUDY_FILE))
    directions = ["maximize", "minimize"] if c.objective == "pareto" else ["maximize"]
    sampler = make_sampler(sampler_name(c), c.seed, c.objective == "pareto", workers)
    pruner: optuna.pruners.BasePruner
    if c.objective == "pareto" or c.pruner == "none":
        pruner = optuna.pruners.NopPruner()  # Optuna cannot prune multi-objective trials
    elif c.pruner == "halving":
        pruner = _AfterEvaluated(optuna.pruners.SuccessiveHalvingPruner())
    else:
        pruner = _AfterEvaluated(optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=1))
    # On resume the study normally exists; a run killed between writing config.json and creating it has none.
    return optuna.create_study(
        storage=storage,
        study_name=runs.STUDY_NAME,
        directions=directions,
        sampler=sampler,
        pruner=pruner,
        load_if_exists=not create,
    )


def fail_stale(study: optuna.Study, ctx: Context) -> list[int]:
    """Trials left RUNNING by a killed process: mark them failed (in the study and in trials/), with their
    architecture when the killed process had sampled all of it."""
    stale = study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING))
    for t in stale:
        study._storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
        arch = None
        if all(d.name in t.params for d in ctx.space.decisions):
            arch = deploy_arch(ctx, params_to_choices(ctx.space, t.params))
            arch = arch.replace(name=f"{ctx.config.name}-trial{t.number:04d}").to_dict()
        runs.write_record(
            ctx.run_dir,
            {
                "schema": runs.RECORD_SCHEMA,
                "number": t.number,
                "status": "failed",
                "error": "interrupted (the process running it was killed; failed on resume)",
                "params": dict(t.params),
                "latency_ms": t.user_attrs.get("latency_ms"),
                "accuracy": None,
                "reward": None,
                "arch": arch,
                "wall_s": None,
            },
        )
    return [t.number for t in stale]


def _prepare_run(c: SearchConfig) -> tuple[SearchConfig, Path, bool]:
    """Validate the run directory; on resume, return the stored config with this session's limits."""
    root = Path(c.out_dir)
    if c.resume:
        if not c.name:
            raise NasError("--resume needs --name NAME of the run to continue")
        run_dir = root / runs.check_name(c.name)
        if not (run_dir / "config.json").is_file():
            raise NasError(f"no run to resume at {run_dir} (config.json missing)")
        stored = SearchConfig.from_dict(read_json(run_dir / "config.json", "run config"))
        default = SearchConfig()
        for key in SearchConfig.IDENTITY:
            mine, theirs = getattr(c, key), getattr(stored, key)
            if key == "target_latency":  # "80ms" and "0.08s" are the same target
                mine, theirs = parse_target(mine), parse_target(theirs)
            if mine != theirs and getattr(c, key) != getattr(default, key):
                raise NasError(
                    f"--resume: {key} {getattr(c, key)!r} differs from the run's {getattr(stored, key)!r}; "
                    "a resumed run keeps what it searches"
                )
        merged = dataclasses.replace(
            stored,
            trials=c.trials,
            time_budget_s=c.time_budget_s,
            resume=True,
            backend=c.backend,
            address=c.address,
            workers=c.workers,
            out_dir=c.out_dir,
            name=c.name,
        )
        return merged, writable_dir(run_dir), False
    name = runs.check_name(c.name or runs.default_name())
    run_dir = root / name
    if (run_dir / "config.json").exists():
        raise NasError(f"run {run_dir} exists; pass --resume to continue it, or choose another --name")
    writable_dir(root)  # the run's own directory is made with its config, once every check has passed
    return dataclasses.replace(c, name=name), run_dir, True


# ---------------------------------------------------------------------------------------------- trials


class _Report:
    """The evaluator's `report(epoch, accuracy)` → Optuna intermediate values (as partial rewards, so the
    pruner compares like with like) → True when the pruner says stop."""

    def __init__(self, trial: optuna.trial.Trial | None, factor: float):
        self.trial, self.factor, self.pruned = trial, factor, False

    def __call__(self, epoch: int, accuracy: float) -> bool:
        if self.trial is None:
            return False
        self.trial.report(float(accuracy) * self.factor, int(epoch))
        if self.trial.should_prune():
            self.pruned = True
        return self.pruned


def _is_diverged(err: BaseException) -> bool:
    try:
        from nas.accuracy import TrainingDiverged
    except ImportError:
        return isinstance(err, FloatingPointError)
    return isinstance(err, TrainingDiverged | FloatingPointError)


def evaluate_choices(
    ctx: Context,
    choices: dict[str, Any],
    report_factory: Callable[[float], Callable[[int, float], bool]] | None,
) -> dict[str, Any]:
    """Accuracy of a candidate that passed `screen`. Returns a partial record with `status` set:
    complete, pruned, or failed (loss turned NaN)."""
    started = time.perf_counter()
    arch = deploy_arch(ctx, choices)
    latency = latency_of(arch, ctx.table)
    record: dict[str, Any] = {
        "schema": runs.RECORD_SCHEMA,
        "params": choices,
        "arch": arch.to_dict(),
        "latency_ms": latency,
        "accuracy": None,
        "reward": None,
        "error": None,
        "eval_seconds": None,
    }
    report = report_factory(ctx.reward.factor(latency)) if report_factory else None
    try:
        result = ctx.evaluator(train_arch(ctx, choices), report=report)
    except optuna.TrialPruned:
        record["status"] = "pruned"
    except Exception as err:
        if not _is_diverged(err):
            raise
        record.update(status="failed", error=f"training diverged: {err}")
    else:
        accuracy = float(getattr(result, "accuracy", math.nan))
        record["eval_seconds"] = getattr(result, "seconds", None)
        record["eval"] = _jsonable(getattr(result, "extra", {}))
        # The evaluator knows whether it stopped early; a "prune" answer to the last epoch's report stops
        # nothing (the training is done), so the trial is complete. Evaluators that do not say fall back on
        # whether the pruner was asked and said stop.
        stopped_early = getattr(result, "pruned", getattr(report, "pruned", False))
        if stopped_early:
            record["status"] = "pruned"
        elif not math.isfinite(accuracy):
            record.update(status="failed", error="the evaluator returned a non-finite accuracy")
        else:
            record.update(status="complete", accuracy=accuracy, reward=ctx.reward(accuracy, latency))
    record["wall_s"] = time.perf_counter() - started
    return record


def _jsonable(value: Any) -> Any:
    """The evaluator's details if they survive JSON (they should), else their repr."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return repr(value)


def tell(study: optuna.Study, trial: optuna.trial.Trial, record: dict[str, Any], pareto: bool) -> None:
    """Report a trial's outcome; a hard-mode rejection is a completed trial with reward 0 (accuracy 0 for
    Pareto), the worst possible, so the sampler learns to avoid the region without a training run."""
    status = record["status"]
    if status == "complete":
        values = [record["accuracy"], record["latency_ms"]] if pareto else [record["reward"]]
        study.tell(trial, values)
    elif status == "rejected":
        study.tell(trial, [0.0, record["latency_ms"]] if pareto else [0.0])
    elif status == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)


def screen(ctx: Context, latency_ms: float) -> str | None:
    """Why a candidate is not worth evaluating, from its predicted latency alone (None: evaluate it).

    Hard reward: over the target (MnasNet's β = −1 makes it lose to any candidate under T of similar
    accuracy). Soft reward with a window: outside T·(1 ± window). Pareto: nothing is screened."""
    c, target = ctx.config, ctx.reward.target_ms
    if ctx.reward.hard:
        return f"predicted {latency_ms:.1f} ms > target {target:g} ms: not trained" if latency_ms > target else None
    if c.objective == "reward" and c.window is not None and abs(latency_ms / target - 1) > c.window:
        return f"predicted {latency_ms:.1f} ms is outside {target:g} ms ± {c.window:.0%}: not trained"
    return None


def _evaluated(study: optuna.Study) -> int:
    """Trials that count against `trials`: finished ones that were evaluated (screened-out ones are free)."""
    return sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished() and t.user_attrs.get("status") != "rejected"
    )


def _finished(study: optuna.Study) -> int:
    return sum(1 for t in study.get_trials(deepcopy=False) if t.state.is_finished())


MAX_REJECTED_IN_A_ROW = 300


def next_candidate(
    ctx: Context, study: optuna.Study, progress: Any
) -> tuple[optuna.trial.Trial, dict[str, Any], float] | None:
    """Ask the study until a candidate passes `screen`; every screened-out one is recorded and told to the
    sampler at once (reward 0, the worst), so it learns where not to look at the price of a lookup.
    None after MAX_REJECTED_IN_A_ROW rejections in a row (the sampler cannot find the window)."""
    pareto = ctx.config.objective == "pareto"
    for _ in range(MAX_REJECTED_IN_A_ROW):
        started = time.perf_counter()
        trial = study.ask()
        choices = suggest_choices(ctx.space, trial.suggest_categorical)
        arch = deploy_arch(ctx, choices).replace(name=f"{ctx.config.name}-trial{trial.number:04d}")
        latency = latency_of(arch, ctx.table)
        trial.set_user_attr("latency_ms", latency)
        reason = screen(ctx, latency)
        if reason is None:
            return trial, choices, latency
        trial.set_user_attr("status", "rejected")
        record = {
            "schema": runs.RECORD_SCHEMA,
            "number": trial.number,
            "status": "rejected",
            "error": reason,
            "params": dict(trial.params),
            "arch": arch.to_dict(),
            "latency_ms": latency,
            "accuracy": None,
            "reward": 0.0,
            "eval_seconds": None,
            "wall_s": time.perf_counter() - started,
        }
        runs.write_record(ctx.run_dir, record)
        tell(study, trial, record, pareto)
        if progress is not None:
            progress(record, _evaluated(study))
    return None


def _run_local(ctx: Context, study: optuna.Study, budget_s: float | None, progress: Any) -> str:
    """Evaluate candidates until `trials` were evaluated or the time budget would be overrun: a trial is only
    started while the mean trial time so far still fits in what is left of the budget."""
    c = ctx.config
    pareto = c.objective == "pareto"
    started = time.monotonic()
    durations: list[float] = []
    while _evaluated(study) < c.trials:
        if budget_s is not None:
            elapsed = time.monotonic() - started
            expected = sum(durations) / len(durations) if durations else 0.0
            if elapsed + expected >= budget_s:
                return "time budget"
        found = next_candidate(ctx, study, progress)
        if found is None:
            return f"{MAX_REJECTED_IN_A_ROW} candidates in a row were screened out"
        trial, choices, _ = found

        def report_factory(factor: float, trial: optuna.trial.Trial = trial) -> _Report:
            return _Report(None if pareto else trial, factor)

        try:
            record = evaluate_choices(ctx, choices, report_factory)
        except BaseException:
            study.tell(trial, state=TrialState.FAIL)
            raise
        record["number"] = trial.number
        record["params"] = dict(trial.params)
        record["arch"]["name"] = f"{c.name}-trial{trial.number:04d}"
        trial.set_user_attr("status", record["status"])
        runs.write_record(ctx.run_dir, record)
        tell(study, trial, record, pareto)
        runs.write_results(ctx.run_dir, runs.load_records(ctx.run_dir))  # best.json, pareto.json stay current
        durations.append(record["wall_s"])
        if progress is not None:
            progress(record, _evaluated(study))
    return "trials"


# ---------------------------------------------------------------------------------------------- search


def search(
    config: SearchConfig,
    evaluator: Callable[..., Any] | None = None,
    progress: Callable[[dict[str, Any], int], None] | None = None,
) -> SearchResult:
    """Run (or resume) a search and write its run directory. `evaluator` replaces the configured one
    (tests, custom proxies): `evaluator(arch, report=None) -> object with .accuracy`."""
    wall = time.perf_counter()
    _check_config(config)
    c, run_dir, fresh = _prepare_run(config)
    _check_config(c)
    reward = make_reward(c.target_latency, c.reward, c.w)
    space, table, data, evaluate = _load_parts(c, evaluator)
    key = (c.space, c.device, c.resolution)
    if key not in _EXTREMES:
        _EXTREMES[key] = (_extreme(space, table, c.resolution, 1.0)[0], _extreme(space, table, c.resolution, -1.0)[0])
    fastest, slowest = _EXTREMES[key]
    if fastest > reward.target_ms:
        raise NasError(
            f"nothing in space {c.space!r} meets {reward.target_ms:g} ms on {c.device}: "
            "its fastest architecture "
            f"is predicted at {fastest:.1f} ms; "
            "raise --target-latency or lower --resolution"
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
    ctx = Context(c, space, table, reward, data, evaluate, run_dir)
    if fresh:
        write_json(run_dir / "config.json", c.to_dict())
        (run_dir / "trials").mkdir(exist_ok=True)
        study = open_study(run_dir, c, create=True, workers=c.workers)
    else:
        study = open_study(run_dir, c, create=False, workers=c.workers)
        fail_stale(study, ctx)
    if c.backend == "ray":
        try:
            from nas.search.ray_backend import run_ray
        except ImportError as err:
            raise NasError(f"--backend ray needs Ray installed ({err})") from None

        stopped = run_ray(ctx, study, c.time_budget_s, progress)
    else:
        stopped = _run_local(ctx, study, c.time_budget_s, progress)
    records = runs.load_records(run_dir)
    best = runs.write_results(run_dir, records)
    baselines = zoo_baselines(table, c.resolution)
    files = [
        run_dir / "config.json",
        run_dir / runs.STUDY_FILE,
        run_dir / "trials",
        run_dir / "best.json",
        run_dir / "pareto.json",
    ]
    files.append(
        runs.plot_pareto(
            run_dir / "pareto.png",
            records,
            reward.target_ms,
            baselines,
            c.device,
            _kind(table),
            getattr(evaluate, "metric_label", "accuracy"),
        )
    )
    result = SearchResult(
        run_dir,
        best,
        _evaluated(study),
        runs.pareto_records(records),
        files,
        _kind(table),
        fastest,
        slowest,
        time.perf_counter() - wall,
        screened_out=sum(1 for r in records if r["status"] == "rejected"),
        stopped=stopped,
        notes=notes,
        baselines=baselines,
    )
    files.append(write_text(run_dir / "summary.md", summary_markdown(c, reward, result, records)))
    return result


def _kind(table: Any) -> str:
    return str(getattr(table, "kind", "measured"))


# The hand-designed and searched nets the MnasNet/MobileNetV3 papers compare against (published widths).
BASELINES = (
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "mnasnet_a1",
    "mnasnet_b1",
    "proxylessnas_mobile",
    "fbnet_a",
    "fbnet_b",
    "fbnet_c",
    "efficientnet_b0",
)


def zoo_baselines(table: Any, resolution: int) -> list[tuple[str, float]]:
    """Mobile zoo models the table covers, with their predicted latency at the deployment resolution."""
    from nas import zoo

    out = []
    for variant in zoo.variants():
        if variant.family.name not in BASELINES or variant.width not in (0.75, 1.0):
            continue
        try:
            arch = zoo.get(variant.name, resolution=resolution)
            out.append((variant.name, latency_of(arch, table)))
        except (NasError, KeyError, ValueError):
            continue  # the table does not cover this model's ops
    return sorted(out, key=lambda b: b[1])


def describe_arch(arch: Arch) -> str:
    """timm block strings of the stages (nas.export.timm_strings) when they express the arch, else a summary."""
    cost = arch.costs()
    summary = f"{len(arch.blocks)} blocks, {cost.macs / 1e6:.0f}M MACs, {cost.params / 1e6:.2f}M params"
    try:
        from nas.export import timm_strings

        style, strings = timm_strings(arch)
    except (ImportError, NasError):
        return summary
    stages = "; ".join(", ".join(stage) for stage in strings)
    return f"{stages} ({style.lower()} style; {summary})"


def screening(c: SearchConfig, reward: Reward) -> str:
    if reward.hard:
        return f"over {reward.target_ms:g} ms is never trained (hard reward)"
    if c.objective == "reward" and c.window is not None:
        return f"outside {reward.target_ms:g} ms ± {c.window:.0%} is never trained (--window {c.window:g})"
    return "none (every candidate is evaluated)"


def summary_markdown(c: SearchConfig, reward: Reward, result: SearchResult, records: list[dict[str, Any]]) -> str:
    counts: dict[str, int] = {}
    for r in records:
        counts[r["status"]] = counts.get(r["status"], 0) + 1
    est = " (estimated table)" if result.table_kind == "estimated" else ""
    lines = [
        f"# Search {c.name}",
        "",
        f"- target: {reward.target_ms:g} ms on `{c.device}`{est} at {c.resolution}×{c.resolution}; "
        f"objective {c.objective}; reward {reward.describe()}",
        f"- space `{c.space}`: predicted latency from {result.fastest_ms:.1f} ms (fastest) to "
        f"{result.slowest_ms:.1f} ms (slowest)",
        f"- screening on predicted latency: {screening(c, reward)}",
        f"- sampler {sampler_name(c)}, evaluator {c.evaluator} on data `{c.data}`, seed {c.seed}, backend {c.backend}",
        *(f"- note: {n}" for n in result.notes),
        f"- stopped by: {result.stopped}",
        f"- trials: {len(records)} (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")",
        f"- this session's wall time: {result.wall_s:.0f} s",
        "",
    ]
    if result.best is None:
        lines.append("No trial completed.")
    else:
        b = result.best
        arch = Arch.from_dict(b["arch"])
        lines += [
            f"## Best: trial {b['number']}",
            "",
            f"- reward {b['reward']:.4f}, accuracy {b['accuracy']:.4f} ({c.evaluator}), "
            f"{'estimated' if result.table_kind == 'estimated' else 'predicted'} latency "
            f"{b['latency_ms']:.1f} ms "
            f"({100 * (b['latency_ms'] / reward.target_ms - 1):+.1f}% of the target)",
            f"- architecture: `{describe_arch(arch)}`",
            "",
        ]
    lines += [
        "## Pareto front (accuracy ↑, latency ↓)",
        "",
        "| trial | latency ms | accuracy | reward |",
        "|---|---|---|---|",
    ]
    for r in result.pareto:
        lines.append(f"| {r['number']} | {r['latency_ms']:.1f} | {r['accuracy']:.4f} | {r['reward']:.4f} |")
    if result.baselines:
        lines += [
            "",
            f"Zoo baselines at their predicted latency on `{c.device}`{est}: "
            + ", ".join(f"{name} {ms:.1f} ms" for name, ms in result.baselines)
            + ".",
        ]
    lines += [
        "",
        "Files: config.json, study.journal (`optuna-dashboard study.journal`), trials/NNNN.json, "
        "best.json, pareto.json, pareto.png, summary.md.",
        "",
    ]
    return "\n".join(lines)
