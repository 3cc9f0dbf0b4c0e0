"""Table file: round trip, versioning, predict = sum of entries + fixed costs, and every bad input → exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nas import zoo
from nas.cli import main
from nas.errors import NasError
from nas.latency import LatencyTable, arch_ops, load_table, predict
from nas.latency.table import FORMAT

ARCH = zoo.get("mobilenet_v2", width=0.35, resolution=96)


def _entry(ms: float) -> dict:
    return {"median": ms, "mean": ms * 1.01, "std": 0.01, "min": ms * 0.98, "count": 30}


def make_table(arch=ARCH, **overrides) -> LatencyTable:
    ops = arch_ops(arch)
    entries = {k: _entry(0.1 + i * 0.01) for i, k in enumerate(dict.fromkeys(ops.keys))}
    fixed = {ops.head: _entry(0.05), ops.input: _entry(0.02)}
    kwargs = {
        "device": "testdev",
        "runtime": "onnxruntime-cpu-1thread",
        "kind": "measured",
        "ops": entries,
        "fixed": fixed,
        "resolutions": [arch.resolution],
        "meta": {"created": "2026-01-01"},
    }
    kwargs.update(overrides)
    return LatencyTable(**kwargs)


def test_round_trip_and_predict_is_the_sum(tmp_path):
    table = make_table()
    path = table.save(tmp_path / "t.json")
    loaded = load_table(path)
    assert loaded.to_dict() == table.to_dict()
    assert json.loads(path.read_text())["format"] == FORMAT
    pred = predict(ARCH, loaded)
    ops = arch_ops(ARCH)
    expected = sum(loaded.ops[k]["median"] for k in ops.keys) + loaded.fixed[ops.head]["median"] + 0.02
    assert pred.latency_ms == pytest.approx(expected)
    assert pred.kind == "measured" and pred.device == "testdev"
    blocks = pred.blocks
    assert [b.path for b in blocks[:-2]] == list(ops.paths) and blocks[-2].path == "head"
    assert sum(b.ms for b in blocks) == pytest.approx(expected)


def test_correction_is_applied(tmp_path):
    table = make_table(correction={"scale": 1.1, "offset_ms": 0.5})
    pred = predict(ARCH, load_table(table.save(tmp_path / "t.json")))
    assert pred.latency_ms == pytest.approx(pred.raw_ms * 1.1 + 0.5)


def test_missing_ops_error_names_them():
    table = make_table()
    key = arch_ops(ARCH).keys[3]
    del table.ops[key], table.ms[key]
    with pytest.raises(NasError, match=r"1 op\(s\).*stages\[1\]\[1\]"):
        predict(ARCH, table)


def test_other_resolution_is_named():
    with pytest.raises(NasError, match=r"built at resolution 96.*at 128"):
        predict(ARCH.replace(resolution=128), make_table())


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"schema": "nas.arch/1"}', "not a latency table"),
        (json.dumps({"format": "nas.latency-table/99"}), "not supported"),
        ("[1, 2]", "not a latency table"),
    ],
)
def test_corrupt_or_foreign_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(NasError, match=message):
        load_table(path)


def test_partial_and_damaged_tables_are_refused(tmp_path):
    data = make_table().to_dict()
    partial = {**data, "complete": False}
    (tmp_path / "p.json").write_text(json.dumps(partial))
    with pytest.raises(NasError, match="unfinished build"):
        load_table(tmp_path / "p.json")
    key = next(iter(data["ops"]))
    damaged = {**data, "ops": {**data["ops"], key: {"median": "fast"}}}
    (tmp_path / "d.json").write_text(json.dumps(damaged))
    with pytest.raises(NasError, match="lacks"):
        load_table(tmp_path / "d.json")


def test_runtime_and_resolution_mismatch(tmp_path):
    path = make_table().save(tmp_path / "t.json")
    with pytest.raises(NasError, match="runtime onnxruntime-cpu-1thread, not torch-eager-1thread"):
        load_table(path, runtime="torch-eager-1thread")
    with pytest.raises(NasError, match="resolution 96, not 224"):
        load_table(path, resolution=224)


def _cli(capsys, *argv) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


@pytest.mark.parametrize("case", ["corrupt", "foreign", "unknown", "missing", "runtime"])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, case):
    good = make_table().save(tmp_path / "good.json")
    args = ["latency", "predict", "mobilenet_v2", "--width", "0.35", "--resolution", "96", "--device", str(good)]
    if case == "corrupt":
        (tmp_path / "c.json").write_text('{"format": "nas.latency-table/1", "ops": ')
        args[-1] = str(tmp_path / "c.json")
    elif case == "foreign":
        (tmp_path / "f.json").write_text(zoo.get("mobilenet_v2").to_json())
        args[-1] = str(tmp_path / "f.json")
    elif case == "unknown":
        args[-1] = "no-such-phone"
    elif case == "missing":
        args[args.index("0.35")] = "0.5"
    elif case == "runtime":
        args += ["--runtime", "torch-eager-1thread"]
    rc, out, err = _cli(capsys, *args)
    assert rc == 2
    assert err.startswith("nas: error: ") and err.count("\n") == 1, err
    assert out == ""


def test_cli_predict_json(tmp_path, capsys):
    good = make_table().save(tmp_path / "good.json")
    rc, out, _ = _cli(
        capsys, "latency", "predict", "mobilenet_v2_035", "--resolution", "96", "--device", str(good), "--json"
    )
    assert rc == 0
    doc = json.loads(out)
    assert {"latency_ms", "device", "kind", "blocks"} <= set(doc)
    assert doc["latency_ms"] == pytest.approx(sum(b["ms"] for b in doc["blocks"]), abs=1e-3)


def test_build_refuses_pixel_and_unknown_sources(capsys):
    rc, _, err = _cli(capsys, "latency", "build", "--device", "pixel", "--arch", "nope.json")
    assert rc == 2 and "estimated" in err
    rc, _, err = _cli(capsys, "latency", "build", "--device", "x", "--arch", str(Path("nope.json")))
    assert rc == 2 and "does not exist" in err


# ---------------------------------------------------------------------------------------------- checked on load


def _corrupt(data: dict, case: str) -> dict:
    key = next(iter(data["ops"]))
    if case == "inf median":
        return {**data, "ops": {**data["ops"], key: {**data["ops"][key], "median": float("inf")}}}
    if case == "zero median":
        return {**data, "ops": {**data["ops"], key: {**data["ops"][key], "median": 0}}}
    if case == "negative median":
        return {**data, "ops": {**data["ops"], key: {**data["ops"][key], "median": -1.0}}}
    if case == "nan correction":
        return {**data, "correction": {"scale": float("nan"), "offset_ms": 0.0}}
    if case == "negative correction":
        return {**data, "correction": {"scale": -1.0, "offset_ms": 0.0}}
    if case == "zero correction":
        return {**data, "correction": {"scale": 0, "offset_ms": 0.0}}
    if case == "correction out of band":
        return {**data, "correction": {"scale": 2.955, "offset_ms": 0.397}}
    if case == "inf offset":
        return {**data, "correction": {"scale": 1.0, "offset_ms": float("inf")}}
    raise AssertionError(case)


CORRUPT = [
    "inf median",
    "zero median",
    "negative median",
    "nan correction",
    "negative correction",
    "zero correction",
    "correction out of band",
    "inf offset",
]


@pytest.mark.parametrize("case", CORRUPT)
def test_insane_entries_and_corrections_are_refused_on_load(tmp_path, capsys, case):
    path = tmp_path / "t.json"
    # json.dumps writes inf/nan as Infinity/NaN, which Python's json reads back: the table check must refuse them
    path.write_text(json.dumps(_corrupt(make_table().to_dict(), case)))
    with pytest.raises(NasError):
        load_table(path)
    rc, out, err = _cli(capsys, "latency", "predict", "mobilenet_v2_035", "--resolution", "96", "--device", str(path))
    assert rc == 2 and out == "" and err.startswith("nas: error: ") and err.count("\n") == 1, err


def test_price_and_correct_are_the_tables_pricing():
    table = make_table(correction={"scale": 1.1, "offset_ms": 0.5})
    site = ARCH.sites()[2]
    assert table.price(site.x, site.block) == table.ms[arch_ops(ARCH).keys[2]]
    assert table.correct(10.0) == pytest.approx(11.5)
    ops = arch_ops(ARCH)
    raw = (
        sum(table.price(s.x, s.block) for s in ARCH.sites())
        + table.price_fixed(ops.head)
        + table.price_fixed(ops.input)
    )
    assert predict(ARCH, table).latency_ms == pytest.approx(table.correct(raw))
    from nas.arch import Conv, Shape
    from nas.latency import MissingOp

    with pytest.raises(MissingOp) as err:
        table.price(Shape(3, 96, 96), Conv(out=999, k=3))
    assert err.value.key.startswith("conv:3x96x96")


def test_engine_and_threads_are_fields_read_from_the_protocol():
    table = make_table(meta={"protocol": {"runtime": "torch", "threads": 2, "clock": "wall"}})
    assert table.engine == "torch" and table.threads == 2
    assert make_table(meta={}).engine is None  # imported or unknown: nothing here times it


# ---------------------------------------------------------------------------------------------- checks in the API


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"threads": 0}, "threads"),
        ({"rounds": 0}, "rounds"),
        ({"runs": 0}, "runs"),
        ({"max_repeats": 2}, "max_repeats"),
        ({"passes": -1}, "passes"),
        ({"runtime": "tflite"}, "runtime"),
        ({"clock": "sundial"}, "clock"),
        ({"threads": 2, "clock": "thread"}, "clock"),
    ],
)
def test_protocol_refuses_what_the_cli_refuses(capsys, kwargs, message):
    from nas.latency import Protocol

    with pytest.raises(NasError, match=message):
        Protocol(**kwargs)
    flags = {
        "threads": "--threads",
        "rounds": "--rounds",
        "runs": "--runs",
        "max_repeats": "--max-repeats",
        "passes": "--passes",
        "clock": "--clock",
    }
    if "runtime" in kwargs or kwargs.get("clock") == "sundial":
        return  # argparse's own choices refuse these on the command line
    argv = ["latency", "build", "--device", "x", "--out", "/nonexistent-dir-nas/x.json"]
    for name, value in kwargs.items():
        argv += [flags[name], str(value)]
    rc, _, err = _cli(capsys, *argv)
    assert rc == 2 and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("where", ["directory", "file parent", "proc", "unwritable"])
def test_build_out_is_checked_before_any_timing(tmp_path, capsys, monkeypatch, where):
    import os

    from nas.latency import measure

    def no_timing(*args, **kwargs):
        raise AssertionError("timing started")

    monkeypatch.setattr(measure, "run_worker", no_timing)
    if where == "directory":
        out = tmp_path
    elif where == "file parent":
        (tmp_path / "f").write_text("")
        out = tmp_path / "f" / "t.json"
    elif where == "proc":
        out = Path("/proc/self/t.json")
    else:
        if os.geteuid() == 0:
            pytest.skip("root writes anywhere")
        (tmp_path / "ro").mkdir()
        (tmp_path / "ro").chmod(0o500)
        out = tmp_path / "ro" / "t.json"
    before = sorted(p.name for p in tmp_path.iterdir())
    rc, _, err = _cli(capsys, "latency", "build", "--device", "x", "--out", str(out), "--resolution", "32")
    assert rc == 2 and err.startswith("nas: error: ") and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing left behind


def test_import_refuses_zero_ms_timings(tmp_path, capsys):
    from nas.latency.exchange import MANIFEST

    ops = arch_ops(ARCH)
    keys = [*dict.fromkeys(ops.keys), ops.head, ops.input]
    manifest = {
        "format": MANIFEST,
        "resolutions": [96],
        "ops": [
            {"id": f"op{i}", "key": k, "kind": "head" if k == ops.head else "input" if k == ops.input else "op"}
            for i, k in enumerate(keys)
        ],
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    (tmp_path / "results.csv").write_text(
        "id,ms\n" + "".join(f"op{i},{0 if i == 1 else 0.5}\n" for i in range(len(keys)))
    )
    rc, _, err = _cli(
        capsys, "latency", "import", str(tmp_path / "results.csv"), "--device", "p", "--out", str(tmp_path / "p.json")
    )
    assert rc == 2 and "positive" in err and err.count("\n") == 1 and not (tmp_path / "p.json").exists()
