"""Aging (regularized) evolution, Real et al., "Regularized Evolution for Image Classifier Architecture Search"
(AAAI 2019), as an Optuna sampler (`--sampler evolution`).

The population is the `population` most recent finished trials with a value (trial order), so the oldest
member ages out as each new one arrives, whatever its fitness: that is the regularisation. A new trial
draws `sample` members at random, takes the fittest as parent (tournament selection) and changes one of
its decisions to another of that decision's choices. Until the population is full, trials are random.

Everything but the random generator is read from the study's trials, so a resumed run or another worker
continues the same evolution. With two objectives (`--objective pareto`) the parent is drawn from the
tournament's members that no other member dominates. `skip(trial)` keeps trials out of the population
(the search passes candidates screened out on predicted latency: they were never evaluated).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, CategoricalDistribution
from optuna.samplers import BaseSampler, RandomSampler
from optuna.study import Study, StudyDirection
from optuna.trial import FrozenTrial, TrialState


class RegularizedEvolutionSampler(BaseSampler):
    """Tournament selection over an aging population; a child is its parent with one decision mutated."""

    def __init__(
        self,
        population: int = 20,
        sample: int = 5,
        seed: int | None = None,
        skip: Callable[[FrozenTrial], bool] | None = None,
    ):
        if not 2 <= sample <= population:
            raise ValueError(f"need 2 ≤ sample ≤ population, got sample {sample}, population {population}")
        self.population, self.sample = population, sample
        self.skip = skip
        self._rng = np.random.RandomState(seed)
        self._random = RandomSampler(seed=seed)

    # -- the population

    def members(self, study: Study) -> list[FrozenTrial]:
        """The `population` most recent completed trials with finite values (youngest last)."""
        done = [
            t
            for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
            if t.values is not None and all(np.isfinite(t.values)) and not (self.skip and self.skip(t))
        ]
        return sorted(done, key=lambda t: t.number)[-self.population :]

    def _better(self, study: Study, a: FrozenTrial, b: FrozenTrial) -> bool:
        """a dominates b (one objective: a is fitter)."""
        signs = [1.0 if d == StudyDirection.MAXIMIZE else -1.0 for d in study.directions]
        x = [s * v for s, v in zip(signs, a.values, strict=True)]
        y = [s * v for s, v in zip(signs, b.values, strict=True)]
        return all(p >= q for p, q in zip(x, y, strict=True)) and any(p > q for p, q in zip(x, y, strict=True))

    def parent(self, study: Study, members: list[FrozenTrial]) -> FrozenTrial:
        drawn = [members[i] for i in self._rng.choice(len(members), size=self.sample, replace=False)]
        best = [t for t in drawn if not any(self._better(study, o, t) for o in drawn)]
        return best[self._rng.randint(len(best))]

    def mutate(self, params: dict[str, Any], space: dict[str, BaseDistribution]) -> dict[str, Any]:
        """The parent's choices with one decision (of those with another choice) set to another choice."""
        child = dict(params)
        mutable = [n for n, d in space.items() if isinstance(d, CategoricalDistribution) and len(d.choices) > 1]
        if not mutable:
            return child
        name = mutable[self._rng.randint(len(mutable))]
        choices = space[name].choices
        others = [c for c in choices if not _same(c, child.get(name))]
        child[name] = others[self._rng.randint(len(others))]
        return child

    # -- Optuna's sampler interface

    def infer_relative_search_space(self, study: Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        members = self.members(study)
        if len(members) < self.population:
            return {}
        space: dict[str, BaseDistribution] = {}
        for name, dist in members[-1].distributions.items():
            if isinstance(dist, CategoricalDistribution):
                space[name] = dist
        return space

    def sample_relative(
        self, study: Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        if not search_space:
            return {}
        parent = self.parent(study, self.members(study))
        # Only choices the space still holds are inherited; the others are drawn at random by sample_independent.
        inherited = {
            n: v
            for n, v in parent.params.items()
            if n in search_space and any(_same(v, c) for c in search_space[n].choices)  # type: ignore[attr-defined]
        }
        return self.mutate(inherited, {n: search_space[n] for n in inherited})

    def sample_independent(
        self, study: Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        return self._random.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        self._rng.seed()
        self._random.reseed_rng()


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)
