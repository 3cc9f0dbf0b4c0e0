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
from nas.search import runs

METRIC = "score"


def _trainable(config: dict[str, Any], ctx: Any = None) -> None:
    """One trial in a Ray worker: latency, then accuracy with a report per epoch, then the final record."""
    from ray import tune

    from nas.search import evaluate_choices

    def report_factory(factor: float) -> Any:
        def report(epoch: int, accuracy: float) -> bool:
            tune.report(
                {
                    METRIC: float(accuracy) * (1.0 if ctx.config.objective == "pareto" else factor),
                    "final": False,
                }
            )
            return False  # ASHA stops a trial by ending its process, not through this answer

        return report

    try:
        record = evaluate_choices(ctx, config["choices"], report_factory)
    except NasError as err:
        record = {
            "status": "failed",
            "error": str(err),
            "params": config["choices"],
            "latency_ms": None,
            "accuracy": None,
            "reward": None,
            "arch": None,
            "wall_s": None,
        }
    score = record.get("reward") if ctx.config.objective == "reward" else record.get("accuracy")
    tune.report({METRIC: float(score) if score is not None else 0.0, "final": True, "record_json": json.dumps(record)})


# What a StudySearcher works on (context, study, progress callback), kept out of the searcher itself: Ray
# pickles its search algorithm with the experiment state, and neither the study's locks nor a progress bar
# pickle.
_BRIDGES: dict[str, tuple[Any, optuna.Study, Any]] = {}


class StudySearcher(Searcher):
    """Ray trial ids ↔ Optuna trials of the run's study (ask on suggest, tell on complete)."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self.key = key
        self.live: dict[str, tuple[optuna.trial.Trial, dict[str, Any]]] = {}
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
        from nas.search import _evaluated, next_candidate

        ctx, study, progress = _BRIDGES[self.key]
        if _evaluated(study) + len(self.live) >= ctx.config.trials or self.exhausted:
            return Searcher.FINISHED
        found = next_candidate(ctx, study, progress)  # screens on latency here, in the driver
        if found is None:
            self.exhausted = True
            return Searcher.FINISHED
        trial, choices, _ = found
        self.live[trial_id] = (trial, choices)
        return {"choices": choices, "number": trial.number}

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        self.last[trial_id] = result

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        from nas.search import _evaluated, deploy_arch, latency_of, tell

        if trial_id not in self.live:
            return
        ctx, study, progress = _BRIDGES[self.key]
        pareto = ctx.config.objective == "pareto"
        trial, choices = self.live.pop(trial_id)
        result = result or self.last.pop(trial_id, None) or {}
        if result.get("final") and "record_json" in result:
            record = json.loads(result["record_json"])
        else:  # stopped by ASHA (pruned) or crashed (failed)
            arch = deploy_arch(ctx, choices)
            record = {
                "status": "failed" if error else "pruned",
                "error": "the Ray trial raised an error" if error else None,
                "params": choices,
                "arch": arch.to_dict(),
                "latency_ms": latency_of(arch, ctx.table),
                "accuracy": None,
                "reward": None,
                "wall_s": None,
            }
            if not error and result.get(METRIC) is not None and math.isfinite(result[METRIC]) and not pareto:
                trial.report(float(result[METRIC]), int(result.get("training_iteration", 1)))
        record.update(schema=runs.RECORD_SCHEMA, number=trial.number, params=dict(trial.params))
        if record.get("arch"):
            record["arch"]["name"] = f"{ctx.config.name}-trial{trial.number:04d}"
        trial.set_user_attr("status", record["status"])
        runs.write_record(ctx.run_dir, record)
        if record.get("status") == "failed" and record.get("latency_ms") is None:
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
        else:
            tell(study, trial, record, pareto)
        runs.write_results(ctx.run_dir, runs.load_records(ctx.run_dir))
        if progress is not None:
            progress(record, _evaluated(study))


def run_ray(ctx: Any, study: optuna.Study, budget_s: float | None, progress: Any) -> str:
    """Run the remaining trials of the study on Ray (a local instance unless `--address`); returns why it
    stopped."""
    try:
        import ray
        from ray import tune
        from ray.tune.schedulers import ASHAScheduler
    except ImportError as err:
        raise NasError(f"--backend ray needs Ray installed ({err})") from None
    from nas.search import MAX_REJECTED_IN_A_ROW, _evaluated

    c = ctx.config
    remaining = c.trials - _evaluated(study)
    if remaining <= 0:
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
    _BRIDGES[key] = (ctx, study, progress)
    searcher = StudySearcher(key)
    storage = tempfile.mkdtemp(prefix="nas-ray-")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    try:
        tuner = tune.Tuner(
            tune.with_resources(tune.with_parameters(_trainable, ctx=ctx), {"cpu": 1}),
            tune_config=tune.TuneConfig(
                search_alg=searcher,
                scheduler=scheduler,
                metric=METRIC,
                mode="max",
                num_samples=-1,  # the searcher says when the run has enough trials
                max_concurrent_trials=c.workers,
                time_budget_s=budget_s,
            ),
            run_config=tune.RunConfig(storage_path=storage, name="tune", verbose=0),
        )
        tuner.fit()
    finally:
        _BRIDGES.pop(key, None)
        shutil.rmtree(storage, ignore_errors=True)
        if started_here:
            ray.shutdown()
    if searcher.exhausted:
        return f"{MAX_REJECTED_IN_A_ROW} candidates in a row were screened out"
    return "trials" if _evaluated(study) >= c.trials else "time budget"
