"""bench/supernet_fidelity.py in its --smoke mode (the full run trains 45 networks for hours): the whole code path,
a resumable JSON report with the fields docs/supernet.md reads."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def test_supernet_fidelity_smoke(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    bench = importlib.import_module("supernet_fidelity")
    monkeypatch.setattr(sys, "argv", ["supernet_fidelity.py", "--smoke"])
    assert bench.main(["--smoke", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "fidelity.json").read_text())
    assert result["smoke"] is True and "--smoke" in result["command"]
    units = result["units"]
    assert [u["group"] for u in units].count("spread") == 3
    for u in units:
        assert {"supernet", "predictor", "proxy", "synflow", "naswot", "flops", "standalone_test"} <= set(u)
        assert 0 <= u["supernet"] <= 1 and u["flops"] > 0
    spread = result["kendall_tau"]["spread"]
    assert set(spread) == {"supernet", "proxy", "synflow", "naswot", "flops", "predictor"}
    assert all(v["n"] == 3 and len(v["ci95"]) == 2 for v in spread.values())
    assert (tmp_path / "fidelity.png").read_bytes()[:4] == b"\x89PNG"
    # A rerun finds every unit done and trains nothing again.
    before = {u["name"]: u["seconds"] for u in units}
    assert bench.main(["--smoke", "--out", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "fidelity.json").read_text())
    assert {u["name"]: u["seconds"] for u in again["units"]} == before


def test_supernet_fidelity_shards_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two --shard runs split the networks between them; the run without --shard merges them and measures nothing
    again."""
    torch.set_num_threads(1)
    monkeypatch.chdir(ROOT)
    monkeypatch.syspath_prepend(str(ROOT / "bench"))
    bench = importlib.import_module("supernet_fidelity")
    for k in (0, 1):
        assert bench.main(["--smoke", "--out", str(tmp_path), "--shard", f"{k}/2"]) == 0
    shards = [json.loads((tmp_path / f"fidelity.shard-{k}-of-2.json").read_text()) for k in (0, 1)]
    assert shards[0] and shards[1] and not set(shards[0]) & set(shards[1])
    assert not (tmp_path / "fidelity.png").exists()
    assert bench.main(["--smoke", "--out", str(tmp_path)]) == 0
    units = json.loads((tmp_path / "fidelity.json").read_text())["units"]
    measured = {**shards[0], **shards[1]}
    assert {u["name"] for u in units} == set(measured)
    assert all(u["seconds"] == measured[u["name"]]["seconds"] for u in units)


def test_visiting_order_spreads_any_prefix() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    bench = importlib.import_module("supernet_fidelity")
    order = bench.visiting_order(45)
    assert sorted(order) == list(range(45))
    assert order[:4] == [0, 32, 16, 8] and max(order[:8]) >= 40
