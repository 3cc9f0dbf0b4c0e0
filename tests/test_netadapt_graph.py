"""NetAdapt on a user's own module: torch.fx channel groups, exact pruning, the loop, `file.py:factory` in the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nas.cli import main
from nas.errors import NasError
from nas.netadapt import NetAdaptConfig, netadapt_loop
from nas.netadapt.graph import (
    ChannelGraph,
    TracedNet,
    channel_scores,
    load_factory,
    prune_module,
    rebuild,
    trace,
)

torch.set_num_threads(1)

MODEL_SOURCE = """
import torch
import torch.nn.functional as F
from torch import nn


class SE(nn.Module):
    def __init__(self, c, r):
        super().__init__()
        self.fc1 = nn.Conv2d(c, r, 1)
        self.fc2 = nn.Conv2d(r, c, 1)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(F.relu(self.fc1(F.adaptive_avg_pool2d(x, 1)))))


class Block(nn.Module):
    def __init__(self, c, mid):
        super().__init__()
        self.pw = nn.Sequential(nn.Conv2d(c, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU())
        dw = nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False)
        self.dw = nn.Sequential(dw, nn.BatchNorm2d(mid), nn.ReLU())
        self.se = SE(mid, 8)
        self.pj = nn.Sequential(nn.Conv2d(mid, c, 1, bias=False), nn.BatchNorm2d(c))

    def forward(self, x):
        return x + self.pj(self.se(self.dw(self.pw(x))))


class Net(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6())
        self.b1 = Block(32, 96)
        self.b2 = Block(32, 64)
        self.left = nn.Sequential(nn.Conv2d(32, 48, 1, bias=False), nn.BatchNorm2d(48), nn.ReLU())
        self.right = nn.Sequential(nn.Conv2d(32, 40, 3, padding=1, bias=False), nn.BatchNorm2d(40), nn.ReLU())
        self.head = nn.Sequential(nn.Conv2d(88, 128, 1, bias=False), nn.BatchNorm2d(128), nn.Hardswish())
        self.fc1 = nn.Linear(128, 64)
        self.fc2 = nn.Linear(64, classes)

    def forward(self, x):
        x = self.b2(self.b1(self.stem(x)))
        x = torch.cat([self.left(x), self.right(x)], dim=1)
        x = torch.flatten(F.adaptive_avg_pool2d(self.head(x), 1), 1)
        return self.fc2(F.relu(self.fc1(x)))


def make():
    return Net()


def untraceable():
    class Branchy(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)

        def forward(self, x):
            return self.conv(x) if x.sum() > 0 else x

    return Branchy()
"""

SHAPE = (1, 3, 32, 32)


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    path = tmp_path / "user_model.py"
    path.write_text(MODEL_SOURCE)
    return path


def calibrated(model_file: Path) -> torch.nn.Module:
    torch.manual_seed(0)
    net = load_factory(f"{model_file}:make")()
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features) + 0.5
            m.bias.data = torch.randn(m.num_features) * 0.1
            m.momentum = None
    net.train()
    with torch.no_grad():
        net(torch.randn(16, *SHAPE[1:]))
    return net.eval()


def units_by_name(graph: ChannelGraph) -> dict:
    return {u.name: u for u in graph.units}


def test_trace_finds_tied_groups(model_file):
    graph = trace(calibrated(model_file), SHAPE)
    units = units_by_name(graph)
    assert set(units) == {
        "stem.0.out",
        "b1.pw.0.out",
        "b1.se.fc1.out",
        "b2.pw.0.out",
        "b2.se.fc1.out",
        "left.0.out",
        "right.0.out",
        "head.0.out",
        "fc1.out",
    }
    producers = {name: graph.producers[u.index] for name, u in units.items()}
    # residual adds tie the stem to both projections; the SE gate ties its expand conv to the block's mid channels
    assert sorted(producers["stem.0.out"]) == ["b1.pj.0", "b2.pj.0", "stem.0"]
    assert sorted(producers["b1.pw.0.out"]) == ["b1.pw.0", "b1.se.fc2"]
    # the concatenation keeps its two halves as separate units; the classifier's output and the input are fixed
    assert units["left.0.out"].width == 48 and units["right.0.out"].width == 40
    assert "fc2.out" not in units
    assert isinstance(graph.graph.number_of_nodes(), int) and graph.graph.number_of_nodes() > 20


def _zero(net, graph: ChannelGraph, unit, drop: torch.Tensor) -> None:
    """Make channels `drop` of the unit exactly zero: producers' filters, every BN and depthwise slice on them."""
    kept = torch.tensor(sorted(set(range(unit.width)) - set(drop.tolist())))
    with torch.no_grad():
        for use in graph.uses:
            keep_idx = graph.indices(use.layout, {unit.index: kept})
            if use.role == "in" or keep_idx is None:
                continue
            mask = torch.ones(graph.width(use.layout), dtype=torch.bool)
            mask[keep_idx] = False  # the dropped channels' positions inside this layout
            mod = net.get_submodule(use.module)
            mod.weight[mask] = 0
            if mod.bias is not None:
                mod.bias[mask] = 0


@pytest.mark.parametrize("name", ["stem.0.out", "b1.pw.0.out", "left.0.out", "right.0.out", "head.0.out", "fc1.out"])
def test_removing_zeroed_channels_keeps_the_output(model_file, name):
    net = calibrated(model_file)
    graph = trace(net, SHAPE)
    unit = units_by_name(graph)[name]
    drop = torch.arange(0, unit.width, 3)[: unit.width - 8]
    _zero(net, graph, unit, drop)
    x = torch.randn(3, *SHAPE[1:])
    with torch.no_grad():
        before = net(x)
    assert not torch.allclose(before[0], before[1], atol=1e-3)
    keep = torch.topk(channel_scores(net, graph, unit), unit.width - len(drop)).indices.sort().values
    assert not set(keep.tolist()) & set(drop.tolist())
    pruned, graph2 = prune_module(net, graph, {unit: keep})
    assert units_by_name(graph2)[name].width == len(keep)
    with torch.no_grad():
        torch.testing.assert_close(pruned.eval()(x), before, rtol=1e-5, atol=1e-5)


def test_rebuild_from_kept_channels_loads_the_weights(model_file):
    net = calibrated(model_file)
    graph = trace(net, SHAPE)
    units = units_by_name(graph)
    keep = {units["left.0.out"]: torch.arange(0, 48, 2), units["stem.0.out"]: torch.arange(16)}
    pruned, _ = prune_module(net, graph, keep)
    kept = {u.name: k.tolist() for u, k in keep.items()}
    fresh = rebuild(load_factory(f"{model_file}:make")(), json.loads(json.dumps(kept)), SHAPE)
    fresh.load_state_dict(pruned.state_dict())
    x = torch.randn(2, *SHAPE[1:])
    with torch.no_grad():
        torch.testing.assert_close(fresh.eval()(x), pruned.eval()(x))


def _macs_latency(graph: ChannelGraph, overrides=None) -> float:
    total = 0.0
    for op in graph.ops:
        cin, cout = graph.width(op.in_layout, overrides), graph.width(op.out_layout, overrides)
        per_out = 1 if op.depthwise else cin
        total += cout * per_out * op.k * op.k * op.h * op.w / op.s**2
    return total / 1e5


class Trainer:
    def __init__(self):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(48, *SHAPE[1:], generator=g)
        self.y = torch.randint(0, 10, (48,), generator=g)

    def _steps(self, net, steps):
        opt = torch.optim.SGD(net.parameters(), lr=0.01)
        net.train()
        for s in range(steps):
            idx = torch.arange(s * 16, s * 16 + 16) % 48
            loss = torch.nn.functional.cross_entropy(net(self.x[idx]), self.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()

    def pretrain(self, net):
        self._steps(net, 1)

    def short(self, net, steps):
        self._steps(net, steps)

    def long(self, net, epochs):
        self._steps(net, epochs)

    def accuracy(self, net, split="val"):
        with torch.no_grad():
            return float((net.eval()(self.x).argmax(1) == self.y).float().mean())


def test_adapt_module_meets_the_target(model_file):
    net = calibrated(model_file)
    l0 = _macs_latency(trace(net, SHAPE))
    cfg = NetAdaptConfig(target_ms=0.7 * l0, step=0.1, short_steps=1, long_epochs=1)
    res = netadapt_loop(TracedNet(net, trace(net, SHAPE), latency=_macs_latency), Trainer(), cfg)
    assert res.latency_ms <= cfg.target_ms and len(res.iterations) >= 2
    assert res.net(torch.randn(2, *SHAPE[1:])).shape == (2, 10)
    # the kept channels, applied to a fresh module, give the adapted structure
    kept = res.final.kept_lists()
    fresh = rebuild(load_factory(f"{model_file}:make")(), kept, SHAPE)
    fresh.load_state_dict(res.net.state_dict())
    for name, unit in units_by_name(res.final.graph).items():
        assert len(kept[name]) == unit.width


def test_bad_user_models(model_file, tmp_path):
    with pytest.raises(NasError, match="cannot trace"):
        trace(load_factory(f"{model_file}:untraceable")(), SHAPE)
    with pytest.raises(NasError, match="has no function"):
        load_factory(f"{model_file}:nothing")
    with pytest.raises(NasError, match="does not exist"):
        load_factory(f"{tmp_path / 'missing.py'}:make")


TABLE = Path(__file__).resolve().parents[1] / "latency_tables" / "pixel1.json"


@pytest.mark.skipif(not TABLE.exists(), reason="latency_tables/pixel1.json not built")
def test_cli_adapts_a_user_model(model_file, tmp_path, capsys):
    from nas.latency.table import load_table
    from nas.netadapt.graph import module_latency

    l0 = module_latency(trace(load_factory(f"{model_file}:make")(), (1, 3, 64, 64)), load_table(TABLE))
    out = tmp_path / "run"
    common = [
        "netadapt",
        f"{model_file}:make",
        "--resolution",
        "64",
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
        "0",
        "--step",
        "0.1",
    ]
    rc = main([*common, "--target-latency", f"{0.85 * l0:.3f}", "--out", str(out), "--json"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["latency_ms"] <= 0.85 * l0 + 1e-3 and summary["arch"] is None and summary["pretrained"]
    kept = json.loads((out / "channels.json").read_text())
    fresh = rebuild(load_factory(f"{model_file}:make")(), kept["kept"], tuple(kept["input_shape"]))
    fresh.load_state_dict(torch.load(out / "weights.pt", weights_only=True))
    # weights that do not fit the user's model: exit 2, one line
    wrong = tmp_path / "wrong.pt"
    torch.save({"stem.0.weight": torch.zeros(1)}, wrong)
    rc = main(
        [
            *common,
            "--target-latency",
            f"{0.85 * l0:.3f}",
            "--weights",
            str(wrong),
            "--out",
            str(tmp_path / "w"),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and "do not fit" in err and err.count("\n") == 1
    rc = main([*common, "--target-latency", f"{2 * l0:.3f}", "--out", str(tmp_path / "n")])
    assert rc == 2 and "nothing to do" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["shufflenet_v2", "ghostnet_100"])
def test_blocks_the_spec_route_refuses_can_be_pruned_as_modules(name):
    """Channel splits, shuffles and ghost modules fix their channels; the convs inside the branches still prune."""
    from nas import zoo
    from nas.model import build

    torch.manual_seed(0)
    net = build(zoo.get(name, resolution=32, num_classes=10)).eval()
    graph = trace(net, SHAPE)
    assert graph.units
    x = torch.randn(2, *SHAPE[1:])
    unit = max(graph.units, key=lambda u: u.width)
    same, _ = prune_module(net, graph, {unit: torch.arange(unit.width)})
    with torch.no_grad():
        assert torch.equal(same.eval()(x), net(x))
    subject = TracedNet(net, graph, latency=lambda g, o: 0.0)
    smaller, graph2 = prune_module(net, graph, {unit: subject.keep(unit, 8)})
    assert units_by_name(graph2)[unit.name].width == 8
    assert smaller.eval()(x).shape == (2, 10)
