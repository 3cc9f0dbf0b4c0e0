"""`--backend ray`: the same trials as Ray Tune trials, so that a cluster runs them in parallel.

The Optuna study of the run directory stays the one source of truth: a small Ray `Searcher` asks the
study for each new trial and tells it the outcome (the ask/tell bridge that Ray's own `OptunaSearch`
is built on, but over the run's journal storage, so that `--resume`, the samplers and the run
directory work as in the local backend). Trials report a partial reward after every proxy-training
epoch and ASHA (asynchronous successive halving) stops the hopeless ones; a stopped trial is
recorded as pruned. Records are written by the driver, so workers on other machines need no access
to the run directory.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import tempfile
import uuid
from typing import Any

import optuna
from ray.tune.search import Searcher

from nas.errors import NasError
from nas.search.evaluation import (
    SKIPPED_STOP,
    Candidate,
    Context,
    Outcome,
    Session,
    evaluate,
    finish_trial,
    next_candidate,
)

METRIC = "score"


def _trainable(config: dict[str, Any], ctx: Context | None = None) -> None:
    """One trial in a Ray worker: accuracy with a report per epoch, then the outcome."""
    from ray import tune

    assert ctx is not None
    candidate = Candidate.from_json(config["candidate"])
    factor = 1.0 if ctx.config.objective == "pareto" else ctx.reward.factor(candidate.latency_ms)

    def report(epoch: int, accuracy: float) -> bool:
        tune.report({METRIC: float(accuracy) * factor, "final": False})
        return False  # ASHA stops a trial by ending its process, not through this answer

    try:
        outcome = evaluate(ctx, candidate, report)
    except NasError as err:
        outcome = Outcome("failed", error=str(err))
    score = 0.0
    if outcome.status == "complete" and outcome.accuracy is not None:
        score = outcome.accuracy * factor
    tune.report({METRIC: score, "final": True, "outcome_json": json.dumps(outcome.to_json())})


# What a StudySearcher works on (the session), kept out of the searcher itself: Ray pickles its search
# algorithm with the experiment state, and neither the study's locks nor a progress bar pickle.
_SESSIONS: dict[str, Session] = {}


class StudySearcher(Searcher):
    """Ray trial ids ↔ Optuna trials of the run's study (ask on suggest, finish_trial on complete)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.live: dict[str, tuple[optuna.trial.Trial, Candidate]] = {}
        self.last: dict[str, dict[str, Any]] = {}
        self.exhausted = False

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("live", "last")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, live={}, last={})

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the study in the run directory is the state (`--resume` continues from it)."""

    def restore(self, checkpoint_path: str) -> None:
        """See `save`."""

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        session = _SESSIONS[self.key]
        if self.exhausted or session.ledger.evaluated + len(self.live) >= session.ctx.config.trials:
            return Searcher.FINISHED
        found = next_candidate(session)  # screens on latency and reuses known archs here, in the driver
        if found is None:
            self.exhausted = True
            return Searcher.FINISHED
        trial, candidate = found
        self.live[trial_id] = (trial, candidate)
        return {"candidate": candidate.to_json()}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.last[trial_id] = result

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        if trial_id not in self.live:
            return
        session = _SESSIONS[self.key]
        trial, candidate = self.live.pop(trial_id)
        result = result or self.last.pop(trial_id, None) or {}
        self.last.pop(trial_id, None)
        if result.get("final") and "outcome_json" in result:
            outcome = Outcome(**json.loads(result["outcome_json"]))
        elif error:
            outcome = Outcome("failed", error="the Ray trial raised an error")
        else:  # stopped by ASHA
            outcome = Outcome("pruned")
            score = result.get(METRIC)
            if score is not None and math.isfinite(score) and session.ctx.config.objective != "pareto":
                trial.report(float(score), int(result.get("training_iteration", 1)))
        finish_trial(session, trial, candidate, outcome)

    def interrupt_live(self) -> None:
        """Trials Ray left unfinished (Ctrl-C, time budget): recorded as interrupted, not counted."""
        session = _SESSIONS[self.key]
        for trial, candidate in self.live.values():
            finish_trial(session, trial, candidate, Outcome("interrupted", error="interrupted; not evaluated"))
        self.live.clear()


def run_ray(session: Session) -> str:
    """Run the remaining trials of the study on Ray (a local instance unless `--address`); returns why it
    stopped."""
    try:
        import ray
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
    except ImportError as err:
        raise NasError(f"--backend ray needs Ray installed ({err})") from None
    c = session.ctx.config
    if session.ledger.evaluated >= c.trials:
        return "trials"
    started_here = False
    if not ray.is_initialized():
        try:
            if c.address:
                ray.init(address=c.address, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
            else:
                ray.init(
                    num_cpus=c.workers, include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
                )
        except (ConnectionError, RuntimeError, ValueError) as err:
            where = f" at {c.address}" if c.address else ""
            raise NasError(f"cannot start or reach Ray{where}: {err}") from None
        started_here = True
    epochs = math.ceil(float(c.evaluator_options.get("epochs", 2)))
    scheduler = ASHAScheduler(time_attr="training_iteration", max_t=epochs + 1, grace_period=1, reduction_factor=3)
    for name in ("ray.tune", "ray.train"):  # Tune's INFO lines would bury the progress bar
        logging.getLogger(name).setLevel(logging.WARNING)
    key = uuid.uuid4().hex
    _SESSIONS[key] = session
    searcher = StudySearcher(key)
    storage = tempfile.mkdtemp(prefix="nas-ray-")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trainable, ctx=session.ctx), {"cpu": 1}),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                metric=METRIC,
                mode="max",
                num_samples=-1,  # the searcher says when the run has enough trials
                max_concurrent_trials=c.workers,
                time_budget_s=c.time_budget_s,
            ),
            run_config=tune.RunConfig(storage_path=storage, name="tune", verbose=0),
        )
        tuner.fit()
    finally:
        searcher.interrupt_live()
        _SESSIONS.pop(key, None)
        shutil.rmtree(storage, ignore_errors=True)
        if started_here:
            ray.shutdown()
    if searcher.exhausted:
        return SKIPPED_STOP
    return "trials" if session.ledger.evaluated >= c.trials else "time budget"
