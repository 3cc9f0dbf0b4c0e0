"""The samplers behind `--sampler`: Optuna's TPE, NSGA-II and random search, MnasNet's own method (a
policy-gradient controller) and aging evolution (`nas.search.evolution`), the last two written as Optuna
samplers so that every backend drives all five the same way.

MnasNet (Tan et al., CVPR 2019, §4) trains an RNN controller with PPO on the reward ACC·(LAT/T)^w. Here the
controller is a factorized softmax policy, one independent categorical distribution per decision of the
space, trained with REINFORCE and a moving-average baseline (Williams 1992). A factorized space has no
conditional decisions, so the RNN's only extra power is to correlate decisions; that is the simplification.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, NSGAIISampler, RandomSampler, TPESampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState

from nas.errors import NasError

SAMPLERS = ("tpe", "nsga2", "random", "pg", "evolution")


class PolicyGradientSampler(BaseSampler):
    """REINFORCE over a factorized softmax policy: each categorical parameter has its own logits.

    After a trial ends its reward R moves every chosen choice's logits by lr·A·(onehot − softmax),
    with the advantage A = (R − b)/s, b a moving average of rewards and s a moving RMS of R − b (so
    the step size does not depend on the reward's scale). The policy is a function of the study's
    finished trials: any trial it has not yet seen (a resumed run, another worker) is replayed in
    trial order before the next sample, so a restart rebuilds it from storage. Pruned trials count
    with their last reported (partial) reward; failed ones not at all.
    """

    def __init__(self, seed: int | None = None, learning_rate: float = 0.2, baseline_decay: float = 0.9):
        self._rng = np.random.RandomState(seed)
        self._fallback = RandomSampler(seed=seed)
        self.learning_rate = learning_rate
        self.baseline_decay = baseline_decay
        self.logits: dict[str, np.ndarray] = {}
        self.baseline: float | None = None
        self._spread = 0.0
        self._seen: set[int] = set()

    # -- the policy

    def probabilities(self, name: str) -> np.ndarray:
        z = self.logits[name]
        e = np.exp(z - z.max())
        return e / e.sum()

    def _logits(self, name: str, size: int) -> np.ndarray:
        if name not in self.logits or len(self.logits[name]) != size:
            self.logits[name] = np.zeros(size)
        return self.logits[name]

    def update(self, params: dict[str, int], reward: float) -> None:
        """One REINFORCE step: `params` maps each decision to the index of the choice taken."""
        if self.baseline is None:
            self.baseline = reward
        advantage = reward - self.baseline
        self._spread = math.sqrt(self.baseline_decay * self._spread**2 + (1 - self.baseline_decay) * advantage**2)
        scaled = advantage / self._spread if self._spread > 1e-12 else 0.0
        for name, index in params.items():
            if name not in self.logits:
                continue
            grad = -self.probabilities(name)
            grad[index] += 1.0
            self.logits[name] = self.logits[name] + self.learning_rate * scaled * grad
        self.baseline = self.baseline_decay * self.baseline + (1 - self.baseline_decay) * reward

    def _learn(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        if trial.number in self._seen:
            return
        if state == TrialState.COMPLETE and values:
            reward = values[0]
        elif state == TrialState.PRUNED and trial.intermediate_values:
            reward = trial.intermediate_values[max(trial.intermediate_values)]
        else:
            if state.is_finished():
                self._seen.add(trial.number)
            return
        if not math.isfinite(reward):
            self._seen.add(trial.number)
            return
        if study.direction == StudyDirection.MINIMIZE:
            reward = -reward
        indices: dict[str, int] = {}
        for name, dist in trial.distributions.items():
            if isinstance(dist, CategoricalDistribution):
                self._logits(name, len(dist.choices))
                indices[name] = int(dist.to_internal_repr(trial.params[name]))
        self.update(indices, float(reward))
        self._seen.add(trial.number)

    def _sync(self, study: Study) -> None:
        """Replay finished trials this sampler has not seen (resume; other workers), in trial order."""
        for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
            if t.number not in self._seen and t.state.is_finished():
                self._learn(study, t, t.state, t.values)

    # -- optuna's sampler interface

    def before_trial(self, study: Study, trial: FrozenTrial) -> None:
        if len(study.directions) > 1:
            raise NasError("the pg sampler learns from one reward; use --objective reward (or another sampler)")
        self._sync(study)

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        if not isinstance(param_distribution, CategoricalDistribution):
            return self._fallback.sample_independent(study, trial, param_name, param_distribution)
        self._logits(param_name, len(param_distribution.choices))
        index = int(self._rng.choice(len(param_distribution.choices), p=self.probabilities(param_name)))
        return param_distribution.to_external_repr(index)

    def after_trial(self, study: Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        self._learn(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._fallback.reseed_rng()


def make_sampler(name: str, seed: int | None = None, multi_objective: bool = False, workers: int = 1) -> BaseSampler:
    """The sampler for `--sampler NAME`. With several workers TPE lies about running trials (constant liar)
    so that parallel workers do not all sample the same point."""
    if name not in SAMPLERS:
        raise NasError(f"unknown sampler {name!r}; choose one of {', '.join(SAMPLERS)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if name == "tpe":
            return TPESampler(multivariate=True, seed=seed, constant_liar=workers > 1)
        if name == "nsga2":
            return NSGAIISampler(seed=seed, population_size=20)
        if name == "random":
            return RandomSampler(seed=seed)
    if name == "evolution":
        from nas.search.evolution import RegularizedEvolutionSampler

        # Candidates screened out on predicted latency were never evaluated: they do not join the population.
        return RegularizedEvolutionSampler(seed=seed, skip=lambda t: t.user_attrs.get("status") == "rejected")
    if multi_objective:
        raise NasError("the pg sampler learns from one reward; use --objective reward, or --sampler nsga2/tpe/random")
    return PolicyGradientSampler(seed=seed)
