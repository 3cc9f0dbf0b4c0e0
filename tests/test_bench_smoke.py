"""The issue-6 evidence scripts (bench/evidence_*.py) in their --smoke mode: the full-size runs take hours and
are not part of CI, so this checks that each one runs its whole code path and writes a JSON report with the
fields docs/results.md reads, with sane values. Runs in-process (one import of torch), one thread."""

from __future__ import annotations

import importlib
import itertools
import math
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
NPZ = ROOT / ".." / "shared" / "data" / "cifar10_subset.npz"
DATA = f"npz:{NPZ.resolve()}"
needs_data = pytest.mark.skipif(not NPZ.exists(), reason="../shared/data/cifar10_subset.npz is absent")


@pytest.fixture(autouse=True)
def _setup(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    monkeypatch.chdir(ROOT)  # the scripts' defaults (latency_tables/cpu.json) are relative to the repo root
    monkeypatch.syspath_prepend(str(ROOT / "bench"))


def script(name: str):  # a bench module
    return importlib.import_module(name)


def report():  # bench/evidence_report.py, which renders docs/results.md's tables
    return script("evidence_report")


def read(path: Path) -> dict:
    import json

    assert path.is_file(), f"{path} was not written"
    return json.loads(path.read_text())


def is_png(path: str | Path) -> bool:
    return Path(path).is_file() and Path(path).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def check_provenance(result: dict, flag: str = "--smoke") -> None:
    assert result["schema"] == "nas.evidence/1"
    assert result["smoke"] is True
    assert flag in result["command"]
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["platform"]
    assert result["date"][:2] == "20"
    assert {"nas", "torch", "onnxruntime"} <= set(result["versions"])
    assert result["wall_s"]["total (this invocation)"] > 0


def test_evidence_latency_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["evidence_latency.py", "--smoke", "--build"])
    assert script("evidence_latency").main(["--smoke", "--build", "--out", str(tmp_path)]) == 0
    result = read(tmp_path / "latency.json")
    check_provenance(result)
    build = result["build"]
    assert build["ops"] == 12 and build["summary"]["timed"] == 12 and build["wall_s"] > 0
    assert (tmp_path / "cpu-table.json").is_file()
    v = result["cpu_validate"]
    assert v["random_networks"] == 5 and v["rounds"] == 2
    assert v["reported"] == "corrected_holdout" and v["samples"] == 3  # 2 of 5 fit the correction
    assert 0 <= v["mape"] < 1 and -1 <= v["kendall_tau"] <= 1
    assert all(n["measured_ms"] > 0 and n["predicted_ms"] > 0 for n in v["networks"])
    assert is_png(v["plot"])
    px = result["pixel"]
    assert 0 < px["pooled_cv_mape"] < 0.5 and px["schemes"] and all(s["n"] > 0 for s in px["schemes"])
    assert is_png(px["plot"])
    # The committed table is never touched by a run that did not build its own.
    assert "correction_saved_to" not in v
    md = report().latency(result)  # the page's table shows these figures
    mapes = (v["raw"]["mape"], v["mape"], px["pooled_cv_mape"])
    assert "| MAPE | " + " | ".join(f"{100 * m:.1f}%" for m in mapes) + " |" in md


def test_evidence_search_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 15, item 1 (round 2) on synthetic data with a tiny supernet: every column of the table."""
    from nas.arch import Arch
    from nas.training import LR_GRID

    monkeypatch.setattr(sys, "argv", ["evidence_search.py", "--smoke"])
    bench = script("evidence_search")
    assert bench.main(["--smoke", "--out", str(tmp_path)]) == 0
    result = read(tmp_path / "results.json")
    assert result["schema"] == "nas.evidence/1" and result["smoke"] is True and result["round"] == 2
    assert "--smoke" in result["command"] and {"nas", "torch"} <= set(result["versions"])
    assert result["recipe"]["trainer"].startswith("nas.training.train_source") and result["recipe"]["seeds"] == 2
    assert set(result["cells"]) == {"pixel-50ms"}
    cell = result["cells"]["pixel-50ms"]
    assert set(cell["searches"]) == {"supernet", "proxy"}
    assert cell["searches"]["supernet"]["evaluator"].startswith("supernet:")
    assert cell["searches"]["proxy"]["evaluator"] == "train"
    nets = cell["networks"]
    assert set(nets) == {"supernet", "scratch", "proxy", *bench.BASELINES}
    found = cell["searches"]["supernet"]
    assert nets["supernet"]["arch"] == nets["scratch"]["arch"] == found["arch"]  # (a) and (b): one architecture
    assert nets["proxy"]["arch"] == cell["searches"]["proxy"]["arch"]
    for family in bench.BASELINES:
        net = nets[family]
        assert net["reachable"] and 0.1 <= net["width"] <= 4.0
        assert net["latency_ms"] <= found["latency_ms"]  # never slower than (a)
        assert Arch.from_dict(net["arch"]).name.startswith(family)
    # Every from-scratch network: train_source with lr auto, both seeds, test top-1 mean ± SE.
    data = script("evidence_search")._data(bench.SMOKE_DATA)
    for name in ("scratch", "proxy", *bench.BASELINES):
        arch = Arch.from_dict(nets[name]["arch"]).replace(resolution=data.image_size, num_classes=data.num_classes)
        assert nets[name]["training"] == arch.hash, name
        run = result["trainings"][arch.hash]
        assert run["lr"] in LR_GRID and set(run["lr_search"]) == {f"{r:g}" for r in LR_GRID}
        assert set(run["seed_values"]) == {"0", "1"}
        assert nets[name]["test_top1"]["values"] == list(run["seed_values"].values())
        assert (tmp_path / "trainings" / arch.hash / "seed-1" / "weights.pt").is_file()
        saved = read(tmp_path / "trainings" / arch.hash / "result.json")
        assert saved["test_top1"]["values"] == nets[name]["test_top1"]["values"]
    # (a): one fine-tune per seed of the extracted subnet, each with its own seed.
    runs = nets["supernet"]["runs"]
    assert set(runs) == {"0", "1"} and [runs[s]["seed"] for s in ("0", "1")] == [0, 1]
    for seed, run in runs.items():
        assert 0 <= run["test_top1"] <= 1 and run["finetuned_val_top1"] is not None
        history = read(tmp_path / "finetunes" / "pixel-50ms" / f"seed-{seed}" / "history.json")
        assert history["finetune"]["seed"] == int(seed) and history["kind"] == "supernet-extract"
    tops = [runs[s]["test_top1"] for s in ("0", "1")]
    assert math.isclose(nets["supernet"]["test_top1"]["mean"], sum(tops) / 2)
    # Margins over the best baseline, with the standard error of a difference of two means.
    best = max(bench.BASELINES, key=lambda k: nets[k]["test_top1"]["mean"])
    for name in bench.SEARCHED:
        m, ours, theirs = cell["margins"][name], nets[name]["test_top1"], nets[best]["test_top1"]
        assert nets[m["best_baseline"]]["test_top1"]["mean"] == theirs["mean"]
        assert math.isclose(m["points"], round(100 * (ours["mean"] - theirs["mean"]), 2), abs_tol=0.011)
        assert math.isclose(m["se_points"], round(100 * math.hypot(ours["se"], theirs["se"]), 2), abs_tol=0.011)
        assert m["goal_met"] == ((m["points"] >= 2.0) if name in ("supernet", "scratch") else None)
    assert is_png(result["plot"])
    wall = result["wall_s"]
    assert wall["lr selection (sum)"] > 0 and wall["seed trainings (sum)"] > 0 and wall["fine-tunes (sum)"] > 0
    assert wall["supernet searches (sum)"] > 0 and wall["proxy searches (sum)"] > 0
    assert len(result["invocations"]) == 1 and result["invocations"][0]["load_average_at_end"]
    # The page's table shows these figures.
    md = report().search2(result)
    a = cell["margins"]["supernet"]
    row = next(line for line in md.splitlines() if "(a) supernet search" in line)
    assert f"{a['points']:+.1f} ± {a['se_points']:.1f}" in row and f"{found['latency_ms']:.2f}" in row
    assert ("**not met**" in row) == (not a["goal_met"])
    assert sum("| MobileNetV3-Small |" in line or "| MnasNet-A1 |" in line for line in md.splitlines()) == 2
    assert "lr selection (sum)" in md and "(c) (mobilenet_v3 style)" in md
    # Rerunning resumes: nothing left to do, the same figures come back.
    assert bench.main(["--smoke", "--out", str(tmp_path)]) == 0
    again = read(tmp_path / "results.json")
    assert again["trainings"] == result["trainings"] and again["cells"]["pixel-50ms"]["margins"] == cell["margins"]
    assert len(again["invocations"]) == 2 and again["invocations"][1]["wall_s"]["total"] < 30


def test_evidence_search_margins_over_the_best_baseline() -> None:
    """(a) from its fine-tune seeds, the others from their trainings; margin ± SE of a difference of means."""
    bench = script("evidence_search")

    def stats(mean: float, se: float | None, n: int = 3) -> dict:
        return {"mean": mean, "se": se, "n": n, "values": []}

    trainings = {"b": {"test_top1": stats(0.60, 0.01)}, "c": {"test_top1": stats(0.50, 0.02)},
                 "v2": {"test_top1": stats(0.55, 0.004)}, "v3": {"test_top1": stats(0.58, 0.003)},
                 "small": {"test_top1": stats(0.59, None, 1)}}
    cell = {"networks": {
        "supernet": {"runs": {"0": {"test_top1": 0.62}, "1": {"test_top1": 0.64}, "2": {"test_top1": 0.60}}},
        "scratch": {"training": "b"}, "proxy": {"training": "c"},
        "mobilenet_v2": {"training": "v2"}, "mobilenet_v3_large": {"training": "v3"},
        "mobilenet_v3_small": {"training": "small"}, "mnasnet_a1": {"arch": None, "reachable": False},
    }}
    bench.summarise(cell, trainings)
    m = cell["margins"]
    assert {k: v["best_baseline"] for k, v in m.items()} == dict.fromkeys(bench.SEARCHED, "mobilenet_v3_small")
    assert math.isclose(cell["networks"]["supernet"]["test_top1"]["mean"], 0.62)
    assert math.isclose(cell["networks"]["supernet"]["test_top1"]["se"], 0.02 / math.sqrt(3))
    assert m["supernet"]["points"] == 3.0 and m["supernet"]["se_points"] == round(2 / math.sqrt(3), 2)
    assert m["supernet"]["goal_met"] is True
    assert m["scratch"]["points"] == 1.0 and m["scratch"]["se_points"] == 1.0 and m["scratch"]["goal_met"] is False
    assert m["proxy"]["points"] == -9.0 and m["proxy"]["goal_met"] is None  # (c) has no goal


@pytest.mark.slow
def test_evidence_search_cpu_cell_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cpu cell: its table validated and recorded, the baselines' missing ops timed into the table in the
    output directory, never into latency_tables/ (a few minutes: the ops are timed with the table's protocol)."""
    before = (ROOT / "latency_tables" / "cpu.json").read_bytes()
    monkeypatch.setattr(sys, "argv", ["evidence_search.py", "--smoke", "--devices", "cpu"])
    bench = script("evidence_search")
    assert bench.main(["--smoke", "--devices", "cpu", "--out", str(tmp_path)]) == 0
    result = read(tmp_path / "results.json")
    table = result["tables"]["cpu"]
    assert table["path"] == str((tmp_path / "cpu-table.json").resolve())
    assert table["validate"]["samples"] >= 2 and table["validate"]["table"] == table["path"]
    cell = result["cells"]["cpu-4.5ms"]
    assert cell["searches"]["supernet"]["config"]["device"] == table["path"]
    assert sum(cell["networks"][f]["ops_timed"] for f in bench.BASELINES) > 0
    assert all(cell["networks"][f]["latency_ms"] <= cell["networks"]["supernet"]["latency_ms"] for f in bench.BASELINES)
    assert set(cell["margins"]) == set(bench.SEARCHED)
    assert "CPU table copied from latency_tables/cpu.json (smoke)" in report().search2(result)
    assert (ROOT / "latency_tables" / "cpu.json").read_bytes() == before


def test_evidence_search_plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """--plan times a few steps and adds the phases up (smoke data, one step per network)."""
    monkeypatch.setattr(sys, "argv", ["evidence_search.py", "--plan", "--smoke"])
    assert script("evidence_search").main(["--plan", "--smoke", "--plan-steps", "1", "--out", str(tmp_path)]) == 0
    plan = read(tmp_path / "plan.json")
    (cell,) = plan["measured_per_network"].values()
    assert len(cell) == 5 and all(t["step_s"] > 0 and t["step_cpu_s"] > 0 for t in cell.values())
    est = plan["estimated_minutes"]
    for label, parts in est["training"].items():
        pooled = parts["lr selection"] + parts["seeds"] + parts["fine-tunes"] + parts["proxy searches"]
        assert math.isclose(parts["pool, one core (sum)"], pooled, abs_tol=0.3)
        other = sum(est["other phases (estimated)"].values())
        assert math.isclose(est["total"][label], parts["pool with --jobs"] + other, abs_tol=0.2)


def test_evidence_report_reads_round_one() -> None:
    """Round 1's committed report (issue 6) still renders."""
    result = read(ROOT / "bench" / "results" / "evidence-search" / "results.json")
    md = report().search(result)
    for key, cell in result["cells"].items():
        row = next(line for line in md.splitlines() if line.startswith(f"| {cell['device']}")
                   and f"| {cell['target_ms']:g} ms |" in line)
        assert f"{cell['margin']['points']:+.1f} ± " in row, key


@needs_data
def test_recipe_sensitivity_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["recipe_sensitivity.py", "--smoke"])
    argv = ["--smoke", "--data", DATA, "--out", str(tmp_path), "--lrs", "0.05", "0.2", "--jobs", "1"]
    assert script("recipe_sensitivity").main([*argv, "--searched", str(tmp_path / "none.json")]) == 0
    result = read(tmp_path / "recipe.json")
    check_provenance(result)
    assert set(result["test_top1"]) == {"mobilenet_v2", "mobilenet_v3_large"}
    assert all(set(by_lr) == {"0.05", "0.2"} for by_lr in result["test_top1"].values())
    assert {run["key"][1] for run in result["runs"]} == {0.05, 0.2}
    md = report().recipe(result)
    v2 = result["test_top1"]["mobilenet_v2"]
    assert f"| mobilenet_v2 | {100 * v2['0.05']:.1f}% | {100 * v2['0.2']:.1f}% |" in md


def test_width_at_latency_is_the_widest_within_the_target() -> None:
    from nas import zoo
    from nas.latency import load_table, predict

    table = load_table("pixel")
    found = script("evidence_search").width_at_latency("mobilenet_v2", 40.0, table, tol=0.05)
    assert found["reachable"] and found["latency_ms"] <= 40.0
    wider = zoo.get("mobilenet_v2", width=found["width"] + 0.05, resolution=224, num_classes=1000)
    assert predict(wider, table).latency_ms > 40.0
    assert not script("evidence_search").width_at_latency("mobilenet_v2", 1.0, table)["reachable"]


@needs_data
def test_evidence_efficiency_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["evidence_efficiency.py", "--smoke"])
    assert script("evidence_efficiency").main(["--smoke", "--data", DATA, "--out", str(tmp_path)]) == 0
    result = read(tmp_path / "efficiency.json")
    check_provenance(result)
    assert len(result["runs"]) == 8  # 4 samplers × 2 seeds
    for run in result["runs"].values():
        curve = run["best_reward"]
        assert len(curve) == 3 == run["evaluated"]
        assert all(a <= b for a, b in itertools.pairwise(curve)) and 0 < curve[-1] < 1
        assert run["candidates_drawn"][-1] == 3 + run["screened_out"]
    assert set(result["summary"]) == {"tpe", "nsga2", "pg", "random"}
    for agg in result["summary"].values():
        assert agg["seeds"] == 2 and agg["final"]["n"] == 2 and 0 < agg["final"]["mean"] < 1
    assert is_png(result["plot"])
    md = report().efficiency(result)
    assert len(md.splitlines()) == 2 + 4
    tpe = result["summary"]["tpe"]["best_after"]["1"]
    assert f"| tpe | 2 | {tpe['mean']:.4f} ± {tpe['std']:.4f} |" in md


def test_efficiency_curve_counts_evaluations_only() -> None:
    """A sampler that proposes an architecture it has seen reuses that evaluation: the curve's x axis (evaluated
    trials) skips it, as it skips candidates screened out on latency; both count as drawn."""
    from nas.search.runs import TrialRecord

    def rec(number: int, status: str, reward: float | None, reused_from: int | None = None) -> TrialRecord:
        return TrialRecord(number=number, status=status, params={}, arch=None, reward=reward, accuracy=reward,
                           latency_ms=1.0, reused_from=reused_from)

    records = [rec(0, "complete", 0.3), rec(1, "rejected", 0.0), rec(2, "complete", 0.3, reused_from=0),
               rec(3, "complete", 0.5), rec(4, "complete", 0.5, reused_from=3)]
    c = script("evidence_efficiency").curve(records)
    assert c == {"best_reward": [0.3, 0.5], "candidates_drawn": [1, 4]}


@needs_data
def test_evidence_netadapt_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["evidence_netadapt.py", "--smoke"])
    assert script("evidence_netadapt").main(["--smoke", "--data", DATA, "--out", str(tmp_path)]) == 0
    result = read(tmp_path / "netadapt.json")
    check_provenance(result)
    (row,) = result["summary"]
    assert row["fraction"] == 0.85
    assert row["netadapt_latency_ms"] <= row["target_ms"] + 1e-6
    assert row["width_latency_ms"] <= row["netadapt_latency_ms"] + 1e-6
    assert 0 <= row["netadapt_test_top1"]["mean"] <= 1 and 0 <= row["width_test_top1"]["mean"] <= 1
    assert (tmp_path / "fraction0.85-seed0" / "report.json").is_file()
    assert is_png(result["plot"])
    md = report().netadapt(result)
    assert f"| {row['netadapt_minus_width_points']:+.1f} ± 0.0 |" in md and md.count("\n") == 2  # one seed


def test_evidence_report_refuses_smoke_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from nas.io import write_json

    (tmp_path / "evidence-search").mkdir()
    write_json(tmp_path / "evidence-search" / "results.json", {"smoke": True, "cells": {}})
    assert report().main(["--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "is a smoke run" in out and out.count("not yet run") == len(report().SECTIONS) - 1


def _fidelity_report() -> dict:
    def unit(group: str, ms: float, standalone_s: float) -> dict:
        return {"group": group, "latency_ms": ms, "seconds": {"standalone": standalone_s, "proxy": 20.0}}

    stat = {"tau": 0.4567, "ci95": [0.1234, 0.789], "n": 30}
    return {
        "kendall_tau": {
            "spread": {"proxy": {**stat, "tau": -0.0851}, "mystery": stat, "supernet": stat},
            "band": {"supernet": {"tau": 0.2, "ci95": [-0.5, 0.61], "n": 15}},
        },
        "standalone_recipe": {"epochs": 5, "lr": 0.1, "batch_size": 128, "seed": 0},
        "units": [unit("spread", 30.0, 100.0), unit("spread", 150.0, 300.0), unit("band", 79.0, 200.0)],
        "data": "npz:x.npz", "device": "pixel", "target_ms": 80.0,
    }


def test_evidence_report_renders_fidelity() -> None:
    md = report().fidelity(_fidelity_report())
    assert "5 epochs at peak lr 0.1" in md and "2 spread over predicted pixel latency (30.0–150.0 ms)" in md
    assert "median of 200.0 s" in md  # the middle of 100, 300, 200
    rows = [line for line in md.splitlines() if line.startswith("| ") and "estimator" not in line]
    assert [r.split(" | ")[0] for r in rows] == ["| supernet read", "| one-epoch proxy (the search's default)",
                                                 "| mystery"]  # readable names in a fixed order, unknown kept
    assert rows[0].startswith("| supernet read | 0.46 (30) | 0.12 – 0.79 | 0.20 (15) | -0.50 – 0.61 |")
    assert "| -0.09 (30) | 0.12 – 0.79 | — | — | 20.0 s |" in rows[1]


def _netadapt2_report() -> dict:
    def row(fraction: float, na: float, uni: float, goal: float | None, met: bool | None, se: float) -> dict:
        return {"fraction": fraction, "seeds": 3, "netadapt_latency_ms": 38.84, "uniform_latency_ms": 30.66,
                "uniform_widths": [0.55], "netadapt_test_top1": {"mean": na, "se": se},
                "uniform_test_top1": {"mean": uni, "se": 0.675}, "difference_points": {"mean": na - uni, "se": se},
                "goal_points": goal, "goal_met": met, "netadapt_wall_s": 963.4, "uniform_wall_s": 306.4}

    return {
        "summary": [row(0.5, 60.7633, 59.59, -0.5, True, 0.3075), row(0.25, 48.9367, 55.1933, 1.5, False, 0.35),
                    row(0.75, 50.0, 49.0, None, None, float("nan"))],
        "runs": {"a": {"fraction": 0.5, "target_ms": 38.862, "sgd_steps": 1250}},
        "start": {"epochs": 30, "latency_ms": 77.72, "test_top1": 0.6327, "val_top1": 0.6305, "wall_s": 1593.4},
        "settings": {"width": 1.0, "start_lr": 0.05, "device": "pixel", "score": "adaptive-bn", "step": 0.05,
                     "long_epochs": 10},
        "data": "npz:x.npz",
        "wall_s": {"total (fractions 0.5, seeds 0 1 2)": 5422.8},
    }


def test_evidence_report_renders_netadapt2_in_points() -> None:
    md = report().netadapt2(_netadapt2_report())
    assert "test top-1 63.3% (validation 63.0%)" in md and "same number of SGD steps (1250)" in md
    met, missed, no_goal = md.splitlines()[-3:]
    # The summary's top-1s are points already: rendered as they stand, not multiplied by 100 again.
    assert met.startswith("| 0.5 (38.9 ms) | 38.8 ms, 60.8 ± 0.3 | ×0.55, 30.7 ms, 59.6 ± 0.7 | +1.2 ± 0.3 |")
    assert "| ≥ -0.5: met | 3 | 963 s / 306 s |" in met
    assert missed.startswith("| 0.25 | ") and "| -6.3 ± 0.3 | ≥ +1.5: **missed** |" in missed
    assert "38.8 ms, 50.0 | ×0.55, 30.7 ms, 49.0 ± 0.7 | +1.0 | — |" in no_goal  # one seed: no error to show


def test_evidence_report_efficiency_checkpoints_follow_the_data() -> None:
    def agg(keys: list[int]) -> dict:
        return {"seeds": 5, "screened_out_mean": 1.0, "drawn_mean": 2000.0, "wall_s_mean": 10.0,
                "best_after": {str(n): {"mean": n / 1000, "std": 0.001} for n in keys}}

    r = {"summary": {"tpe": agg([1, 5, 10, 300, 1000]), "evolution": agg([1, 10, 50])},
         "settings": {"trials": 1000, "evaluator": "supernet-predictor:DIR"}}
    md = report().efficiency(r)
    header, _, tpe, evolution = md.splitlines()
    assert [c for c in header.split(" | ") if c.startswith("best after")] == [
        "best after 1", "best after 10", "best after 50", "best after 1000"]
    assert tpe == "| tpe | 5 | 0.0010 ± 0.0010 | 0.0100 ± 0.0010 | — | 1.0000 ± 0.0010 | 1.0 | 2000.0 | 10 s |"
    assert evolution.startswith("| evolution | 5 | 0.0010 ± 0.0010 | 0.0100 ± 0.0010 | 0.0500 ± 0.0010 | — |")
    cost = report().cost({"efficiency2": r, "netadapt2": _netadapt2_report(), "fidelity": _fidelity_report()})
    assert "| supernet-predictor search, 1000 evaluated trials, evolution | 10 s |" in cost
    assert "| whole `netadapt2` script: fractions 0.5, seeds 0 1 2 | 5423 s |" in cost
    assert "| estimator fidelity: stand-alone training, summed over 3 architectures | 600 s |" in cost
    assert "`fidelity` script" not in cost


def test_evidence_report_updates_only_between_markers(tmp_path: Path) -> None:
    names = [*report().SECTIONS, "cost"]
    doc = tmp_path / "results.md"
    prose = [f"Prose about {name}, kept as written." for name in names]
    doc.write_text(
        "\n".join(
            f"{p}\n<!-- evidence_report:{n} -->\nold\n<!-- /evidence_report:{n} -->"
            for p, n in zip(prose, names, strict=True)
        )
    )
    assert report().main(["--results", str(tmp_path / "none"), "--update", str(doc)]) == 0
    text = doc.read_text()
    assert "old" not in text and all(p in text for p in prose)
    assert text.count("not yet run") == len(names) - 1 and "| what | wall time |" in text
    # A page without the markers of a report not yet run is updated all the same (round 2 before it ran).
    doc.write_text("<!-- evidence_report:cost -->\nold\n<!-- /evidence_report:cost -->")
    assert report().main(["--results", str(tmp_path / "none"), "--update", str(doc)]) == 0
    assert "| what | wall time |" in doc.read_text()
    doc.write_text("no markers here")
    with pytest.raises(SystemExit, match="markers"):
        report().main(["--results", str(tmp_path), "--update", str(doc)])


@pytest.mark.slow
def test_cpu_baseline_ops_are_timed_into_a_copy(tmp_path: Path) -> None:
    """The cpu branch of evidence_search: a baseline width's missing ops are timed into the copy (~30 s)."""
    import shutil

    from nas.latency import load_table, missing_ops

    copy = tmp_path / "cpu-table.json"
    shutil.copyfile(ROOT / "latency_tables" / "cpu.json", copy)
    before = (ROOT / "latency_tables" / "cpu.json").read_bytes()
    table = load_table(str(copy))
    found = script("evidence_search").width_at_latency("mobilenet_v3_small", 3.0, table, tol=0.5)
    assert found["reachable"] and found["ops_timed"] > 0 and found["latency_ms"] <= 3.0
    from nas import zoo

    arch = zoo.get("mobilenet_v3_small", width=found["width"], resolution=224, num_classes=1000)
    assert not missing_ops(arch, load_table(str(copy)))
    assert (ROOT / "latency_tables" / "cpu.json").read_bytes() == before
