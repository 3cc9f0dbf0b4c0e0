"""A busy machine, a correction that should not be saved, and a table from another machine: each is refused or
told, never used silently. Load readings and timings are injected where the outcome must not depend on how
busy the shared test machine is; one test starts a real competing process."""

from __future__ import annotations

import hashlib
import json
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from test_latency_build import TINY_SPACE

from nas.cli import main
from nas.errors import NasError
from nas.latency import LatencyTable, Protocol, load_table, machine, measure, predict
from nas.latency import validate as validate_mod
from nas.latency.items import space_items
from nas.latency.measure import Load, Timed
from nas.latency.table import tables_dir

QUICK = Protocol(warmup=1, runs=2, rounds=1, warmup_s=0.0, passes=2)


def _entry(ms: float) -> dict:
    return {"median": ms, "mean": ms, "std": 0.0, "min": ms, "count": 4}


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


def synthetic_table(space: Path, path: Path, host: dict | None = None) -> LatencyTable:
    """A 'measured' table of the tiny space with made-up entries (no timing), saved at `path`."""
    items = space_items(str(space), 32)
    ops = {k: _entry(0.1 + 0.01 * i) for i, (k, v) in enumerate(sorted(items.items())) if v["kind"] == "op"}
    fixed = {k: _entry(0.05) for k, v in items.items() if v["kind"] != "op"}
    meta = {
        "protocol": QUICK.to_dict(),
        "sources": [{"space": str(space), "resolution": 32}],
        "created": "2026-01-01T00:00:00+00:00",
    }
    if host is not None:
        meta["host"] = host
        meta["versions"] = {"onnxruntime": "0.0.1-elsewhere"}
    table = LatencyTable(
        device="tiny", runtime=QUICK.label, kind="measured", ops=ops, fixed=fixed, resolutions=[32], meta=meta
    )
    table.save(path)
    table.path = path
    return table


class FakeMeter:
    """A LoadMeter that reports a fixed load."""

    share = 0.0

    def __init__(self, *a, **k):
        self.load = Load(self.share, 3.0, 1.0)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None


def fake_worker(items, *, protocol, interleave=None, **kw):
    """Timings without a worker process: every item takes 1 ms."""
    if interleave:
        yield {"ready": len(items)}
        for p in range(interleave["passes"]):
            samples = {item["id"]: [1.0] * protocol.runs for item in items}
            yield {"pass": p, "samples": samples, "thread": {}, "wall": {}}
    else:
        for item in items:
            yield {"id": item["id"], "repeats": [[1.0] * protocol.runs]}


@pytest.mark.parametrize("share", [0.1, 0.8])
def test_build_refuses_a_busy_machine_in_one_line_and_allow_busy_marks_the_table(
    space, tmp_path, capsys, monkeypatch, share
):
    monkeypatch.setattr(measure, "LoadMeter", type("M", (FakeMeter,), {"share": share}))
    monkeypatch.setattr(measure, "run_worker", fake_worker)
    out = tmp_path / "t.json"
    argv = ["latency", "build", "--device", "t", "--space", str(space), "--resolution", "32", "--out", str(out)]
    argv += ["--rounds", "1", "--passes", "2", "--runs", "2"]
    rc = main(argv)
    err = capsys.readouterr().err
    if share > measure.BUSY_SHARE:
        assert rc == 2 and err.startswith("nas: error: the machine is busy") and err.count("\n") == 1
        assert "80%" in err and not out.exists()
        assert main([*argv, "--allow-busy", "--json"]) == 0
        doc = json.loads(capsys.readouterr().out)
        assert doc["load"]["timed_under_load"] is True
        assert load_table(out).meta["load"]["other_cpu_share"] == pytest.approx(0.8)
    else:
        assert rc == 0 and load_table(out).meta["load"]["timed_under_load"] is False


def test_one_competing_process_is_refused_or_changes_nothing(tmp_path):
    """The load experiment: time two ops, then time them again beside a CPU-bound process this test starts.
    Either the busy machine is refused, or the figures stay within 10% of the first ones."""
    items = [{**item, "id": key} for key, item in sorted(space_items(str(_space(tmp_path)), 32).items())[:2]]
    first = measure.time_items(items, QUICK, workdir=tmp_path, allow_busy=True)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        try:
            second = measure.time_items(items, QUICK, workdir=tmp_path)
        except NasError as err:
            assert "the machine is busy" in str(err)
            return
    finally:
        hog.kill()
        hog.wait()
    for item in items:
        a = statistics.median(v for p in first.runs[item["id"]] for v in p)
        b = statistics.median(v for p in second.runs[item["id"]] for v in p)
        assert b == pytest.approx(a, rel=0.10)


def _space(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPACE)
    return path


def test_the_load_meter_sees_a_competing_process():
    import time

    with measure.LoadMeter() as quiet:
        time.sleep(0.5)
    hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.2)
        with measure.LoadMeter() as busy:
            time.sleep(1.0)
    finally:
        hog.kill()
        hog.wait()
    if quiet.load.seconds == 0 or busy.load.other_share == 0:
        pytest.skip("no /proc/stat here")
    cores = len(__import__("os").sched_getaffinity(0))
    assert busy.load.other_share >= min(0.9, 1 / cores) * 0.8  # the hog alone fills one core


# ---------------------------------------------------------------------------------------------- corrections


def fake_validate_timing(ratio: float):
    """time_items for validate: every network runs `ratio` × its predicted time (the plain sum)."""

    def timed(items, protocol, **kw):
        from nas.arch import Arch

        runs = {}
        for item in items:
            ms = predict(Arch.from_dict(item["arch"]), TABLE[0]).raw_ms * ratio
            runs[item["id"]] = [[ms] * protocol.runs for _ in range(kw["passes"])]
        return Timed(runs, {}, Load(FakeMeter.share, 0.0, 1.0))

    return timed


TABLE: list = []


@pytest.mark.parametrize(
    ("ratio", "share", "outcome"),
    [(1.05, 0.0, "saved"), (3.0, 0.0, "band"), (1.05, 0.9, "load")],
)
def test_a_correction_is_saved_only_when_asked_quiet_and_sane(
    space, tmp_path, capsys, monkeypatch, ratio, share, outcome
):
    table = synthetic_table(space, tmp_path / "t.json")
    TABLE[:] = [table]
    monkeypatch.setattr(FakeMeter, "share", share)
    monkeypatch.setattr(validate_mod, "time_items", fake_validate_timing(ratio))
    argv = ["latency", "validate", "--device", str(table.path), "--space", str(space), "--samples", "6"]
    argv += ["--rounds", "1", "--passes", "2", "--no-zoo", "--out", str(tmp_path / "v")]
    before = table.path.read_bytes()
    assert main([*argv, "--allow-busy"]) == 0  # a report only: the table is not touched
    assert "unchanged" in capsys.readouterr().out and table.path.read_bytes() == before
    rc = main([*argv, "--allow-busy", "--save-correction"])
    out, err = capsys.readouterr()
    if outcome == "saved":
        assert rc == 0 and "changed" in out and "none →" in out
        assert load_table(table.path).correction["scale"] == pytest.approx(1.05, rel=1e-3)
    else:
        assert rc == 2 and err.count("\n") == 1 and table.path.read_bytes() == before
        assert ("band" in err) if outcome == "band" else ("under load" in err)


# ---------------------------------------------------------------------------------------------- another machine


ELSEWHERE = {"cpu": "Some Other CPU 9000", "cores": 64, "machine": "x86_64", "hostname": "far"}


def fake_networks(ratio: float, calls: list):
    def timer(archs, protocol, **kw):
        calls.append(len(archs))
        return [TABLE[0].predict(a).latency_ms * ratio for a in archs], {"other_cpu_share": 0.0}

    return timer


def test_a_table_from_another_machine_is_checked_once_and_never_used_silently(space, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NAS_MACHINE_CHECK", raising=False)
    table = synthetic_table(space, tmp_path / "t.json", host=ELSEWHERE)
    TABLE[:] = [table]
    calls: list = []
    monkeypatch.setattr(machine, "time_networks", fake_networks(3.0, calls))
    load_table(table.path)
    err = capsys.readouterr().err
    assert len(calls) == 1 and 2 <= calls[0] <= machine.CHECK_NETWORKS <= 10
    assert "Some Other CPU 9000" in err and "×3.00" in err and "nas latency calibrate" in err and "build" in err
    assert list((tmp_path / "cache" / "nas" / "machine-checks").iterdir())
    load_table(table.path)  # cached: no timing, but the warning again
    assert len(calls) == 1 and "×3.00" in capsys.readouterr().err

    # the calibrated copy is a user file; the table itself is untouched
    before = table.path.read_bytes()
    out = tmp_path / "mine.json"
    assert main(["latency", "calibrate", "--device", str(table.path), "--out", str(out)]) == 0
    assert "calibrated" in capsys.readouterr().out and table.path.read_bytes() == before
    calibrated = load_table(out)
    assert capsys.readouterr().err == ""  # calibrated for this machine: no check
    assert calibrated.calibration["scale"] == pytest.approx(3.0, rel=1e-3)
    arch = machine.check_networks(table)[0]
    assert predict(arch, calibrated).latency_ms == pytest.approx(3 * predict(arch, table).latency_ms, rel=1e-3)
    assert main(["latency", "calibrate", "--device", str(table.path), "--out", str(table.path)]) == 2
    assert table.path.read_bytes() == before


def test_a_table_within_10_percent_is_noted_once(space, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("NAS_MACHINE_CHECK", raising=False)
    table = synthetic_table(space, tmp_path / "t.json", host=ELSEWHERE)
    TABLE[:] = [table]
    calls: list = []
    monkeypatch.setattr(machine, "time_networks", fake_networks(1.04, calls))
    load_table(table.path)
    assert "within" in capsys.readouterr().err
    load_table(table.path)
    assert capsys.readouterr().err == "" and len(calls) == 1


def test_check_and_calibrate_refuse_bad_values(space, tmp_path, capsys):
    table = synthetic_table(space, tmp_path / "t.json", host=ELSEWHERE)
    with pytest.raises(NasError, match="networks"):
        machine.run_check(table, networks=11)
    assert main(["latency", "check", "--device", str(table.path), "--networks", "50"]) == 2
    assert "networks" in capsys.readouterr().err
    assert main(["latency", "check", "--device", "pixel"]) == 2
    assert "estimated" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- committed tables


def _digests() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(tables_dir().glob("*.json"))}


def test_commands_never_change_the_committed_tables(tmp_path, capsys, monkeypatch):
    """predict, show, check and validate (without --save-correction) on the committed tables leave their bytes as
    they were; a correction is saved only into the table named."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("NAS_MACHINE_CHECK", "off")
    before = _digests()
    assert set(before) >= {"cpu.json", "pixel1.json"}
    cpu = load_table("cpu", machine_check=False)
    TABLE[:] = [cpu]
    monkeypatch.setattr(validate_mod, "time_items", fake_validate_timing(1.05))
    monkeypatch.setattr(machine, "time_networks", fake_networks(1.5, []))
    for argv in (
        ["latency", "predict", "mobilenet_v2", "--device", "pixel"],
        ["latency", "predict", "mobilenet_v3_large", "--device", "pixel", "--resolution", "192"],
        ["latency", "show", "--device", "cpu"],
        ["latency", "show", "--device", "pixel"],
        ["latency", "check", "--device", "cpu"],
        ["latency", "validate", "--device", "cpu", "--samples", "4", "--rounds", "1", "--passes", "1", "--no-zoo"],
    ):
        assert main(argv) == 0, argv
    copy = tmp_path / "cpu-copy.json"
    copy.write_bytes((tables_dir() / "cpu.json").read_bytes())
    argv = ["latency", "validate", "--device", str(copy), "--samples", "5", "--rounds", "1", "--passes", "1"]
    assert main([*argv, "--no-zoo", "--allow-busy", "--save-correction", "--out", str(tmp_path / "v")]) == 0
    assert f"changed {copy}" in capsys.readouterr().out
    assert copy.read_bytes() != (tables_dir() / "cpu.json").read_bytes()
    assert _digests() == before
