"""`--backend ray`: the same trials as Ray Tune trials on a local Ray instance, into the same run directory."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from nas.search import SearchConfig, search
from nas.search import runs as run_files

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    temp = tempfile.mkdtemp(prefix="nasray", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    ray.init(num_cpus=2, include_dashboard=False, _temp_dir=temp, log_to_driver=False)
    yield ray
    ray.shutdown()
    shutil.rmtree(temp, ignore_errors=True)


def test_ray_backend_two_workers_loses_nothing(tmp_path, local_ray):
    """Two Ray workers on one run: no duplicated trial numbers, no lost records, a journal Optuna reads."""
    from test_search_runs import check_consistent

    config = SearchConfig(
        target_latency="80ms",
        device="pixel",
        space="mobilenetv3",
        evaluator="zero-cost",
        trials=3,
        time_budget_s=None,
        backend="ray",
        workers=2,
        out_dir=str(tmp_path),
        name="ray",
    )
    result = search(config)
    records = check_consistent(result.run_dir)
    evaluated = [r for r in records if r.status != "rejected"]
    assert len(evaluated) == result.trials == 3 == sum(r.counts for r in records)
    assert all(r.status == "complete" and 0 < r.accuracy < 1 for r in evaluated), evaluated
    assert all(abs(r.latency_ms / 80 - 1) <= 0.1 for r in evaluated)
    for name in ("config.json", "study.journal", "best.json", "pareto.json", "pareto.png", "summary.md"):
        assert (result.run_dir / name).is_file(), name
    assert json.loads((result.run_dir / "config.json").read_text())["backend"] == "ray"
    # The run continues locally (or on Ray again) from the same study.
    more = search(SearchConfig(**{**config.to_dict(), "trials": 4, "backend": "local", "workers": 1, "resume": True}))
    assert more.trials == 4 and len(check_consistent(result.run_dir)) >= 4


@pytest.mark.slow
def test_ray_backend_trains_with_asha(tmp_path, local_ray):
    """Proxy training on Ray workers with a partial reward per epoch; ASHA may stop trials (recorded pruned)."""
    config = SearchConfig(
        target_latency="80ms",
        device="pixel",
        evaluator="train",
        trials=4,
        time_budget_s=None,
        backend="ray",
        workers=2,
        out_dir=str(tmp_path),
        name="asha",
        evaluator_options={"epochs": 2, "batch_size": 256},
    )
    result = search(config)
    records = [r for r in run_files.load_records(result.run_dir) if r.status != "rejected"]
    assert len(records) == 4
    assert {r.status for r in records} <= {"complete", "pruned"}
    assert all(len(r.eval["history"]) == 2 for r in records if r.status == "complete")
