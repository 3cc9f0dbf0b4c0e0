"""`nas train` / `nas.training.train_source`: outputs that load and feed `nas export` and `nas netadapt`, resume
after a kill with the same final weights, `--lr auto` chosen on the validation split only, and bad input."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
import torch

from nas import training
from nas.accuracy.data import load_data
from nas.arch import Arch
from nas.cli import main
from nas.errors import NasError
from nas.model import build
from nas.training import LR_GRID, train_source

torch.set_num_threads(1)
# the module, not the `train` function that nas.accuracy exports under the same name
train_module = importlib.import_module("nas.accuracy.train")

SOURCE = "mobilenet_v2_035"
DATA = "synthetic:160,40"  # 128 training images after the validation split: 4 steps of 32 per epoch
FAST = ["--batch-size", "32", "--threads", "1"]
TABLE = Path(__file__).resolve().parents[1] / "latency_tables" / "pixel1.json"


@pytest.fixture(scope="module")
def data():
    return load_data(DATA, seed=0)


def recipe():
    return train_module.TrainConfig(batch_size=32, threads=1)


def load_run(run: Path) -> tuple[Arch, torch.nn.Module, dict]:
    arch = Arch.from_dict(json.loads((run / "arch.json").read_text()))
    net = build(arch)
    net.load_state_dict(torch.load(run / "weights.pt", weights_only=True))  # strict: every key, every shape
    return arch, net, json.loads((run / "result.json").read_text())


def test_cli_outputs_exist_load_and_export(tmp_path, capsys):
    out = tmp_path / "t"
    rc = main(["train", SOURCE, "--data", DATA, "--epochs", "2", "--lr", "0.1", "--out", str(out), "--test", *FAST])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "val top-1" in captured.out and "test top-1" in captured.out
    arch, net, result = load_run(out)
    assert arch.num_classes == 10 and arch.name == SOURCE
    assert result["lr"] == 0.1 and result["steps"] == 8 and 0 <= result["test_top1"] <= 1
    assert result["lr_search"] is None and not (out / "lr-search").exists()
    history = json.loads((out / "history.json").read_text())
    assert [row["epoch"] for row in history["epochs"]] == [1, 2]
    assert history["epochs"][-1]["val_top1"] == result["val_top1"]
    assert history["epochs"][-1]["lr"] < history["epochs"][0]["lr"] <= 0.1  # cosine decay
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (out / "checkpoint.pt").exists()
    # The weights are the trained ones: evaluated again they give the recorded validation top-1.
    data = load_data(DATA, seed=0)
    assert train_module.evaluate(net, data.val) == pytest.approx(result["val_top1"])
    # `nas export DIR` finds the weights by itself
    rc = main(["export", str(out), "--format", "pytorch", "--out", str(tmp_path / "exp"), "--json"])
    exported = json.loads(capsys.readouterr().out)
    assert rc == 0 and exported["weights"] == str(out / "weights.pt")


@pytest.mark.skipif(not TABLE.exists(), reason="latency_tables/pixel1.json not built")
def test_netadapt_takes_the_output_as_source_and_as_weights(tmp_path, capsys):
    out = tmp_path / "t"
    train_source(SOURCE, DATA, out, epochs=1, lr=0.1, recipe=recipe())
    from nas.latency.table import load_table, predict

    arch = Arch.from_dict(json.loads((out / "arch.json").read_text())).replace(resolution=96)
    target = f"{0.9 * predict(arch, load_table(TABLE)).latency_ms:.3f}ms"
    small = ["--resolution", "96", "--device", str(TABLE), "--data", DATA, "--batch-size", "32"]
    small += ["--short-steps", "1", "--long-epochs", "1", "--target-latency", target]
    for i, how in enumerate(([str(out)], [str(out / "arch.json"), "--weights", str(out / "weights.pt")])):
        rc = main(["netadapt", *how, *small, "--out", str(tmp_path / f"na{i}"), "--json"])
        captured = capsys.readouterr()
        assert rc == 0, captured.err
        summary = json.loads(captured.out)
        assert summary["pretrained"] is False, how  # started from the trained weights, not trained again


def _killing_train(after_epoch: int):
    """`train` as nas.training calls it, but the process "dies" right after the checkpoint of `after_epoch`."""
    real = train_module.train

    def killing(model, data, cfg, **kw):
        save = kw["checkpoint"]

        def checkpoint(state):
            save(state)
            if state["epoch"] == after_epoch:
                raise KeyboardInterrupt

        return real(model, data, cfg, **{**kw, "checkpoint": checkpoint})

    return killing


def test_killed_training_resumes_to_the_same_weights(tmp_path, data, monkeypatch, capsys):
    whole = train_source(SOURCE, data, tmp_path / "whole", epochs=3, lr=0.1, recipe=recipe())
    killed = tmp_path / "killed"
    with monkeypatch.context() as m:
        m.setattr(training, "train", _killing_train(2))
        with pytest.raises(KeyboardInterrupt):
            train_source(SOURCE, data, killed, epochs=3, lr=0.1, recipe=recipe())
    assert (killed / "checkpoint.pt").is_file() and not (killed / "result.json").exists()
    assert [row["epoch"] for row in json.loads((killed / "history.json").read_text())["epochs"]] == [1, 2]
    with pytest.raises(NasError, match="already holds a training"):
        train_source(SOURCE, data, killed, epochs=3, lr=0.1, recipe=recipe())
    with pytest.raises(NasError, match=r"other settings.*epochs"):
        train_source(SOURCE, data, killed, epochs=4, lr=0.1, recipe=recipe(), resume=True)
    again = train_source(SOURCE, data, killed, epochs=3, lr=0.1, recipe=recipe(), resume=True)
    assert again.runs[0]["resumed_from_epoch"] == 2 and again.runs[0]["steps"] == whole.runs[0]["steps"]
    a = torch.load(tmp_path / "whole" / "weights.pt", weights_only=True)
    b = torch.load(killed / "weights.pt", weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert again.runs[0]["val_top1"] == whole.runs[0]["val_top1"]
    resumed_history = json.loads((killed / "history.json").read_text())
    assert resumed_history["epochs"] == json.loads((tmp_path / "whole" / "history.json").read_text())["epochs"]
    assert resumed_history["seconds"] == again.runs[0]["seconds"] > 0  # the epochs before the kill count too
    # resuming a finished run returns it without training again
    monkeypatch.setattr(training, "train", lambda *a, **k: pytest.fail("trained again"))
    assert train_source(SOURCE, data, killed, epochs=3, lr=0.1, recipe=recipe(), resume=True).runs == again.runs


def test_corrupt_checkpoint_is_one_line(tmp_path, data, monkeypatch, capsys):
    out = tmp_path / "t"
    with monkeypatch.context() as m:
        m.setattr(training, "train", _killing_train(1))
        with pytest.raises(KeyboardInterrupt):
            train_source(SOURCE, data, out, epochs=2, lr=0.1, recipe=recipe())
    (out / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(NasError, match=r"checkpoint .* is damaged"):
        train_source(SOURCE, data, out, epochs=2, lr=0.1, recipe=recipe(), resume=True)
    rc = main(["train", SOURCE, "--data", DATA, "--epochs", "2", "--lr", "0.1", "--out", str(out), "--resume", *FAST])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("nas: error: checkpoint") and err.count("\n") == 1


def _spy_evaluate(monkeypatch) -> list[torch.Tensor]:
    """Record the images of every split that is evaluated (by the training loop and by nas.training)."""
    seen: list[torch.Tensor] = []
    real = train_module.evaluate

    def spy(model, split, *args, **kwargs):
        seen.append(split.x)
        return real(model, split, *args, **kwargs)

    monkeypatch.setattr(train_module, "evaluate", spy)
    monkeypatch.setattr(training, "evaluate", spy)
    return seen


def test_lr_auto_chooses_on_validation_only(tmp_path, data, monkeypatch):
    seen = _spy_evaluate(monkeypatch)
    run = train_source(SOURCE, data, tmp_path / "t", epochs=1, lr="auto", recipe=recipe())
    assert seen and all(x is data.val.x for x in seen), "only the validation split may be evaluated"
    assert set(run.lr_search) == set(LR_GRID) and run.lr in LR_GRID
    assert run.lr_search[run.lr] == max(run.lr_search.values())
    doc = json.loads((tmp_path / "t" / "lr-search.json").read_text())
    assert doc["chosen"] == run.lr and doc["val_top1"] == {f"{r:g}": a for r, a in run.lr_search.items()}
    assert run.summary["test_top1"] is None and run.runs[0]["test_top1"] is None
    # The chosen rate's probe is the first seed's very run (same seed, rate, epochs): copied, not retrained.
    probe = tmp_path / "t" / "lr-search" / f"lr-{run.lr:g}"
    assert (probe / "weights.pt").read_bytes() == (tmp_path / "t" / "weights.pt").read_bytes()
    # Asked for afterwards, the test figure is added from the saved weights; the test split is read once.
    seen.clear()
    again = train_source(SOURCE, data, tmp_path / "t", epochs=1, lr="auto", recipe=recipe(), resume=True, test=True)
    assert [x is data.test.x for x in seen] == [True] and 0 <= again.runs[0]["test_top1"] <= 1


def test_lr_auto_follows_the_validation_figures(tmp_path, data, monkeypatch):
    val = {0.05: 0.30, 0.1: 0.52, 0.2: None}  # 0.2 "diverged"

    def fake_run(arch, data, cfg, out, *, test, label, tick, probe=False):
        out.mkdir(parents=True, exist_ok=True)
        (out / "history.json").write_text('{"epochs": []}')
        return {
            "seed": cfg.seed,
            "lr": cfg.lr,
            "val_top1": val[cfg.lr] if probe else 0.5,
            "test_top1": None,
            "seconds": 1.0,
        }

    monkeypatch.setattr(training, "_run", fake_run)
    run = train_source(SOURCE, data, tmp_path / "t", epochs=1, lr="auto", seeds=3, recipe=recipe())
    assert run.lr == 0.1 and [r["lr"] for r in run.runs] == [0.1] * 3 and [r["seed"] for r in run.runs] == [0, 1, 2]
    assert run.summary["val_top1"]["se"] == 0.0 and run.summary["val_top1"]["n"] == 3
    val.update({0.05: None, 0.1: None})
    with pytest.raises(NasError, match="diverged at every rate"):
        train_source(SOURCE, data, tmp_path / "u", epochs=1, lr="auto", recipe=recipe())


def test_several_seeds_one_directory_each(tmp_path, data, capsys):
    out = tmp_path / "t"
    run = train_source(SOURCE, data, out, epochs=1, lr=0.05, seeds=2, test=True, recipe=recipe())
    assert [r["seed"] for r in run.runs] == [0, 1]
    for seed in (0, 1):
        load_run(out / f"seed-{seed}")
    summary = json.loads((out / "result.json").read_text())
    vals = [r["test_top1"] for r in run.runs]
    assert summary["test_top1"]["values"] == vals and summary["test_top1"]["n"] == 2
    assert summary["test_top1"]["se"] == pytest.approx(abs(vals[0] - vals[1]) / 2)
    assert (out / "curve.png").is_file() and (out / "arch.json").is_file()
    a = torch.load(out / "seed-0" / "weights.pt", weights_only=True)
    b = torch.load(out / "seed-1" / "weights.pt", weights_only=True)
    assert any(not torch.equal(a[k], b[k]) for k in a), "two seeds trained the same network"
    rc = main(["export", str(out / "seed-1"), "--format", "json", "--out", str(tmp_path / "exp"), "--json"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["weights"] == str(out / "seed-1" / "weights.pt")


BAD = [
    ({"source": "mobilenet_v9"}, ["mobilenet_v9"], "unknown zoo model"),
    ({"data": "npz:/nonexistent/x.npz"}, ["--data", "npz:/nonexistent/x.npz"], "does not exist"),
    ({"data": "imagenet"}, ["--data", "imagenet"], "unknown data kind"),
    ({"epochs": 0}, ["--epochs", "0"], "epochs must be"),
    ({"lr": 5.0}, ["--lr", "5"], "lr must be"),
    ({"lr": 0.0}, ["--lr", "0"], "lr must be"),
    ({"lr": "fast"}, ["--lr", "fast"], "lr must be"),
    ({"seeds": 0}, ["--seeds", "0"], "seeds must be"),
]


@pytest.mark.parametrize(("api", "cli", "message"), BAD, ids=[m + str(i) for i, (_, _, m) in enumerate(BAD)])
def test_bad_input_api_and_cli(tmp_path, capsys, api, cli, message):
    out = tmp_path / "t"
    kwargs = {"source": SOURCE, "data": DATA, "out": out, "epochs": 1, "lr": 0.1, **api}
    source, data_spec = kwargs.pop("source"), kwargs.pop("data")
    with pytest.raises(NasError, match=message):
        train_source(source, data_spec, **kwargs)
    args = ["train", SOURCE, "--data", DATA, "--epochs", "1", "--lr", "0.1", "--out", str(out)]
    if cli[0] == "mobilenet_v9":
        args[1] = cli[0]
    else:
        args += cli
    rc = main(args)
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("nas: error:") and message in err and err.count("\n") == 1
    assert not out.exists(), "a refused run left its output directory behind"


def test_unwritable_or_occupied_out(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(NasError, match="cannot write"):
        train_source(SOURCE, DATA, blocker / "t", epochs=1, lr=0.1)
    rc = main(["train", SOURCE, "--data", DATA, "--lr", "0.1", "--out", str(blocker / "t")])
    assert rc == 2 and capsys.readouterr().err.count("\n") == 1
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    with pytest.raises(NasError, match="not an empty directory"):
        train_source(SOURCE, DATA, occupied, epochs=1, lr=0.1)
    assert sorted(p.name for p in occupied.iterdir()) == ["notes.txt"]


def test_sources_json_file_and_a_train_output(tmp_path, data):
    first = train_source(SOURCE, data, tmp_path / "a", epochs=1, lr=0.1, recipe=recipe())
    for i, source in enumerate((tmp_path / "a" / "arch.json", tmp_path / "a")):
        run = train_source(str(source), data, tmp_path / f"b{i}", epochs=1, lr=0.1, recipe=recipe())
        assert run.arch.hash == first.arch.hash
        # the same seed and recipe from the same spec: the same network (the source's weights are not used)
        assert run.runs[0]["val_top1"] == first.runs[0]["val_top1"]
