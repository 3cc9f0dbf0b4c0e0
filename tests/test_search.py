"""The search: reward, target parsing, samplers, trial loop, run directory, resume, bad input."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import optuna
import pytest
import torch

from nas.cli import main
from nas.errors import NasError
from nas.search import SearchConfig, fastest_latency, latency_of, search
from nas.search import runs as run_files
from nas.search.reward import make_reward, parse_target
from nas.search.samplers import PolicyGradientSampler, make_sampler
from nas.sources import resolve

torch.set_num_threads(1)


# ---------------------------------------------------------------------------------------------- helpers


class Result:
    def __init__(self, accuracy: float, pruned: bool = False):
        self.accuracy, self.seconds, self.extra, self.pruned = accuracy, 0.0, {"fake": True}, pruned


class FakeEvaluator:
    """Accuracy that grows with the proxy net's MACs and saturates (a trade-off with latency), reporting
    `epochs` partial accuracies to the pruner and stopping early, as nas.accuracy's trainer does, only when
    epochs remain; remembers every arch it was asked to train."""

    def __init__(self, diverge_on: set[int] | None = None, epochs: int = 3):
        self.seen: list = []
        self.diverge_on = diverge_on or set()
        self.epochs = epochs

    def __call__(self, arch, report=None):
        from nas.accuracy import TrainingDiverged

        self.seen.append(arch)
        if len(self.seen) - 1 in self.diverge_on:
            raise TrainingDiverged("loss became nan at step 3")
        accuracy = 1 - math.exp(-arch.macs / 4e6)
        if report is not None:
            for epoch in range(1, self.epochs + 1):
                partial = accuracy * epoch / self.epochs
                if report(epoch, partial) and epoch < self.epochs:
                    return Result(partial, pruned=True)
        return Result(accuracy)


def config(tmp_path: Path, **changes) -> SearchConfig:
    base = dict(
        target_latency="80ms",
        device="pixel",
        space="mobilenetv3",
        trials=6,
        time_budget_s=None,
        out_dir=str(tmp_path / "runs"),
        name="t",
        evaluator="zero-cost",
    )
    base.update(changes)
    return SearchConfig(**base)


# ---------------------------------------------------------------------------------------------- reward


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("80ms", 80.0),
        ("80 ms", 80.0),
        ("0.08s", 80.0),
        ("80", 80.0),
        (" 12.5ms ", 12.5),
        (80, 80.0),
        ("1e2ms", 100.0),
    ],
)
def test_parse_target(text, ms):
    assert parse_target(text) == pytest.approx(ms)


@pytest.mark.parametrize("text", ["0", "0ms", "-5ms", "fast", "80 us", "ms", "", "nan", "80ms80"])
def test_parse_target_rejects(text):
    with pytest.raises(NasError, match="target latency"):
        parse_target(text)


def test_reward_math():
    soft = make_reward("80ms")
    assert soft(0.8, 80) == pytest.approx(0.8)
    assert soft(0.8, 160) == pytest.approx(0.8 * 2**-0.07)
    assert soft(0.8, 40) == pytest.approx(0.8 * 0.5**-0.07)  # faster than T is rewarded a little
    hard = make_reward("80ms", "hard")
    assert (hard.alpha, hard.beta) == (0.0, -1.0) and hard.hard
    assert hard(0.8, 40) == pytest.approx(0.8)
    assert hard(0.8, 160) == pytest.approx(0.4)
    custom = make_reward("0.1s", "soft", w=-0.15)
    assert custom(0.5, 200) == pytest.approx(0.5 * 2**-0.15)
    assert make_reward(80, "hard", w=-2.0)(1.0, 160) == pytest.approx(0.25)
    with pytest.raises(NasError):
        make_reward("80ms", "medium")
    with pytest.raises(NasError):
        make_reward("80ms", w=0.5)


# ---------------------------------------------------------------------------------------------- samplers


def test_pg_policy_moves_toward_rewarded_choice():
    sampler = PolicyGradientSampler(seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: 1.0 if t.suggest_categorical("op", ["a", "b", "c"]) == "c" else 0.0, n_trials=60)
    probs = sampler.probabilities("op")
    assert probs[2] > 0.8, probs
    # The policy is a function of the finished trials: a fresh sampler on the same study rebuilds it.
    again = PolicyGradientSampler(seed=1)
    again.before_trial(study, study.trials[0])
    assert again.probabilities("op") == pytest.approx(probs)
    last = [t.params["op"] for t in study.trials[-20:]]
    assert last.count("c") >= 14


def test_pg_refuses_two_objectives():
    with pytest.raises(NasError, match="pg"):
        make_sampler("pg", 0, multi_objective=True)
    with pytest.raises(NasError, match="unknown sampler"):
        make_sampler("annealing")


@pytest.mark.parametrize("sampler", ["tpe", "nsga2", "random", "pg", "evolution"])
def test_each_sampler_runs_on_the_real_space_and_pixel_table(tmp_path, sampler):
    fake = FakeEvaluator()
    result = search(config(tmp_path, sampler=sampler, trials=5), evaluator=fake)
    records = run_files.load_records(result.run_dir)
    assert [r.number for r in records] == list(range(len(records)))
    evaluated = [r for r in records if r.status != "rejected"]
    rejected = [r for r in records if r.status == "rejected"]
    assert len(evaluated) == result.trials == 5 == len(fake.seen)
    # soft reward, default window: only candidates predicted within 80 ms ± 10% are evaluated
    assert all(abs(r.latency_ms / 80 - 1) <= 0.1 for r in evaluated)
    assert all(abs(r.latency_ms / 80 - 1) > 0.1 and r.reward == 0.0 for r in rejected)
    assert result.best.reward == max(r.reward for r in records if r.status == "complete")
    stored = json.loads((result.run_dir / "config.json").read_text())
    assert stored["sampler"] == sampler


def test_without_window_every_candidate_is_evaluated(tmp_path):
    result = search(config(tmp_path, sampler="random", trials=4, window=None), evaluator=FakeEvaluator())
    records = run_files.load_records(result.run_dir)
    assert len(records) == 4 and all(r.status == "complete" for r in records)


def test_pareto_objective(tmp_path):
    result = search(config(tmp_path, objective="pareto", trials=5), evaluator=FakeEvaluator())
    study = optuna.load_study(
        study_name=run_files.STUDY_NAME,
        storage=optuna.storages.JournalStorage(
            optuna.storages.journal.JournalFileBackend(str(result.run_dir / run_files.STUDY_FILE))
        ),
    )
    assert len(study.directions) == 2
    front = json.loads((result.run_dir / "pareto.json").read_text())["records"]
    assert front and all(r["status"] == "complete" for r in front)
    for r in front:  # nothing in the run dominates a front point
        for o in run_files.load_records(result.run_dir):
            if o.status == "complete":
                assert not (o.accuracy > r["accuracy"] and o.latency_ms < r["latency_ms"])
    # `nas export RUN --pareto` writes every front point into a folder of its own, one JSON document
    out = tmp_path / "front"
    assert main(["export", str(result.run_dir), "--pareto", "--format", "json", "--out", str(out), "--json"]) == 0
    names = sorted(f"{result.run_dir.name}-trial{r['number']:04d}" for r in front)
    assert sorted(p.name for p in out.iterdir()) == names


# ---------------------------------------------------------------------------------------------- trial loop


def test_hard_mode_never_trains_over_target(tmp_path):
    from nas.latency import load_table
    from nas.space import load_space

    space, table = load_space("mobilenetv3"), load_table("pixel")
    rng = random.Random(0)
    lats = sorted(latency_of(space.random_arch(rng), table) for _ in range(40))
    target = lats[len(lats) // 2]  # about half the space is over it
    fake = FakeEvaluator()
    result = search(config(tmp_path, target_latency=target, reward="hard", sampler="random", trials=10), fake)
    records = run_files.load_records(result.run_dir)
    rejected = [r for r in records if r.status == "rejected"]
    trained = [r for r in records if r.status != "rejected"]
    assert rejected and trained
    assert len(fake.seen) == len(trained)
    assert all(r.latency_ms > target and r.accuracy is None and r.reward == 0.0 for r in rejected)
    assert all(r.latency_ms <= target for r in trained)
    assert result.best.latency_ms <= target


def test_nan_trial_fails_and_search_goes_on(tmp_path):
    result = search(config(tmp_path, trials=4, sampler="random"), FakeEvaluator(diverge_on={1}))
    records = run_files.load_records(result.run_dir)
    failed = [r for r in records if r.status == "failed"]
    assert len(failed) == 1 and "diverged" in failed[0].error
    assert result.trials == 4 and result.best is not None


def test_a_prune_answer_after_the_last_epoch_keeps_the_trial(tmp_path):
    from nas.accuracy import load_data
    from nas.latency import load_table
    from nas.search.evaluation import Candidate, Context, evaluate
    from nas.space import load_space

    space = load_space("mobilenetv3")
    arch = space.arch({d.name: d.choices[0] for d in space.decisions})
    candidate = Candidate(0, {}, arch, 80.0)
    ctx = Context(
        config(tmp_path),
        space,
        load_table("pixel"),
        make_reward("80ms"),
        load_data("synthetic"),
        FakeEvaluator(epochs=3),
        tmp_path,
    )

    def always_prune(epoch, accuracy):
        return True

    assert evaluate(ctx, candidate, always_prune).status == "pruned"
    ctx.evaluator = FakeEvaluator(epochs=1)  # one epoch: nothing left to stop
    outcome = evaluate(ctx, candidate, always_prune)
    assert outcome.status == "complete" and outcome.accuracy > 0


def test_latency_at_deployment_resolution_training_at_data_size(tmp_path):
    fake = FakeEvaluator()
    result = search(config(tmp_path, trials=2, sampler="random", window=None), fake)
    records = run_files.load_records(result.run_dir)
    assert all(r.arch["resolution"] == 224 and r.arch["num_classes"] == 1000 for r in records)
    assert all(a.resolution == 32 and a.num_classes == 10 for a in fake.seen)
    assert fake.seen[0].blocks == [b for b in records[0].arch_spec("t").replace(resolution=32).blocks]
    from nas.latency import load_table

    table = load_table("pixel")
    for r in records:
        assert r.latency_ms == pytest.approx(latency_of(r.arch_spec("t"), table))


# ---------------------------------------------------------------------------------------------- run directory


def test_run_directory_contents(tmp_path):
    result = search(config(tmp_path, trials=4), FakeEvaluator())
    d = result.run_dir
    for name in ("config.json", "study.journal", "best.json", "pareto.json", "pareto.png", "summary.md"):
        assert (d / name).is_file(), name
    assert (d / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(d.rglob(".*.tmp")), "an atomic write left a temporary file"
    records = run_files.load_records(d)
    keys = {"number", "status", "params", "arch", "latency_ms", "accuracy", "reward", "wall_s"}
    files = sorted((d / "trials").glob("*.json"))
    assert len(files) == len(records) and all(keys <= set(json.loads(f.read_text())) for f in files)
    best = json.loads((d / "best.json").read_text())
    assert best["number"] == max((r for r in records if r.status == "complete"), key=lambda r: r.reward).number
    assert "Best: trial" in (d / "summary.md").read_text()
    # nas export runs/<name> [--trial N]
    arch, weights = resolve(str(d))
    assert arch.hash == run_files.arch_of(best, "best").hash and weights is None
    arch0, _ = resolve(str(d), trial=0)
    assert arch0.hash == records[0].arch_spec("0").hash
    with pytest.raises(NasError, match="neither a search run"):
        resolve(str(tmp_path))
    with pytest.raises(NasError, match="no trial 99"):
        resolve(str(d), trial=99)
    with pytest.raises(NasError, match="exists"):
        search(config(tmp_path, trials=4), FakeEvaluator())
    # ... and through the CLI
    assert main(["export", str(d), "--trial", "1", "--format", "json", "--out", str(tmp_path / "x")]) == 0
    exported = json.loads(next((tmp_path / "x").glob("*.json")).read_text())
    assert exported["name"] == "t-trial0001" and exported["stages"] == records[1].arch["stages"]


def test_resume_after_kill(tmp_path):
    first = search(config(tmp_path, trials=3, sampler="pg"), FakeEvaluator())
    # A kill in the middle of trial 3: the study holds it RUNNING and no record exists.
    from nas.search.study import open_study

    study = open_study(first.run_dir, config(tmp_path).validated(), create=False)
    stale = study.ask().number
    assert not run_files.record_path(first.run_dir, stale).exists()
    result = search(config(tmp_path, trials=6, resume=True), FakeEvaluator())
    records = run_files.load_records(result.run_dir)
    assert [r.number for r in records] == list(range(len(records)))
    assert records[stale].status == "interrupted" and "interrupted" in records[stale].error
    assert result.trials == 6 == sum(r.counts for r in records)  # the interrupted trial is not counted
    stored = json.loads((result.run_dir / "config.json").read_text())
    assert stored["sampler"] == "pg"  # the resumed run kept what it searches
    with pytest.raises(NasError, match="differs"):
        search(config(tmp_path, trials=7, resume=True, space="mnasnet"), FakeEvaluator())
    again = search(config(tmp_path, trials=7, resume=True, target_latency="0.08s"), FakeEvaluator())
    assert again.trials == 7


KILLED_SCRIPT = """
import sys, time
from pathlib import Path
from nas.search import SearchConfig, search

class Result:
    def __init__(self, accuracy):
        self.accuracy, self.seconds, self.extra = accuracy, 0.0, {}

calls = []
def evaluator(arch, report=None):
    calls.append(arch)
    if len(calls) == 3:
        Path(sys.argv[2]).write_text("in flight")
        time.sleep(120)
    return Result(0.5)

search(SearchConfig(target_latency="80ms", evaluator="zero-cost", trials=5, time_budget_s=None,
                    out_dir=sys.argv[1], name="killed"), evaluator=evaluator)
"""


def test_resume_after_a_real_kill(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    script, marker = tmp_path / "run.py", tmp_path / "marker"
    script.write_text(KILLED_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "runs"), str(marker)])
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), "the search never reached its third trial"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    run_dir = tmp_path / "runs" / "killed"
    before = run_files.load_records(run_dir)
    assert sum(r.status == "complete" for r in before) == 2
    result = search(config(tmp_path, name="killed", trials=5, resume=True), FakeEvaluator())
    records = run_files.load_records(run_dir)
    assert [r.number for r in records] == list(range(len(records)))
    interrupted = [r for r in records if "interrupted" in (r.error or "")]
    assert len(interrupted) == 1 and interrupted[0].arch is not None
    # the killed trial does not count against --trials: 5 asked, 5 evaluated
    assert result.trials == 5 and sum(r.status == "complete" for r in records) == 5
    assert not list(run_dir.rglob(".*.tmp"))


def test_time_budget_stops_starting_trials(tmp_path):
    result = search(config(tmp_path, trials=50, time_budget_s=1e-3), FakeEvaluator())
    assert result.trials <= 1


def test_fastest_latency_is_a_lower_bound_of_samples():
    from nas.latency import load_table
    from nas.space import load_space

    space, table = load_space("mobilenetv3"), load_table("pixel")
    fastest = fastest_latency(space, table)
    rng = random.Random(1)
    assert all(latency_of(space.random_arch(rng), table) >= fastest - 1e-9 for _ in range(30))


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_json(tmp_path, capsys):
    rc = main(
        [
            "search",
            "--target-latency",
            "80 ms",
            "--evaluator",
            "zero-cost",
            "--trials",
            "3",
            "--out-dir",
            str(tmp_path),
            "--name",
            "cli",
            "--json",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    doc = json.loads(out)
    assert doc["run_dir"] == str(tmp_path / "cli") and doc["trials"] == 3
    assert set(doc["best"]) == {"arch", "latency_ms", "accuracy", "reward"}
    # --resume needs neither the target nor the other options again: the run's config.json has them
    rc = main(["search", "--resume", "--name", "cli", "--out-dir", str(tmp_path), "--trials", "4", "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["trials"] == 4


def test_cli_text_output(tmp_path, capsys):
    rc = main(
        [
            "search",
            "--target-latency",
            "0.08s",
            "--evaluator",
            "zero-cost",
            "--trials",
            "2",
            "--out-dir",
            str(tmp_path),
            "--name",
            "txt",
            "--sampler",
            "random",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "best: trial" in out and "estimated latency" in out and str(tmp_path / "txt" / "best.json") in out
    best = json.loads((tmp_path / "txt" / "best.json").read_text())
    assert f"{best['latency_ms']:.1f} ms" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-latency", "fast"], "target latency"),
        (["--target-latency", "0ms"], "above 0"),
        (["--target-latency", "80ms", "--device", "toaster"], "toaster"),
        (["--target-latency", "80ms", "--space", "nosuchspace"], "nosuchspace"),
        (["--target-latency", "80ms", "--sampler", "annealing"], "sampler"),
        (["--target-latency", "80ms", "--evaluator", "oracle"], "evaluator"),
        (["--target-latency", "80ms", "--objective", "pareto", "--sampler", "pg"], "pg"),
        (["--target-latency", "80ms", "--data", "npz:/nonexistent/data.npz"], "nonexistent"),
        (["--target-latency", "1ms"], "fastest"),
        (["--target-latency", "80ms", "--resume"], "--name"),
        (["--seed", "1"], "--target-latency is required"),
        (["--target-latency", "80ms", "--workers", "3"], "--backend ray"),
        (["--target-latency", "80ms", "--window", "wide"], "--window"),
        (["--resume", "--name", "nosuchrun"], "no run to resume"),
        (["--target-latency", "80ms", "--time-budget", "soon"], "time-budget"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, args, message):
    rc = main(
        [
            "search",
            *args,
            "--evaluator" if "--evaluator" not in args else "--seed",
            "zero-cost" if "--evaluator" not in args else "0",
            "--trials",
            "2",
            "--out-dir",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2
    lines = [line for line in err.splitlines() if line.startswith("nas: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert not list(tmp_path.iterdir()), "a refused search left a run directory behind"


def test_bad_labels_exit_2(tmp_path, capsys):
    import numpy as np

    path = tmp_path / "bad.npz"
    np.savez(
        path,
        x_train=np.zeros((20, 32, 32, 3), np.uint8),
        y_train=np.zeros(19, np.int64),
        x_test=np.zeros((4, 32, 32, 3), np.uint8),
        y_test=np.zeros(4, np.int64),
    )
    rc = main(
        [
            "search",
            "--target-latency",
            "80ms",
            "--data",
            f"npz:{path}",
            "--evaluator",
            "zero-cost",
            "--trials",
            "2",
            "--out-dir",
            str(tmp_path),
        ]
    )
    assert rc == 2
    assert capsys.readouterr().err.startswith("nas: error:")
