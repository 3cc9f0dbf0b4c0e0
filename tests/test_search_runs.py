"""The run directory under stress: a torn journal, a second process on a live run, Ctrl-C, a resume that must
not re-evaluate, the API's own checks of bad values, and the plot's labels."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import torch

from nas.cli import main
from nas.errors import NasError
from nas.search import SearchConfig, search
from nas.search import runs as run_files

torch.set_num_threads(1)

sys.path.insert(0, str(Path(__file__).parent))
from test_search import FakeEvaluator, Result, config  # noqa: E402


def journal_trials(run_dir: Path) -> list[optuna.trial.FrozenTrial]:
    """The study as Optuna's own file backend reads it (what optuna-dashboard sees)."""
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(run_dir / run_files.STUDY_FILE))
    )
    return optuna.load_study(study_name=run_files.STUDY_NAME, storage=storage).get_trials(deepcopy=False)


def check_consistent(run_dir: Path) -> list[run_files.TrialRecord]:
    """No duplicated or missing trial numbers, one record per finished trial, a readable journal."""
    records = run_files.load_records(run_dir)
    trials = journal_trials(run_dir)
    numbers = [t.number for t in trials]
    assert numbers == sorted(set(numbers)) == list(range(len(trials)))
    assert all(t.state.is_finished() for t in trials)
    assert [r.number for r in records] == numbers
    return records


# ---------------------------------------------------------------------------------------------- torn journal


@pytest.mark.parametrize("damage", ["torn tail", "appended onto a torn tail"])
def test_torn_journal_resumes_keeping_every_complete_record(tmp_path, damage):
    first = search(config(tmp_path, trials=4), FakeEvaluator())
    before = {r.number: r for r in run_files.load_records(first.run_dir)}
    journal = first.run_dir / run_files.STUDY_FILE
    data = journal.read_bytes()
    lines = data.count(b"\n")
    torn = data[:-25]  # a kill mid-write: the last log line loses its end
    if damage == "appended onto a torn tail":  # what the old reader let the next session do
        last = data.rstrip(b"\n").rsplit(b"\n", 1)[1]
        torn += last + b"\n"
    journal.write_bytes(torn)

    result = search(config(tmp_path, trials=6, resume=True), FakeEvaluator())
    note = next(n for n in result.notes if "damaged" in n)
    assert "dropped 1 torn" in note and f"kept {lines - 1} complete" in note
    backups = list(first.run_dir.glob("study.journal.damaged-*"))
    assert len(backups) == 1 and backups[0].read_bytes() == torn
    records = check_consistent(first.run_dir)
    kept = {r.number: r for r in records}
    for number, record in before.items():  # every record of the first session is still there, unchanged
        assert kept[number].to_dict() == record.to_dict()
    assert result.trials == 6 == sum(r.counts for r in records)
    # One resume is enough: the next one finds nothing to repair.
    again = search(config(tmp_path, trials=7, resume=True), FakeEvaluator())
    assert not any("damaged" in n for n in again.notes) and again.trials == 7


# ---------------------------------------------------------------------------------------------- concurrency

SLOW_SCRIPT = """
import sys, time
from pathlib import Path
from nas.search import SearchConfig, search

class Result:
    def __init__(self, accuracy):
        self.accuracy, self.seconds, self.extra = accuracy, 0.0, {}

def evaluator(arch, report=None):
    Path(sys.argv[2]).write_text("in a trial")
    time.sleep(0.4)
    return Result(arch.macs / 1e9)

search(SearchConfig(target_latency="80ms", evaluator="zero-cost", trials=int(sys.argv[3]), time_budget_s=None,
                    out_dir=sys.argv[1], name="shared", resume=sys.argv[4] == "resume"), evaluator=evaluator)
"""


def test_a_second_process_on_a_live_run_is_refused_and_the_first_loses_nothing(tmp_path, capsys):
    script, marker = tmp_path / "slow.py", tmp_path / "marker"
    script.write_text(SLOW_SCRIPT)
    out = tmp_path / "runs"
    search(config(tmp_path, name="shared", trials=2), FakeEvaluator())  # a run to resume
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    first = subprocess.Popen([sys.executable, str(script), str(out), str(marker), "8", "resume"], env=env)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), "the first process never started a trial"
        rc = main(["search", "--resume", "--name", "shared", "--out-dir", str(out), "--json"])
        err = capsys.readouterr().err.strip().splitlines()
        assert rc == 2 and len(err) == 1, err
        assert err[0].startswith("nas: error: run ") and f"in use by process {first.pid}" in err[0]
        assert first.wait(timeout=120) == 0
    finally:
        if first.poll() is None:
            first.kill()
    records = check_consistent(out / "shared")
    assert sum(r.counts for r in records) == 8 and all(r.status in ("complete", "rejected") for r in records)
    # The lock went with its process: the run resumes again.
    assert search(config(tmp_path, name="shared", trials=9, resume=True), FakeEvaluator()).trials == 9


# ---------------------------------------------------------------------------------------------- Ctrl-C


class Interrupting(FakeEvaluator):
    def __call__(self, arch, report=None):
        if len(self.seen) == 2:
            self.seen.append(arch)
            raise KeyboardInterrupt
        return super().__call__(arch, report)


def test_ctrl_c_records_the_trial_in_flight_and_writes_a_true_summary(tmp_path, capsys, monkeypatch):
    import nas.search.loop as loop

    monkeypatch.setattr(loop, "build_evaluator", lambda *a, **k: Interrupting())
    argv = ["search", "--target-latency", "80ms", "--evaluator", "zero-cost", "--trials", "5"]
    rc = main([*argv, "--out-dir", str(tmp_path), "--name", "int"])
    captured = capsys.readouterr()
    assert rc == 130
    assert "resume it with nas search --resume --name int" in captured.err
    run_dir = tmp_path / "int"
    records = check_consistent(run_dir)
    evaluated = [r for r in records if r.status != "rejected"]
    assert [r.status for r in evaluated] == ["complete", "complete", "interrupted"]
    summary = (run_dir / "summary.md").read_text()
    rejected = len(records) - 3
    counts = f"2 complete, 1 interrupted, {rejected} rejected" if rejected else "2 complete, 1 interrupted"
    assert f"- trials: {len(records)} ({counts}); 2 evaluated" in summary
    assert "stopped by: interrupted (Ctrl-C)" in summary and "## Best: trial" in summary
    # The interrupted trial does not count: a resume evaluates 3 more to reach 5.
    result = search(config(tmp_path, name="int", trials=5, resume=True, out_dir=str(tmp_path)), FakeEvaluator())
    assert result.trials == 5 and sum(r.status == "complete" for r in check_consistent(run_dir)) == 5


# ---------------------------------------------------------------------------------------------- reuse

TINY = """
name: tiny
stem:
  - {type: conv, out: 16, k: 3, s: 2, act: relu}
stages:
  - out: 24
    n: 2
    stride: 2
    op: mbconv
    kernel: [3, 5]
    expansion: [3, 6]
head:
  blocks:
    - {type: conv, out: 64, k: 1, s: 1, act: relu}
"""


def test_a_candidate_already_evaluated_is_reused_not_evaluated_again(tmp_path):
    space = tmp_path / "tiny.yaml"
    space.write_text(TINY)
    fake = FakeEvaluator()
    c = config(tmp_path, space=str(space), target_latency="1000ms", window=None, sampler="random", trials=4)
    result = search(c, fake)  # 4 architectures in the space: each evaluated once, duplicates reused
    assert len(fake.seen) == 4 == len({a.hash for a in fake.seen}) == result.trials
    records = check_consistent(result.run_dir)
    reused = [r for r in records if r.reused_from is not None]
    for r in reused:
        source = records[r.reused_from]
        assert r.arch_hash == source.arch_hash and r.accuracy == source.accuracy and not r.counts
    # A resume asking for more cannot find anything new: it stops and says so, evaluating nothing again.
    again = FakeEvaluator()
    more = search(SearchConfig(**{**c.to_dict(), "trials": 6, "resume": True}), again)
    assert again.seen == [] and more.trials == 4 and "already evaluated" in more.stopped


# ---------------------------------------------------------------------------------------------- API checks


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"seed": -1}, "--seed"),
        ({"seed": 2**40}, "--seed"),
        ({"trials": 0}, "--trials"),
        ({"trials": 2.5}, "--trials"),
        ({"resolution": 100_000}, "--resolution"),
        ({"workers": 0}, "--workers"),
        ({"window": "wide"}, "--window"),
        ({"window": -0.1}, "--window"),
        ({"time_budget_s": "soon"}, "--time-budget"),
        ({"time_budget_s": -5}, "--time-budget"),
        ({"evaluator_options": {"epochs": 0}}, "--epochs"),
        ({"evaluator_options": {"resolution": 4}}, "--proxy-resolution"),
        ({"target_latency": "80 parsecs"}, "80ms, '80 ms', 0.08s or 80"),
        ({"target_latency": "-5ms"}, "above 0"),
        ({"target_latency": "1e309ms"}, "not a finite number"),
        ({"target_latency": None}, "--target-latency is required"),
        ({"name": "../escape"}, "--name"),
        ({"name": "x" * 300}, "--name"),
    ],
)
def test_the_api_refuses_what_the_cli_refuses(tmp_path, changes, message):
    with pytest.raises(NasError, match=message.replace("(", r"\(").replace(".", r"\.")):
        search(config(tmp_path, **changes), FakeEvaluator())
    assert not (tmp_path / "runs").exists() or not list((tmp_path / "runs").iterdir())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target-latency", "80 parsecs"], "80ms, '80 ms', 0.08s or 80"),
        (["--target-latency", "-5ms"], "80ms, '80 ms', 0.08s or 80"),
        (["--target-latency=-5ms"], "above 0"),
        (["--target-latency", "1e309ms"], "not a finite number"),
        (["--target-latency", "80ms", "--seed", "-1"], "--seed must be an integer from 0"),
        (["--target-latency", "80ms", "--seed", "one"], "invalid int value"),
        (["--target-latency", "80ms", "--trials", "0"], "--trials"),
        (["--target-latency", "80ms", "--epochs", "0"], "--epochs"),
        (["--target-latency", "80ms", "--proxy-resolution", "2"], "--proxy-resolution"),
        (["--target-latency", "80ms", "--resolution", "100000"], "--resolution"),
    ],
)
def test_cli_bad_numbers_get_one_line(tmp_path, capsys, args, message):
    try:
        rc = main(["search", *args, "--evaluator", "zero-cost", "--out-dir", str(tmp_path)])
    except SystemExit as stop:  # argparse's own mistakes (a value that reads as an option, a non-integer)
        rc = stop.code
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1 and err[0].startswith("nas: error:") and message in err[0], err
    assert not list(tmp_path.iterdir())


def test_argparse_mistakes_exit_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["search", "--target-latency", "-5ms", "--out-dir", str(tmp_path)])
    assert stop.value.code == 2


# ---------------------------------------------------------------------------------------------- plot


def test_pareto_plot_shows_every_listed_baseline_with_labels_that_do_not_overlap(tmp_path):
    import matplotlib.pyplot as plt

    from nas.search.plots import LABEL_GID, pareto_figure

    result = search(config(tmp_path, trials=6, window=None, sampler="random"), FakeEvaluator())
    assert len(result.baselines) >= 10
    fig = pareto_figure(result.records, 80.0, result.baselines, "pixel", "estimated", result.metric)
    try:
        ax = fig.axes[0]
        lo, hi = ax.get_xlim()
        assert all(lo < ms < hi for _, ms in result.baselines)
        renderer = fig.canvas.get_renderer()
        labels = [t for t in ax.texts if t.get_gid() == LABEL_GID]
        assert sorted(t.get_text().strip() for t in labels) == sorted(name for name, _ in result.baselines)
        boxes = [t.get_window_extent(renderer) for t in labels]
        frame = ax.get_window_extent(renderer)
        for i, a in enumerate(boxes):
            assert frame.x0 <= a.x0 and a.x1 <= frame.x1 and frame.y0 <= a.y0 and a.y1 <= frame.y1
            assert not any(a.overlaps(b) for b in boxes[i + 1 :])
        summary = (result.run_dir / "summary.md").read_text()
        assert all(name in summary for name, _ in result.baselines)
    finally:
        plt.close(fig)


# ---------------------------------------------------------------------------------------------- soft reward


class Bigger(FakeEvaluator):
    """Accuracy that keeps growing with size: the soft reward then prefers a net over the target."""

    def __call__(self, arch, report=None):
        self.seen.append(arch)
        return Result(min(arch.macs / 2e7, 1.0))


def test_the_output_explains_a_best_over_the_target(tmp_path):
    from nas.search import advice, next_commands

    result = search(config(tmp_path, trials=12, window=None, sampler="random", seed=1), Bigger())
    best, lines = result.best, advice(result)
    assert best.latency_ms > 80, "the test needs a best over the target"
    assert lines[0] == "12 of 12 trials evaluated" and "too few to trust" in lines[1]
    over = 100 * (best.latency_ms / 80 - 1)
    assert any("the soft reward allows exceeding the target" in x and f"{over:.1f}% over 80 ms" in x for x in lines)
    under = run_files.best_under(result.records, 80.0)
    assert under is not None and any(f"at or under 80 ms is trial {under.number}" in x for x in lines)
    commands = [c for c, _ in next_commands(result)]
    assert commands[0].startswith("nas export ") and any(c.startswith("nas netadapt ") for c in commands)
    summary = (result.run_dir / "summary.md").read_text()
    assert "if LAT ≤ T else" not in summary and "soft: ACC·(LAT/80 ms)^-0.07 on both sides" in summary
    assert all(x in summary for x in lines) and "## Next" in summary


# ---------------------------------------------------------------------------------------------- evaluator seam


class Labelled(FakeEvaluator):
    """An evaluator that says how many trials suit it and what its number means."""

    default_trials = 3
    metric_label = "fake score (test)"


def test_the_evaluator_sets_the_default_trials_and_the_metric_label(tmp_path):
    fake = Labelled()
    result = search(config(tmp_path, trials=None), fake)
    assert result.trials == 3 == len(fake.seen) and result.config.trials == 3
    assert json.loads((result.run_dir / "config.json").read_text())["trials"] == 3
    assert "fake score (test)" in (result.run_dir / "summary.md").read_text() and result.metric == "fake score (test)"
    # Given --trials wins over the evaluator's default.
    assert search(config(tmp_path, name="u", trials=4), Labelled()).trials == 4
