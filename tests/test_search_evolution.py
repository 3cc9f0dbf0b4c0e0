"""`--sampler evolution`: aging evolution (Real et al. 2019) as an Optuna sampler."""

from __future__ import annotations

import statistics

import optuna
import pytest

from nas.search.evolution import RegularizedEvolutionSampler
from nas.search.samplers import make_sampler

DECISIONS = 10
CHOICES = ["a", "b", "c", "d"]
HIDDEN = ["b", "d", "a", "c", "c", "a", "d", "b", "a", "d"]


def onemax(trial: optuna.trial.Trial) -> float:
    """How many decisions match a hidden architecture: a toy landscape where one mutation moves one step."""
    return float(sum(trial.suggest_categorical(f"d{i}", CHOICES) == HIDDEN[i] for i in range(DECISIONS)))


def best_of(sampler: optuna.samplers.BaseSampler, trials: int = 150) -> float:
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(onemax, n_trials=trials)
    return study.best_value


def test_evolution_beats_random_sampling_on_average_over_seeds():
    seeds = range(6)
    evolution = [best_of(RegularizedEvolutionSampler(population=20, sample=5, seed=s)) for s in seeds]
    random = [best_of(optuna.samplers.RandomSampler(seed=s)) for s in seeds]
    assert statistics.fmean(evolution) > statistics.fmean(random) + 1.0, (evolution, random)


def test_children_are_one_mutation_from_a_member_and_inside_the_space():
    from nas.space import load_space

    space = load_space("mobilenetv3")
    sampler = RegularizedEvolutionSampler(population=10, sample=3, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial):
        chosen = {d.name: trial.suggest_categorical(d.name, d.choices) for d in space.decisions}
        return float(sum(hash(str(v)) % 7 for v in chosen.values()))

    study.optimize(objective, n_trials=60)
    choices = {d.name: d.choices for d in space.decisions}
    trials = study.get_trials()
    for t in trials:
        assert all(any(v == c and type(v) is type(c) for c in choices[n]) for n, v in t.params.items())
    for t in trials[10:]:  # after the population filled: one decision away from an earlier trial (its parent)
        diffs = [sum(t.params[n] != o.params[n] for n in choices) for o in trials[: t.number]]
        assert 1 in diffs, t.number


def test_the_population_is_read_from_the_study_so_a_resume_continues_it():
    study = optuna.create_study(direction="maximize", sampler=RegularizedEvolutionSampler(population=8, sample=3))
    study.optimize(onemax, n_trials=30)
    first = RegularizedEvolutionSampler(population=8, sample=3, seed=1).members(study)
    assert [t.number for t in first] == list(range(22, 30))  # the 8 youngest: the oldest aged out
    skip = RegularizedEvolutionSampler(population=8, sample=3, skip=lambda t: t.number % 2 == 0).members(study)
    assert [t.number for t in skip] == [15, 17, 19, 21, 23, 25, 27, 29]


def test_two_objectives_and_bad_sizes():
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=make_sampler("evolution", 0, True))

    def objective(trial):
        value = onemax(trial)
        return value, float(sum(trial.params[f"d{i}"] == "d" for i in range(DECISIONS)))

    study.optimize(objective, n_trials=40)
    assert len(study.best_trials) >= 1
    with pytest.raises(ValueError):
        RegularizedEvolutionSampler(population=4, sample=5)
