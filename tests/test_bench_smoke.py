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


@needs_data
def test_evidence_search_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["evidence_search.py", "--smoke"])
    assert script("evidence_search").main(["--smoke", "--data", DATA, "--out", str(tmp_path)]) == 0
    result = read(tmp_path / "results.json")
    check_provenance(result)
    assert set(result["cells"]) == {"pixel-50ms"}
    cell = result["cells"]["pixel-50ms"]
    searched = cell["search"]
    assert abs(searched["latency_ms"] / 50 - 1) <= 0.1 + 1e-9  # the soft reward's window
    assert searched["trials"] == 2 and searched["arch"]["resolution"] == 224
    nets = cell["networks"]
    assert set(nets) == {"searched", "mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large"}
    for name, net in nets.items():
        assert set(net["runs"]) == {"0", "1"}, name
        top1 = net["test_top1"]
        assert top1["n"] == 2 and 0 <= top1["mean"] <= 1 and top1["std"] is not None
        if name != "searched":
            assert net["reachable"] and 0.1 <= net["width"] <= 4.0
            assert net["latency_ms"] <= searched["latency_ms"]  # never slower than the searched net
    margin = cell["margin"]
    best = max((v["test_top1"]["mean"] for k, v in nets.items() if k != "searched"))
    assert math.isclose(margin["points"], round(100 * (nets["searched"]["test_top1"]["mean"] - best), 2), abs_tol=0.01)
    assert margin["goal_met"] == (margin["points"] >= 2.0)
    assert is_png(result["plot"])
    row = report().search(result).splitlines()[2]
    assert f"{margin['points']:+.1f} ± " in row and f"({margin['best_baseline']})" in row
    assert f"{searched['latency_ms']:.2f} ms" in row
    # Rerunning resumes: nothing left to do, the same figures come back.
    assert script("evidence_search").main(["--smoke", "--data", DATA, "--out", str(tmp_path)]) == 0
    again = read(tmp_path / "results.json")
    assert again["cells"]["pixel-50ms"]["networks"]["searched"]["runs"] == nets["searched"]["runs"]


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
    assert "is a smoke run" in out and out.count("not yet run") == 5


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
