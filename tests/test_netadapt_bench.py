"""The NetAdapt benchmarks (bench/netadapt_scoring.py, bench/netadapt_evidence.py) in their --smoke mode: same code
path as the full runs, tiny sizes. Each writes its JSON report with the fields docs/netadapt.md reads."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _setup(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "bench"))


def test_scoring_smoke(tmp_path):
    assert importlib.import_module("netadapt_scoring").main(["--smoke", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "scoring.json").read_text())
    assert report["smoke"] is True and report["records"]
    rec = report["records"][0]
    for rule in ("stale-bn", "adaptive-bn", "fine-tune", "adaptive-bn+fine-tune"):
        assert 0 <= rec[rule]["top1"] <= 1 and rec[rule]["loss"] > 0
    assert 0 <= rec["reference_test_top1"] <= 1
    rows = report["summary"]["rows"]
    assert {(r["rule"], r["by"]) for r in rows} >= {("adaptive-bn", "top-1"), ("fine-tune", "val loss")}
    # rerunning the same command continues: nothing is scored twice
    assert importlib.import_module("netadapt_scoring").main(["--smoke", "--out", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "scoring.json").read_text())
    assert len(again["records"]) == len(report["records"])


def test_evidence_smoke(tmp_path):
    assert importlib.import_module("netadapt_evidence").main(["--smoke", "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "evidence.json").read_text())
    assert report["smoke"] is True and report["start"]["seconds_per_epoch"] > 0
    (row,) = report["summary"]
    assert row["seeds"] == 2 and row["uniform_latency_ms"] <= row["netadapt_latency_ms"] + 1e-9
    for run in report["runs"].values():
        assert run["sgd_steps"] > 0 and 0 <= run["netadapt"]["test_top1"] <= 1 and 0 <= run["uniform"]["test_top1"] <= 1
    assert (tmp_path / "start.pt").is_file()


def test_evidence_processes_share_one_out(tmp_path):
    """Two processes with one --out, one seed each, side by side: the start is trained once, both runs land."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, str(ROOT / "bench" / "netadapt_evidence.py"), "--smoke", "--out", str(tmp_path)]
    procs = [subprocess.Popen([*cmd, "--seeds", str(seed)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for seed in (0, 1)]  # fmt: skip
    for proc in procs:
        output = proc.communicate(timeout=600)[0]
        assert proc.returncode == 0, output
    report = json.loads((tmp_path / "evidence.json").read_text())
    assert set(report["runs"]) == {"fraction0.9-seed0", "fraction0.9-seed1"}
    assert report["summary"][0]["seeds"] == 2 and "start" in report
    assert sum(key.startswith("total (") for key in report["wall_s"]) == 2
