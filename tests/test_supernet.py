"""The weight-sharing supernet (nas.supernet): exact sharing, recalibration, run directory, evaluator, extraction."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from nas.accuracy import build_evaluator, load_data
from nas.errors import NasError
from nas.space import load_space
from nas.supernet.extract import extract_subnet
from nas.supernet.model import Supernet, check_space
from nas.supernet.train import SupernetConfig, load_run, recalibrate, train_supernet

TINY = """
name: tiny
divisor: 8
stem:
  - {type: conv, out: 8, k: 3, s: 2, act: hswish}
block:
  mbconv: {se_from: mid, se_gate: hsigmoid, se_act: relu}
stages:
  - blocks:
      - {type: ds, out: 8, k: 3, s: 1, act: relu}
  - {out: 16, n: 2, stride: 2, op: mbconv, kernel: [3, 5], expansion: [2, 3], se: [0, 0.25], act: [relu, hswish],
     layers: [-1, 0], width: [0.5, 1.0]}
  - {out: 24, n: 1, stride: 2, op: mbconv, kernel: [3, 5], expansion: [2, 3], se: [0, 0.25], act: [relu, hswish],
     layers: [0, 1], width: [0.5, 1.0]}
head:
  blocks:
    - {type: conv, out: 32, k: 1, act: hswish}
  hidden:
    - {out: 32, act: hswish}
  dropout: 0.1
"""
DATA = "synthetic:96,20"
FAST = SupernetConfig(epochs=2, batch_size=16, max_steps=2, calib_images=32, warmup_epochs=1)


@pytest.fixture(scope="module")
def tiny_space(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("space") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def data():
    return load_data(DATA, seed=0)


@pytest.fixture(scope="module")
def trained(tiny_space: Path, data, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sn") / "run"
    train_supernet(str(tiny_space), data, out, FAST, data_spec=DATA)
    return out


def _scrambled(space_path: Path) -> Supernet:
    """A supernet with random weights, BN statistics and kernel transforms, so that slicing mistakes show."""
    torch.manual_seed(0)
    net = Supernet(load_space(space_path), 10, 32)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.1)
        for p in net.transforms.values():
            p.add_(torch.randn_like(p) * 0.1)
    return net.eval()


def test_subnet_inside_and_extracted_agree(tiny_space: Path) -> None:
    net = _scrambled(tiny_space)
    x = torch.randn(4, 3, 32, 32)
    rng = random.Random(1)
    archs = [net.largest(), net.smallest()] + [net.random_subnet(rng) for _ in range(6)]
    assert any(b.k == 3 for a in archs for b in a.stages[1]), "no 3×3 subnet drawn: the kernel transform is untested"
    for arch in archs:
        inside = net(x, arch)
        alone = net.extract(arch)
        assert not alone.training
        diff = (inside - alone(x)).abs().max().item()
        assert diff <= 1e-5, (arch.name, diff)


def test_largest_subnet_is_the_whole_supernet(tiny_space: Path) -> None:
    net = _scrambled(tiny_space)
    largest = net.largest()
    assert largest.blocks == net.max_arch.blocks
    alone = net.extract(largest)
    shared = net.net.state_dict()
    mine = alone.state_dict()
    assert set(mine) == set(shared)
    for key, value in mine.items():
        assert torch.equal(value, shared[key]), key
    transforms = sum(p.numel() for p in net.transforms.parameters())
    assert sum(p.numel() for p in alone.parameters()) == sum(p.numel() for p in net.parameters()) - transforms


def test_recalibration_changes_only_batchnorm_buffers(tiny_space: Path, data) -> None:
    net = _scrambled(tiny_space)
    arch = net.random_subnet(random.Random(5))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    bn_buffers = {
        f"{name}.{b}" for name, m in net.named_modules() if isinstance(m, nn.BatchNorm2d)
        for b in ("running_mean", "running_var", "num_batches_tracked")
    }
    recalibrate(net, arch, data.train.x[:40])
    after = net.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed, "recalibration changed nothing"
    assert changed <= bn_buffers, sorted(changed - bn_buffers)[:3]
    assert not net.training


def test_sort_channels_keeps_the_largest_subnet_function(tiny_space: Path) -> None:
    net = _scrambled(tiny_space).double()
    x = torch.randn(3, 3, 32, 32, dtype=torch.float64)
    before = net(x)
    smallest_before = net(x, net.smallest())
    net.sort_channels()
    assert (net(x) - before).abs().max().item() < 1e-9
    assert (net(x, net.smallest()) - smallest_before).abs().max().item() > 1e-6  # the slices did change


def test_spaces_that_do_not_fit_are_named() -> None:
    check_space(load_space("mobilenetv3"))
    with pytest.raises(NasError, match=r"stage0\.op"):
        check_space(load_space("mnasnet"))
    with pytest.raises(NasError, match=r"stage0\.layer0\.op"):
        check_space(load_space("fbnet"))


def test_training_writes_a_run_and_a_killed_run_resumes_exactly(tiny_space: Path, data, tmp_path: Path) -> None:
    whole = train_supernet(str(tiny_space), data, tmp_path / "whole", FAST)
    assert [e["epoch"] for e in whole.log] == [1, 2]
    assert [e["phase"] for e in whole.log] == ["largest", "sandwich"]
    for name in ("supernet.json", "checkpoint.pt", "log.json", "curves.png"):
        assert (tmp_path / "whole" / name).is_file()
    log = json.loads((tmp_path / "whole" / "log.json").read_text())
    assert {"loss", "val_largest", "val_smallest", "val_random"} <= set(log[-1])

    calls = []

    def kill(epoch: int, epochs: int, step: int, steps: int, loss: float) -> None:
        calls.append(epoch)
        if epoch == 1:  # in the second epoch, after the first one was checkpointed
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_supernet(str(tiny_space), data, tmp_path / "killed", FAST, progress=kill)
    assert load_run(tmp_path / "killed").epoch == 1
    resumed = train_supernet(str(tiny_space), data, tmp_path / "killed", FAST, resume=True)
    assert resumed.epoch == 2 and [e["epoch"] for e in resumed.log] == [1, 2]
    a, b = whole.supernet.state_dict(), resumed.supernet.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def _nas(*args: str) -> subprocess.CompletedProcess:
    """The command line in a fresh process, as a user runs it."""
    code = "import sys; from nas.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("damage", ["corrupt", "foreign"])
def test_corrupt_or_foreign_checkpoint_is_one_line_and_touches_nothing(trained: Path, tmp_path: Path,
                                                                       damage: str) -> None:
    run = tmp_path / "run"
    run.mkdir()
    for f in trained.iterdir():
        (run / f.name).write_bytes(f.read_bytes())
    if damage == "corrupt":
        (run / "checkpoint.pt").write_bytes(b"not a checkpoint" * 10)
    else:
        torch.save({"conv.weight": torch.zeros(3)}, run / "checkpoint.pt")
    snapshot = {f.name: f.read_bytes() for f in run.iterdir()}
    out = tmp_path / "extracted"
    for args in (
        ["supernet", "train", "--out", str(run), "--resume"],
        ["supernet", "extract", str(run), "--arch", "largest", "--out", str(out)],
    ):
        res = _nas(*args)
        assert res.returncode == 2, res.stderr
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("nas: error:") and "checkpoint" in lines[0], res.stderr
    assert {f.name: f.read_bytes() for f in run.iterdir()} == snapshot
    assert not out.exists()


def test_train_refuses_a_space_that_does_not_fit_and_leaves_nothing(tmp_path: Path) -> None:
    res = _nas("supernet", "train", "--space", "mnasnet", "--data", DATA, "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "stage0.op" in res.stderr
    assert not (tmp_path / "x").exists()


def test_train_refuses_to_overwrite_and_mismatched_resume(trained: Path, tmp_path: Path) -> None:
    res = _nas("supernet", "train", "--out", str(trained), "--data", DATA)
    assert res.returncode == 2 and "--resume" in res.stderr
    res = _nas("supernet", "train", "--out", str(trained), "--resume", "--space", "mnasnet")
    assert res.returncode == 2 and "mnasnet" in res.stderr and res.stderr.count("\n") == 1


def test_supernet_evaluator_reads_and_checks_space_and_data(trained: Path, tiny_space: Path, data) -> None:
    ev = build_evaluator(f"supernet:{trained}", data, space=str(tiny_space), seed=0,
                         options={"calib_images": 32, "val_images": 0})
    assert ev.resolution == 32 and "supernet" in ev.metric_label
    net = load_run(trained).supernet
    arch = net.random_subnet(random.Random(2)).replace(resolution=224, num_classes=1000)
    result = ev(arch)
    assert 0 <= result.accuracy <= 1 and result.extra["val_images"] == len(data.val)
    again = build_evaluator(f"supernet:{trained}", data, space=str(tiny_space), seed=0,
                            options={"calib_images": 32, "val_images": 0})
    assert again(arch).accuracy == result.accuracy  # a fresh read: recalibration is deterministic
    assert ev(arch).extra["cached"] and not result.extra["cached"]
    assert isinstance(ev.default_trials, int) and ev.default_trials >= 1
    with pytest.raises(NasError, match="trained on space 'tiny'"):
        build_evaluator(f"supernet:{trained}", data, space="mobilenetv3")
    with pytest.raises(NasError, match="trained on synthetic:96,20"):
        build_evaluator(f"supernet:{trained}", load_data("synthetic:100,20"), space=str(tiny_space))
    with pytest.raises(NasError, match="not one of the supernet evaluator's"):
        build_evaluator(f"supernet:{trained}", data, space=str(tiny_space), options={"epochs": 1})
    with pytest.raises(NasError, match="is not a supernet run directory"):
        build_evaluator(f"supernet:{tiny_space.parent}", data, space=str(tiny_space))


def test_search_with_the_supernet_evaluator(trained: Path, tiny_space: Path, tmp_path: Path) -> None:
    from nas.accuracy.evaluator import data_seed
    from nas.search import SearchConfig, search

    # The search's seed (3) seeds its sampler; the data split stays the supernet's (seed 0), or the reads would be
    # refused as another split.
    assert data_seed(f"supernet:{trained}", 3) == 0 and data_seed("train", 3) == 3
    assert data_seed(f"supernet:{tmp_path / 'none'}", 3) == 3
    cfg = SearchConfig(target_latency="5ms", device="pixel", space=str(tiny_space), evaluator=f"supernet:{trained}",
                       data=DATA, trials=6, window=None, objective="pareto", out_dir=str(tmp_path), name="s",
                       evaluator_options={"calib_images": 32}, seed=3)
    result = search(cfg)
    assert result.trials == 6 and result.pareto
    assert all(0 <= r.accuracy <= 1 for r in result.pareto)


def test_extract_gives_a_model_that_load_export_and_netadapt_take(trained: Path, tmp_path: Path) -> None:
    import nas
    from nas.model import build
    from nas.netadapt.core import load_weights
    from nas.sources import resolve

    out = tmp_path / "sub"
    arch_file = tmp_path / "arch.json"
    run = load_run(trained)
    arch_file.write_text(run.supernet.random_subnet(random.Random(3)).replace(resolution=224, num_classes=1000)
                         .to_json())
    res = _nas("supernet", "extract", str(trained), "--arch", str(arch_file), "--out", str(out), "--json")
    assert res.returncode == 0, res.stderr
    record = json.loads(res.stdout)
    assert 0 <= record["inherited_val_top1"] <= 1
    arch, weights = resolve(str(out))
    assert weights == out / "weights.pt" and arch.num_classes == 10 and arch.resolution == 32
    model = nas.load(arch, str(weights)).eval()
    fresh = build(arch)
    load_weights(fresh, weights)  # what `nas netadapt --weights` does
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(model(x), fresh.eval()(x))
    res = _nas("export", str(out), "--format", "onnx", "--out", str(tmp_path / "onnx"))
    assert res.returncode == 0, res.stderr
    assert list((tmp_path / "onnx").glob("*.onnx"))


def test_extract_with_finetuning(trained: Path, tmp_path: Path, data) -> None:
    record = extract_subnet(trained, "smallest", tmp_path / "ft", finetune_epochs=1, data=data)
    assert record["finetuned_val_top1"] is not None
    assert json.loads((tmp_path / "ft" / "history.json").read_text())["finetune_epochs"] == 1


def test_data_first_n_keeps_the_first_training_images(tmp_path: Path) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    np.savez(path, x_train=rng.integers(0, 255, (60, 3, 8, 8), dtype=np.uint8), y_train=np.arange(60) % 3,
             x_test=rng.integers(0, 255, (9, 3, 8, 8), dtype=np.uint8), y_test=np.arange(9) % 3)
    full = load_data(f"npz:{path}")
    first = load_data(f"npz:{path}#first=30")
    assert len(first.train) + len(first.val) == 30 and len(full.train) + len(full.val) == 60
    assert len(first.test) == 9 and first.name.endswith("#first=30")
    with pytest.raises(NasError, match="#first=N"):
        load_data(f"npz:{path}#last=3")


def test_accuracy_predictor_fits_reads_and_serves_a_search(trained: Path, tiny_space: Path, tmp_path: Path,
                                                            data) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained, run)
    with pytest.raises(NasError, match="no accuracy predictor"):
        build_evaluator(f"supernet-predictor:{run}", data, space=str(tiny_space))
    res = _nas("supernet", "predictor", str(run), "--samples", "12", "--json")
    assert res.returncode == 0, res.stderr
    info = json.loads(res.stdout)
    assert info["samples"] == 12 and info["holdout"]["n"] == 2
    ev = build_evaluator(f"supernet-predictor:{run}", data, space=str(tiny_space))
    # A search's own seed does not reseed the reads the predictor was fitted on.
    assert build_evaluator(f"supernet-predictor:{run}", data, space=str(tiny_space), seed=3).config.seed == 0
    reader = build_evaluator(f"supernet:{run}", data, space=str(tiny_space))
    net = load_run(run).supernet
    arch = net.random_subnet(random.Random(9))
    assert 0 <= ev(arch).accuracy <= 1 and ev(arch).extra["predicted"] and "predicted" in ev.metric_label
    del reader
    # A predictor of another epoch is refused.
    meta = json.loads((run / "predictor.json").read_text())
    meta["key"]["epoch"] += 1
    (run / "predictor.json").write_text(json.dumps(meta))
    with pytest.raises(NasError, match="fitted on other reads"):
        build_evaluator(f"supernet-predictor:{run}", data, space=str(tiny_space))


def test_predictor_encoding_recovers_a_known_accuracy_law(tiny_space: Path) -> None:
    """Fitted on subnets whose 'accuracy' follows a known law of their choices, the ridge model ranks new ones
    by it: the stage encoding sees depth, width, kernel, expansion, SE and activation."""
    from nas.latency.validate import kendall_tau
    from nas.supernet.predictor import Predictor, _fit, elastic_stages, stage_features

    net = Supernet(load_space(tiny_space), 10, 32)
    stages = elastic_stages(net)
    assert stages == [1, 2]

    def law(arch) -> float:
        s1, s2 = arch.stages[1], arch.stages[2]
        return (0.3 + 0.05 * len(s1) + 0.002 * s2[0].out + 0.03 * (s1[0].k == 5) + 0.02 * (s2[0].se > 0)
                + 0.01 * (s2[0].act == "hswish") + 0.001 * s1[0].mid)

    rng = random.Random(0)
    train_archs = [net.random_subnet(rng) for _ in range(60)]
    vocab, w = _fit([stage_features(a, stages) for a in train_archs], [law(a) for a in train_archs])
    predict = Predictor({"vocab": vocab, "weights": w.tolist(), "stages": stages})
    test_archs = [net.random_subnet(rng) for _ in range(20)]
    assert kendall_tau([predict(a) for a in test_archs], [law(a) for a in test_archs]) > 0.8
