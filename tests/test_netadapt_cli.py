"""`nas netadapt` end to end on the Pixel 1 table and the synthetic data (tiny budgets), and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nas import zoo
from nas.arch import Arch
from nas.cli import main
from nas.model import build

torch.set_num_threads(1)

TABLE = Path(__file__).resolve().parents[1] / "latency_tables" / "pixel1.json"
pytestmark = pytest.mark.skipif(not TABLE.exists(), reason="latency_tables/pixel1.json not built")

SMALL = [
    "mobilenet_v2",
    "--width",
    "0.35",
    "--resolution",
    "96",
    "--device",
    str(TABLE),
    "--data",
    "synthetic:160,40",
    "--batch-size",
    "32",
    "--short-steps",
    "1",
    "--pretrain-epochs",
    "0.2",
    "--long-epochs",
    "1",
]


def predicted(arch: Arch) -> float:
    from nas.latency.table import load_table, predict

    return predict(arch, load_table(TABLE)).latency_ms


def test_cli_meets_the_target_and_writes_an_exportable_result(tmp_path, capsys):
    arch = zoo.get("mobilenet_v2", width=0.35, resolution=96, num_classes=10)
    l0 = predicted(arch)
    target = round(l0 * 0.9, 3)
    out = tmp_path / "run"
    rc = main(["netadapt", *SMALL, "--target-latency", f"{target}ms", "--step", "0.05", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = json.loads(captured.out)
    assert "training the starting model briefly" in captured.err and summary["pretrained"] is True
    assert summary["latency_ms"] <= target and summary["initial_latency_ms"] == pytest.approx(l0, abs=1e-3)
    assert summary["table_kind"] == "estimated"
    result = Arch.from_json((out / "arch.json").read_text())
    assert predicted(result) <= target
    assert predicted(result) == pytest.approx(summary["latency_ms"], abs=1e-3)
    history = json.loads((out / "history.json").read_text())
    assert len(history["iterations"]) == summary["iterations"] >= 2
    for it in history["iterations"]:
        assert it["latency_ms"] <= it["target_ms"] and it["unit"] in it["widths"]
    # `nas export` takes the result (arch JSON + --weights) and so does MODEL (the run directory)
    rc = main(
        [
            "export",
            str(out / "arch.json"),
            "--weights",
            str(out / "weights.pt"),
            "--format",
            "json",
            "--out",
            str(tmp_path / "exp"),
        ]
    )
    assert rc == 0
    capsys.readouterr()
    rc = main(["export", str(out), "--format", "json", "--out", str(tmp_path / "exp2"), "--json"])
    exported = json.loads(capsys.readouterr().out)
    assert rc == 0 and exported["weights"] == str(out / "weights.pt")
    net = build(result)
    net.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
    # resuming a finished run returns it without new work
    rc = main(
        [
            "netadapt",
            *SMALL,
            "--target-latency",
            f"{target}ms",
            "--step",
            "0.05",
            "--out",
            str(out),
            "--resume",
            "--json",
        ]
    )
    assert rc == 0 and json.loads(capsys.readouterr().out)["resumed"] is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target-latency", "500ms"], "nothing to do"),
        (["--target-latency", "0.01ms"], "smallest latency reachable"),
        (["--target-latency", "fast"], "target latency must be a duration"),
        (["--target-latency", "3ms", "--metric", "slope", "--step", "2"], "--step"),
        (["--target-latency", "3ms", "--preset", "mobilenetv3", "--step", "0.1"], "--preset mobilenetv3 sets"),
        (["--target-latency", "3ms", "--score", "fine-tune", "--short-steps", "0"], "--short-steps"),
        (["--target-latency", "3ms", "--bn-batches", "0"], "--bn-batches"),
        (["--target-latency", "3ms", "--seed", "-1"], "--seed"),
    ],
)
def test_cli_bad_targets_exit_2_with_one_line(tmp_path, capsys, extra, message):
    rc = main(["netadapt", *SMALL, *extra, "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err and err.count("\n") == 1 and err.startswith("nas: error:")
    assert not (tmp_path / "r").exists(), "a refused run left its output directory behind"


def test_cli_weights_that_do_not_fit_exit_2(tmp_path, capsys):
    wrong = tmp_path / "wrong.pt"
    torch.save(build(zoo.get("mobilenet_v2", width=0.5, num_classes=10)).state_dict(), wrong)
    rc = main(["netadapt", *SMALL, "--target-latency", "3ms", "--weights", str(wrong), "--out", str(tmp_path / "r")])
    err = capsys.readouterr().err
    assert rc == 2 and "do not fit" in err and err.count("\n") == 1
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a torch file")
    rc = main(["netadapt", *SMALL, "--target-latency", "3ms", "--weights", str(junk), "--out", str(tmp_path / "r2")])
    err = capsys.readouterr().err
    assert rc == 2 and "cannot read weights" in err


def test_cli_refuses_unsupported_blocks_and_unknown_models(tmp_path, capsys):
    rc = main(
        [
            "netadapt",
            "shufflenet_v2",
            "--resolution",
            "96",
            "--device",
            str(TABLE),
            "--target-latency",
            "1ms",
            "--data",
            "synthetic:160,40",
            "--out",
            str(tmp_path / "r"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "shuffle_v2" in err
    rc = main(
        [
            "netadapt",
            "mobilenet_v9",
            "--device",
            str(TABLE),
            "--target-latency",
            "1ms",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 2 and "unknown zoo model" in capsys.readouterr().err
