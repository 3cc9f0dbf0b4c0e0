"""One trial, from the sampler's choices to its record: screen on predicted latency, reuse an architecture
already evaluated, evaluate the rest, and `finish_trial` (the one place a trial is recorded and told to the
study, for the local loop and the Ray searcher alike)."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from nas.arch import Arch
from nas.search import runs
from nas.search.config import SearchConfig
from nas.search.reward import Reward

DEPLOY_CLASSES = 1000  # latency is predicted for the deployed (ImageNet-sized) classifier, as the zoo baselines
MAX_SKIPPED_IN_A_ROW = 300  # candidates screened out or reused in a row before the search gives up
SKIPPED_STOP = f"{MAX_SKIPPED_IN_A_ROW} candidates in a row were screened out or already evaluated"

Evaluator = Callable[..., Any]  # evaluator(arch, report=None) -> object with .accuracy (nas.accuracy's EvalResult)


# ---------------------------------------------------------------------------------------------- evaluator seam


def build_evaluator(spec: str, data: Any, *, space: Any, seed: int, options: dict[str, Any]) -> Evaluator:
    """The search's one call site for making an evaluator from `--evaluator KIND[:ARG]` (nas.accuracy owns
    the kinds and refuses an unknown one)."""
    from nas import accuracy

    return accuracy.build_evaluator(spec, data, space=space, seed=seed, options=dict(options))


def metric_label(evaluator: Evaluator, spec: str) -> str:
    """What the evaluator's number means; a caller's own evaluator may not say."""
    return getattr(evaluator, "metric_label", None) or f"{spec} evaluator's accuracy"


# ---------------------------------------------------------------------------------------------- context


@dataclass
class Context:
    """What a trial needs, prepared once (and shipped to each Ray worker)."""

    config: SearchConfig
    space: Any
    table: Any
    reward: Reward
    data: Any
    evaluator: Evaluator
    run_dir: Path


@dataclass
class Session:
    """The driver's side of a search: the context, the study, the records, the progress callback."""

    ctx: Context
    study: optuna.Study
    ledger: runs.Ledger
    progress: Callable[[runs.TrialRecord, int], None] | None = None


@dataclass
class Candidate:
    """A sampled architecture at the deployment resolution, with its predicted latency."""

    number: int
    choices: dict[str, Any]
    arch: Arch | None
    latency_ms: float | None
    started: float = dataclasses.field(default_factory=time.perf_counter)

    def to_json(self) -> dict[str, Any]:
        arch = self.arch.to_dict() if self.arch is not None else None
        return {"number": self.number, "choices": self.choices, "arch": arch, "latency_ms": self.latency_ms}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Candidate:
        arch = Arch.from_dict(data["arch"]) if data.get("arch") else None
        return cls(data["number"], data["choices"], arch, data["latency_ms"])


@dataclass
class Outcome:
    """What became of a candidate: `status` is one of runs.STATUSES."""

    status: str
    accuracy: float | None = None
    error: str | None = None
    eval_seconds: float | None = None
    eval: Any = None
    reused_from: int | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def latency_of(arch: Arch, table: Any) -> float:
    from nas.latency import predict

    return float(predict(arch, table).latency_ms)


def deploy_arch(ctx: Context, choices: dict[str, Any], number: int) -> Arch:
    arch = ctx.space.arch(choices, resolution=ctx.config.resolution, num_classes=DEPLOY_CLASSES)
    return arch.replace(name=runs.trial_name(ctx.config.name, number))


# ---------------------------------------------------------------------------------------------- screening


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


def next_candidate(session: Session) -> tuple[optuna.trial.Trial, Candidate] | None:
    """Ask the study until a candidate needs evaluating. One screened out on predicted latency is recorded
    as rejected and told to the sampler at once (reward 0, the worst), so it learns where not to look at the
    price of a lookup; one whose architecture the run already evaluated reuses that record. None after
    MAX_SKIPPED_IN_A_ROW of those in a row (the sampler cannot find anything new in the window)."""
    ctx = session.ctx
    for _ in range(MAX_SKIPPED_IN_A_ROW):
        started = time.perf_counter()
        trial = session.study.ask()
        arch = ctx.space.sample(trial.suggest_categorical, resolution=ctx.config.resolution, num_classes=DEPLOY_CLASSES)
        arch = arch.replace(name=runs.trial_name(ctx.config.name, trial.number))
        latency = latency_of(arch, ctx.table)
        trial.set_user_attr("latency_ms", latency)
        candidate = Candidate(trial.number, dict(trial.params), arch, latency, started)
        reason = screen(ctx, latency)
        earlier = session.ledger.by_hash.get(arch.hash)
        if reason is not None:
            finish_trial(session, trial, candidate, Outcome("rejected", error=reason))
        elif earlier is not None:
            reuse = Outcome(earlier.status, earlier.accuracy, earlier.error, 0.0, {"reused": True}, earlier.number)
            finish_trial(session, trial, candidate, reuse)
        else:
            return trial, candidate
    return None


# ---------------------------------------------------------------------------------------------- evaluation


class Report:
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


def evaluate(ctx: Context, candidate: Candidate, report: Callable[[int, float], bool] | None) -> Outcome:
    """Accuracy of a candidate that passed screening, on the same blocks at the proxy resolution (the data's
    image size unless the evaluator sets one) and the data's class count: complete, pruned, or failed (the
    loss turned NaN)."""
    assert candidate.arch is not None
    resolution = getattr(ctx.evaluator, "resolution", None) or ctx.data.image_size
    proxy = candidate.arch.replace(resolution=resolution, num_classes=ctx.data.num_classes)
    try:
        result = ctx.evaluator(proxy, report=report)
    except optuna.TrialPruned:
        return Outcome("pruned")
    except Exception as err:
        if not _is_diverged(err):
            raise
        return Outcome("failed", error=f"training diverged: {err}")
    accuracy = float(getattr(result, "accuracy", math.nan))
    seconds, extra = getattr(result, "seconds", None), _jsonable(getattr(result, "extra", {}))
    # The evaluator knows whether it stopped early; a "prune" answer to the last epoch's report stops nothing
    # (the training is done), so the trial is complete. Evaluators that do not say fall back on whether the
    # pruner was asked and said stop.
    if getattr(result, "pruned", getattr(report, "pruned", False)):
        return Outcome("pruned", eval_seconds=seconds, eval=extra)
    if not math.isfinite(accuracy):
        return Outcome("failed", error="the evaluator returned a non-finite accuracy", eval_seconds=seconds, eval=extra)
    return Outcome("complete", accuracy, eval_seconds=seconds, eval=extra)


def _jsonable(value: Any) -> Any:
    """The evaluator's details if they survive JSON (they should), else their repr."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError):
        return repr(value)


# ---------------------------------------------------------------------------------------------- recording


def finish_trial(
    session: Session, trial: optuna.trial.Trial | int, candidate: Candidate, outcome: Outcome
) -> runs.TrialRecord:
    """Record a trial (trials/NNNN.json, best.json, pareto.json) and tell the study its outcome, in that
    order: a kill in between leaves a record that `--resume` tells the study again (`study.reconcile`)."""
    ctx = session.ctx
    reward: float | None = None
    if outcome.status == "complete" and outcome.accuracy is not None and candidate.latency_ms is not None:
        reward = ctx.reward(outcome.accuracy, candidate.latency_ms)
    elif outcome.status == "rejected":
        reward = 0.0
    record = runs.TrialRecord(
        number=candidate.number,
        status=outcome.status,
        params=dict(candidate.choices),
        arch=candidate.arch.to_dict() if candidate.arch is not None else None,
        latency_ms=candidate.latency_ms,
        accuracy=outcome.accuracy if outcome.status == "complete" else None,
        reward=reward,
        error=outcome.error,
        eval_seconds=outcome.eval_seconds,
        eval=outcome.eval,
        wall_s=time.perf_counter() - candidate.started,
        reused_from=outcome.reused_from,
        arch_hash=candidate.arch.hash if candidate.arch is not None else None,
    )
    session.ledger.add(record)
    if record.status not in ("rejected", "interrupted"):
        session.ledger.write_results()
    if isinstance(trial, optuna.trial.Trial):
        trial.set_user_attr("status", record.status)
    tell(session.study, trial, record, ctx.config.objective == "pareto")
    if session.progress is not None:
        session.progress(record, session.ledger.evaluated)
    return record


def tell(study: optuna.Study, trial: optuna.trial.Trial | int, record: runs.TrialRecord, pareto: bool) -> None:
    """Report a trial's outcome; a screened-out candidate is a completed trial with reward 0 (accuracy 0 for
    Pareto), the worst possible, so the sampler learns to avoid the region without a training run."""
    if record.status == "complete" and record.reward is not None:
        study.tell(trial, [record.accuracy, record.latency_ms] if pareto else [record.reward])
    elif record.status == "rejected":
        study.tell(trial, [0.0, record.latency_ms] if pareto else [0.0])
    elif record.status == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:
        study.tell(trial, state=TrialState.FAIL)
