"""Real (tiny) builds on this machine: a build interrupted and resumed, validate on a tiny space, and the
export-ops → time elsewhere → import round trip with timings made here."""

from __future__ import annotations

import csv
import json
import random
import time
from pathlib import Path

import pytest

from nas.arch import Arch, Conv, Head, InvertedResidual
from nas.cli import main
from nas.latency import arch_ops, load_table, predict
from nas.latency import build as build_mod
from nas.latency import measure as measure_mod
from nas.latency.build import build_table
from nas.latency.items import arch_items, space_items
from nas.latency.measure import Protocol
from nas.latency.table import STAT_FIELDS

TINY_SPACE = """
name: tiny
stem:
  - {type: conv, out: 8, k: 3, s: 2, act: relu}
stages:
  - out: 16
    n: 1
    stride: 2
    op: mbconv
    kernel: [3, 5]
    expansion: [3, 6]
    se: [0]
    act: [relu]
    layers: [0]
    width: [1.0]
head:
  blocks: []
"""
QUICK = Protocol(warmup=2, runs=3, min_repeats=3, max_repeats=3, rounds=1, warmup_s=0.05, passes=0)
INTERLEAVED = Protocol(warmup=2, runs=3, rounds=1, warmup_s=0.05, passes=4)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny space's table (chunks of one op), built with one interruption in the second chunk and then resumed.
    The machine is shared while tests run: the tests that time allow a busy machine; refusal has its own test."""
    root = tmp_path_factory.mktemp("latency")
    space = root / "tiny.yaml"
    space.write_text(TINY_SPACE)
    items = space_items(str(space), 32)
    out = root / "tiny.json"
    real = measure_mod.run_worker
    measured: list[list[str]] = []
    calls = [0]

    def interrupted(items, **kw):
        calls[0] += 1
        if calls[0] == 2:
            raise KeyboardInterrupt
        for msg in real(items, **kw):
            measured[-1].append(msg["id"])
            yield msg

    def counting(items, **kw):
        for msg in real(items, **kw):
            measured[-1].append(msg["id"])
            yield msg

    build = dict(device="tiny", items=items, out=out, protocol=QUICK, progress=False, chunk=1, allow_busy=True)
    measure_mod.run_worker = interrupted
    try:
        measured.append([])
        with pytest.raises(KeyboardInterrupt):
            build_table(**build)
        assert not out.exists()
        checkpoint = json.loads((build_mod.build_dir(out) / "checkpoint.json").read_text())
        measure_mod.run_worker = counting
        measured.append([])
        table, summary = build_table(**build)
    finally:
        measure_mod.run_worker = real
    return {
        "space": space,
        "items": items,
        "out": out,
        "table": table,
        "summary": summary,
        "measured": measured,
        "checkpoint": checkpoint,
    }


def test_resume_times_only_what_was_left(tiny):
    first, second = tiny["measured"]
    assert len(first) == 1 and list(tiny["checkpoint"]["repeats"]) == first
    assert sorted(first + second) == sorted(tiny["items"])  # nothing twice, nothing lost
    assert not build_mod.build_dir(tiny["out"]).exists()


def test_table_is_complete_with_statistics(tiny):
    table = load_table(tiny["out"])
    assert table.kind == "measured" and table.runtime == "onnxruntime-cpu-1thread" and table.resolutions == [32]
    assert set(table.ops) | set(table.fixed) == set(tiny["items"])
    for entry in [*table.ops.values(), *table.fixed.values()]:
        assert all(f in entry for f in STAT_FIELDS) and entry["count"] == 9
        assert 0 < entry["min"] <= entry["median"]
    assert table.meta["protocol"]["clock"] == "thread" and table.meta["protocol"]["warmup"] == 2
    assert {"onnxruntime", "torch"} <= set(table.meta["versions"]) and table.meta["host"]["cores"]


def test_interleaved_build_resumes_by_chunk(tiny, tmp_path):
    """The default protocol times a chunk of ops in interleaved passes in one worker; a build killed in its
    second chunk keeps the first and times only the rest."""
    items, out = tiny["items"], tmp_path / "inter.json"
    real = measure_mod.run_worker
    chunks: list[list[str]] = []
    kill = [True]

    def killed_in_second_chunk(items, **kw):
        chunks.append([item["id"] for item in items])
        assert kw["interleave"]["passes"] == INTERLEAVED.passes
        for msg in real(items, **kw):
            if kill[0] and len(chunks) == 2 and "pass" in msg:
                raise KeyboardInterrupt
            yield msg

    measure_mod.run_worker = killed_in_second_chunk
    build = dict(device="tiny", items=items, out=out, protocol=INTERLEAVED, progress=False, chunk=2, allow_busy=True)
    try:
        with pytest.raises(KeyboardInterrupt):
            build_table(**build)
        saved = json.loads((build_mod.build_dir(out) / "checkpoint.json").read_text())["repeats"]
        assert sorted(saved) == sorted(chunks[0]) and not out.exists()
        chunks.clear()
        kill[0] = False
        build_table(**build)
    finally:
        measure_mod.run_worker = real
    assert sorted(k for chunk in chunks for k in chunk) == sorted(set(items) - set(saved))
    table = load_table(out)
    for entry in [*table.ops.values(), *table.fixed.values()]:
        assert entry["count"] == INTERLEAVED.passes * INTERLEAVED.runs and 0 < entry["min"] <= entry["median"]
    assert table.meta["protocol"]["passes"] == INTERLEAVED.passes


def test_quietest_cpu_is_an_allowed_core():
    import os

    from nas.latency.measure import quietest_cpu

    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity here")
    assert quietest_cpu(0.05) in os.sched_getaffinity(0)


def test_a_timing_worker_serves_many_batches_in_one_process(tiny):
    """NetAdapt keeps one worker for a whole run: later batches reuse the process, its figures match a fresh
    worker's protocol, and a worker whose process died starts a new one on the next request."""
    items = [{**item, "id": key} for key, item in sorted(tiny["items"].items())[:3]]
    with measure_mod.TimingWorker(QUICK) as worker:
        first = list(worker.request(items[:2]))
        pid = worker.proc.pid
        second = list(worker.request(items[2:]))
        assert worker.proc.pid == pid and worker.cpu_s() > 0
        assert [m["id"] for m in first + second] == [i["id"] for i in items]
        assert all(len(m["repeats"]) == QUICK.min_repeats and len(m["repeats"][0]) == QUICK.runs for m in second)
        worker.proc.kill()
        worker.proc.wait()
        again = list(worker.request(items[:1]))
        assert worker.proc.pid != pid and again[0]["id"] == items[0]["id"]
    assert worker.proc is None


def test_a_worker_that_dies_mid_batch_is_reported(tiny):
    items = [{**item, "id": key} for key, item in sorted(tiny["items"].items())[:1]]
    with measure_mod.TimingWorker(QUICK) as worker:
        with pytest.raises(RuntimeError, match="latency worker stopped after 0 of 1 items"):
            for _ in worker.request([{**items[0], "kind": "no-such-kind"}], interleave={"passes": 2, "seed": 0}):
                pass
        assert worker.proc is None
        assert [m["id"] for m in worker.request(items)] == [items[0]["id"]]  # the next request starts afresh


def test_the_load_meter_counts_a_live_worker_as_ours(monkeypatch):
    """A persistent worker is no waited-for child: its CPU time would otherwise count as another process's."""
    tick = measure_mod.os.sysconf("SC_CLK_TCK")
    seconds = {"worker": 0.0}

    class Worker:
        def cpu_s(self):
            return seconds["worker"]

    def measured(worker):
        clock = iter([(0, 0), (1 * tick, 2 * tick)])  # 1 of 2 core-seconds busy
        monkeypatch.setattr(measure_mod, "_cpu_times", lambda: next(clock))
        monkeypatch.setattr(measure_mod, "_own_cpu_s", lambda resource: 0.0)
        seconds["worker"] = 0.0
        with measure_mod.LoadMeter(interval_s=0.01, worker=worker) as meter:
            seconds["worker"] = 1.0  # the worker timed for that second
        return meter.load.other_share

    assert measured(Worker()) == 0.0
    assert measured(None) == 0.5


def test_adding_to_a_complete_table_reuses_it(tiny):
    _, summary = build_table(
        device="tiny", items=tiny["items"], out=tiny["out"], protocol=QUICK, progress=False, add=True, allow_busy=True
    )
    assert summary["timed"] == 0 and summary["reused"] == len(tiny["items"])


def test_validate_on_a_tiny_sample(tiny, tmp_path, capsys):
    rc = main(
        [
            "latency",
            "validate",
            "--device",
            str(tiny["out"]),
            "--space",
            str(tiny["space"]),
            "--samples",
            "3",
            "--rounds",
            "1",
            "--out",
            str(tmp_path),
            "--allow-busy",
            "--json",
        ]
    )
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert {"samples", "mape", "within_5pct", "within_10pct", "kendall_tau", "worst", "raw"} <= set(doc)
    assert doc["random_networks"] == 3 and 0 <= doc["within_10pct"] <= 1
    assert doc["passes"] >= 2 and len(doc["networks"]) >= 3 and all(n["measured_ms"] > 0 for n in doc["networks"])
    assert Path(doc["plot"]).read_bytes()[:4] == b"\x89PNG"


def _tiny_arch() -> Arch:
    return Arch(
        resolution=32,
        num_classes=10,
        stem=[Conv(out=8, k=3, s=2, act="hswish")],
        stages=[[InvertedResidual(out=8, mid=16, k=3, se=0.25)]],
        head=Head(),
    )


def _time_onnx(path: Path, shape: list[int], runs: int = 5) -> list[float]:
    """What a benchmark tool on the device would do: run the exported model, report milliseconds."""
    import numpy as np
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feed = {"x": np.zeros(shape, dtype=np.float32)}
    sess.run(None, feed)
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, feed)
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def test_export_ops_then_import_round_trip(tmp_path, capsys):
    arch = _tiny_arch()
    arch_file = tmp_path / "tiny_arch.json"
    arch_file.write_text(arch.to_json())
    ops_dir = tmp_path / "ops"
    assert main(["latency", "export-ops", "--arch", str(arch_file), "--out", str(ops_dir), "--json"]) == 0
    capsys.readouterr()
    manifest = json.loads((ops_dir / "manifest.json").read_text())
    assert {op["key"] for op in manifest["ops"]} == set(arch_items([arch]))
    results = ops_dir / "results.csv"  # beside manifest.json, where import looks for it
    with results.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "ms"])
        for op in manifest["ops"]:
            for ms in _time_onnx(ops_dir / op["file"], op["input_shape"]):
                writer.writerow([op["id"], f"{ms:.5f}"])
    table_path = tmp_path / "phone.json"
    assert main(["latency", "import", str(results), "--device", "phone", "--out", str(table_path)]) == 0
    capsys.readouterr()
    table = load_table(table_path)
    assert table.kind == "measured" and table.device == "phone"
    pred = predict(arch, table)
    ops = arch_ops(arch)
    expected = sum(table.ms[k] for k in (*ops.keys, ops.head, ops.input))
    assert pred.latency_ms == pytest.approx(expected) and pred.latency_ms > 0

    lines = results.read_text().splitlines()
    drop = manifest["ops"][0]["id"]
    results.write_text("\n".join(line for line in lines if not line.startswith(drop + ",")) + "\n")
    assert main(["latency", "import", str(results), "--device", "phone", "--out", str(tmp_path / "x.json")]) == 2
    err = capsys.readouterr().err
    assert drop in err and "never partial" in err and not (tmp_path / "x.json").exists()


def test_measure_missing_adds_the_ops_a_table_lacks(tiny, tmp_path, capsys):
    from nas.space import load_space

    arch = load_space(str(tiny["space"])).random_arch(random.Random(0), resolution=32)
    arch = arch.with_blocks([*arch.blocks[:-1], arch.blocks[-1].replace(k=7)])
    arch_file = tmp_path / "a.json"
    arch_file.write_text(arch.to_json())
    table_path = tmp_path / "t.json"
    table_path.write_text(tiny["out"].read_text())
    assert main(["latency", "predict", str(arch_file), "--device", str(table_path)]) == 2
    assert "no entry for 1 op(s)" in capsys.readouterr().err
    assert (
        main(
            [
                "latency",
                "predict",
                str(arch_file),
                "--device",
                str(table_path),
                "--measure-missing",
                "--allow-busy",
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    assert doc["measured_now"] == 1 and doc["latency_ms"] > 0
    assert len(load_table(table_path).ops) == len(load_table(tiny["out"]).ops) + 1


def test_networks_time_end_to_end_for_the_machine_check(tiny):
    from nas.latency import machine

    table = load_table(tiny["out"])
    archs = machine.check_networks(table, 2)
    ms, load = machine.time_networks(archs, INTERLEAVED, passes=2)
    assert len(ms) == 2 and all(m > 0 for m in ms) and 0 <= load["other_cpu_share"] <= 1
