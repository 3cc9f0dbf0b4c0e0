"""The run's Optuna study: opened over the journal file (public Optuna interfaces only), its pruner, and the
reconciliation a resume needs after a kill."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.storages import JournalStorage
from optuna.trial import TrialState

from nas.search import runs
from nas.search.config import SearchConfig
from nas.search.evaluation import Candidate, Outcome, Session, deploy_arch, finish_trial, tell
from nas.search.journal import JournalFile
from nas.search.samplers import make_sampler

optuna.logging.set_verbosity(optuna.logging.WARNING)


class AfterEvaluated(optuna.pruners.BasePruner):
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


def _pruner(c: SearchConfig) -> optuna.pruners.BasePruner:
    if c.objective == "pareto" or c.pruner == "none":
        return optuna.pruners.NopPruner()  # Optuna cannot prune multi-objective trials
    if c.pruner == "halving":
        return AfterEvaluated(optuna.pruners.SuccessiveHalvingPruner())
    return AfterEvaluated(optuna.pruners.MedianPruner(n_startup_trials=0, n_warmup_steps=1))


def open_study(run_dir: Path, c: SearchConfig, create: bool) -> optuna.Study:
    """The run's study in its journal file (optuna-dashboard opens it). The sampler's seed is the run's seed
    plus the number of trials the study already holds, so a resumed run does not replay the draws of its
    first session."""
    storage = JournalStorage(JournalFile(run_dir / runs.STUDY_FILE))
    held = 0
    if not create:
        try:
            held = len(storage.get_all_trials(storage.get_study_id_from_name(runs.STUDY_NAME), deepcopy=False))
        except KeyError:  # killed between writing config.json and creating the study
            held = 0
    directions = ["maximize", "minimize"] if c.objective == "pareto" else ["maximize"]
    sampler = make_sampler(c.sampler_name, (c.seed + held) % 2**32, c.objective == "pareto", c.workers)
    return optuna.create_study(
        storage=storage,
        study_name=runs.STUDY_NAME,
        directions=directions,
        sampler=sampler,
        pruner=_pruner(c),
        load_if_exists=not create,
    )


def reconcile(session: Session) -> list[int]:
    """Trials a killed process left RUNNING: one whose record was written is told its recorded outcome;
    the others are recorded as interrupted (with their architecture when the killed process had sampled all
    of it). They cost no evaluation, so they do not count against `--trials`. Returns the interrupted ones."""
    ctx, study = session.ctx, session.study
    interrupted = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        record = session.ledger.records.get(t.number)
        if record is not None and record.status != "interrupted":
            tell(study, t.number, record, ctx.config.objective == "pareto")
            continue
        arch = None
        if all(d.name in t.params for d in ctx.space.decisions):
            arch = deploy_arch(ctx, dict(t.params), t.number)
        candidate = Candidate(t.number, dict(t.params), arch, t.user_attrs.get("latency_ms"))
        outcome = Outcome("interrupted", error="interrupted (the process running it was killed); not evaluated")
        finish_trial(session, t.number, candidate, outcome)
        interrupted.append(t.number)
    return interrupted
