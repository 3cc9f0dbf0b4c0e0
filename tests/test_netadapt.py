"""NetAdapt: units, exact pruning, proposals, the loop, history, resume (small nets, a MACs latency model)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from nas import zoo
from nas.arch import Arch, Conv, DepthwiseSeparable, Head, InvertedResidual, Pool
from nas.errors import NasError
from nas.model import build
from nas.netadapt import (
    NetAdaptConfig,
    SpecNet,
    find_units,
    keep_largest,
    load_weights,
    netadapt_loop,
    propose,
    prune,
    set_widths,
    smallest,
)
from nas.netadapt.units import MID

torch.set_num_threads(1)


def macs_ms(arch: Arch) -> float:
    """A stand-in latency model: 1 ms per million multiply-accumulates (monotone in every width)."""
    return arch.macs / 1e6


def spec(arch: Arch) -> SpecNet:
    return SpecNet(arch, latency=macs_ms)


def mnv2(res: int = 64) -> Arch:
    return zoo.get("mobilenet_v2", width=0.35, resolution=res, num_classes=10)


def mixed(num_classes: int = 5) -> Arch:
    """conv stem, a pool, ds blocks (one residual, with SE), ir blocks with SE from mid and from in."""
    return Arch(
        name="mixed",
        resolution=32,
        num_classes=num_classes,
        stem=[Conv(out=16, k=3, s=2, act="hswish"), Pool(out=16, kind="max", k=3, s=1, pad=1)],
        stages=[
            [DepthwiseSeparable(out=16, se=0.25, act="relu"), DepthwiseSeparable(out=24, s=2)],
            [
                InvertedResidual(out=24, mid=72, k=5, se=0.25, act="hswish"),
                InvertedResidual(out=32, mid=96, s=2, se=0.25, se_from="in", se_gate="sigmoid", act="swish"),
                InvertedResidual(out=32, mid=32, k=3),  # no expansion: its mid follows the group
            ],
        ],
        head=Head(blocks=(Conv(out=64, act="hswish"),), hidden=(), dropout=0.0),
    )


def mixed_hidden() -> Arch:
    from nas.arch import Dense

    a = mixed()
    return a.replace(head=Head(blocks=a.head.blocks, hidden=(Dense(out=40),)))


def randomise_bn(net: torch.nn.Module, res: int = 64) -> None:
    """Give BN random affine parameters and running statistics measured on random images, so that the net in
    eval mode is well scaled (no saturated ReLU6) and its output depends on the input."""
    g = torch.Generator().manual_seed(1)
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.weight.data = torch.rand(m.num_features, generator=g) + 0.5
            m.bias.data = torch.randn(m.num_features, generator=g) * 0.1
            m.reset_running_stats()
            m.momentum = None
    net.train()
    with torch.no_grad():
        net(torch.randn(16, 3, res, res, generator=g))
    net.eval()
    if isinstance(getattr(net, "classifier", None), torch.nn.Linear):
        torch.nn.init.normal_(net.classifier.weight, generator=g)


# ---------------------------------------------------------------------------------------------- units


def test_units_of_mobilenet_v2_tie_residual_stages():
    units = find_units(mnv2())
    groups = {u.name: u for u in units.units if u.kind == "out"}
    # stage 3 (four blocks, three residual) is one group; the head conv and the stem are groups of their own
    assert groups["stages[3][0].out"].members == (7, 8, 9, 10)
    assert groups["stem[0].out"].members == (0,)
    assert groups["head.blocks[0].out"].members == (18,)
    # the first block has no expansion (mid == in): no mid unit there, every other ir block has one
    mids = [u.index for u in units.units if u.kind == MID]
    assert 1 not in mids and len(mids) == 16


def test_unsupported_block_types_are_refused():
    with pytest.raises(NasError, match="ghost"):
        find_units(zoo.get("ghostnet_100", resolution=64, num_classes=10))


def test_set_widths_keeps_residual_groups_equal_and_structure():
    a = mnv2()
    units = find_units(a)
    g = units.by_name("stages[3][0].out")
    b = set_widths(a, {g: 16}, units)
    assert b is not None
    assert [b.blocks[i].out for i in g.members] == [16] * 4
    # the residual adds stay residual; the non-residual block after the group does not become one
    for site_a, site_b in zip(a.sites(), b.sites(), strict=True):
        blk_a, blk_b = site_a.block, site_b.block
        if hasattr(blk_a, "has_residual"):
            assert blk_a.has_residual(site_a.x.c) == blk_b.has_residual(site_b.x.c)
            assert blk_a.has_expand(site_a.x.c) == blk_b.has_expand(site_b.x.c)
    # a stem at 8: the first block (no expansion) follows it
    stem = units.by_name("stem[0].out")
    c = set_widths(a, {stem: 8}, units)
    assert c is not None and c.blocks[1].mid == 8
    # an expansion down to its input width would delete the expansion conv: refused
    mid = units.by_name("stages[3][1].mid")
    assert set_widths(a, {mid: 24}, units) is None


def test_accidental_residual_becomes_skip_false():
    a = mnv2()
    units = find_units(a)
    # stage 4 (32 channels) follows stage 3 (24): narrowing it to 24 must not add a skip to its first block
    b = set_widths(a, {units.by_name("stages[4][0].out"): 24}, units)
    assert b is not None
    site = b.sites()[11]
    assert site.x.c == site.block.out == 24 and not site.block.has_residual(site.x.c)


# ---------------------------------------------------------------------------------------------- pruning


@pytest.mark.parametrize("make", [mnv2, mixed, mixed_hidden])
def test_keeping_every_channel_is_the_identity(make):
    a = make()
    net = build(a).eval()
    randomise_bn(net, a.resolution)
    units = find_units(a)
    keep = {u: torch.arange(u.width) for u in units.units}
    net2, a2 = prune(net, a, keep, units)
    assert a2 == a
    x = torch.randn(2, 3, a.resolution, a.resolution)
    with torch.no_grad():
        assert torch.equal(net(x), net2.eval()(x))


def _zero_channels(net, arch, unit, drop: torch.Tensor) -> None:
    """Make channels `drop` of `unit` exactly zero everywhere they flow: the producing convs' filters and BN
    (scale and shift and running mean), and the depthwise conv + BN of blocks that read them without an
    expansion (or of the unit's own block, for an expansion)."""
    from nas.netadapt.pruning import _bn_of, _conv_of, _producers

    units = find_units(arch)
    with torch.no_grad():
        for conv in _producers(net, arch, unit):
            conv.weight[drop] = 0
        owners = [unit.index] if unit.kind == MID else list(unit.members)
        for i in owners:
            mod = net.features[i]
            part = (
                mod.expand
                if unit.kind == MID
                else (mod.project if hasattr(mod, "project") else mod.pw if hasattr(mod, "pw") else mod)
            )
            bn = _bn_of(part)
            if bn is not None:
                bn.weight[drop] = 0
                bn.bias[drop] = 0
        # depthwise layers that carry the channels: the unit's own (mid) or the readers without expansion
        carriers = []
        if unit.kind == MID:
            carriers.append(net.features[unit.index].dw)
        else:
            for i, block in enumerate(arch.blocks):
                if units.in_unit(i) == unit and (
                    isinstance(block, DepthwiseSeparable)
                    or (isinstance(block, InvertedResidual) and units.mid_unit[i] is None)
                ):
                    carriers.append(net.features[i].dw)
        for dw in carriers:
            _conv_of(dw).weight[drop] = 0
            bn = _bn_of(dw)
            bn.weight[drop] = 0
            bn.bias[drop] = 0


@pytest.mark.parametrize(
    "name",
    [
        "stages[1][0].mid",
        "stages[3][0].out",
        "stem[0].out",
        "head.blocks[0].out",
        "stages[6][0].out",
        "stages[5][2].mid",
    ],
)
def test_removing_zeroed_filters_leaves_the_output_unchanged(name):
    a = mnv2()
    net = build(a).eval()
    randomise_bn(net)
    unit = find_units(a).by_name(name)
    width = max(8, unit.width - 8 * max(1, unit.width // 32))
    g = torch.Generator().manual_seed(0)
    drop = torch.randperm(unit.width, generator=g)[: unit.width - width].sort().values
    _zero_channels(net, a, unit, drop)
    x = torch.randn(3, 3, 64, 64, generator=g)
    with torch.no_grad():
        before = net(x)
    assert not torch.allclose(before[0], before[1], atol=1e-2)  # the output depends on the input
    # the zeroed filters have the smallest norms, so keep_largest must choose exactly the others
    keep = keep_largest(net, a, unit, width)
    assert not set(keep.tolist()) & set(drop.tolist())
    net2, _ = prune(net, a, {unit: keep})
    assert sum(p.numel() for p in net2.parameters()) < sum(p.numel() for p in net.parameters())
    with torch.no_grad():
        after = net2.eval()(x)
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)


def test_removing_nonzero_filters_changes_the_output():
    """The exactness test above can fail: pruning live channels does change the output."""
    a = mnv2()
    net = build(a).eval()
    randomise_bn(net)
    unit = find_units(a).by_name("stages[3][0].out")
    x = torch.randn(2, 3, 64, 64)
    net2, _ = prune(net, a, {unit: keep_largest(net, a, unit, 16)})
    with torch.no_grad():
        assert not torch.allclose(net(x), net2.eval()(x), rtol=1e-2, atol=1e-2)


def test_tied_group_keeps_one_channel_set_from_summed_norms():
    a = mnv2()
    net = build(a).eval()
    unit = find_units(a).by_name("stages[3][0].out")
    with torch.no_grad():
        # channel 5 is weak in the first producer but strong in the sum; channel 6 the other way round
        for k, i in enumerate(unit.members):
            w = net.features[i].project[0].weight
            w.fill_(1.0)
            w[5] = 0.0 if k == 0 else 10.0
            w[6] = 3.0 if k == 0 else 0.0
    keep = keep_largest(net, a, unit, 8)
    assert 5 in keep.tolist() and 6 not in keep.tolist()
    net2, a2 = prune(net, a, {unit: keep})
    for i in unit.members:
        assert a2.blocks[i].out == 8
        assert net2.features[i].project[0].weight.shape[0] == 8
        torch.testing.assert_close(net2.features[i].project[0].weight, net.features[i].project[0].weight[keep])


def test_prune_resizes_se_and_hidden_layers():
    a = mixed_hidden()
    net = build(a).eval()
    units = find_units(a)
    keep = {
        units.by_name("stages[1][0].mid"): torch.arange(0, 64, 2),
        units.by_name("head.blocks[0].out"): torch.arange(0, 64, 2),
        units.by_name("stem[0].out"): torch.arange(8),
    }
    net2, a2 = prune(net, a, keep, units)
    assert a2.blocks[4].mid == 32 and a2.blocks[0].out == 8 and a2.blocks[1].out == 8
    assert net2.hidden[0].in_features == 32
    se = net2.features[4].se
    assert se.reduce.in_channels == 32 and se.expand.out_channels == 32 and se.reduce.out_channels == 8
    out = net2.eval()(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 5)


# ---------------------------------------------------------------------------------------------- proposals


def test_proposals_are_widest_multiples_of_8_meeting_the_target():
    a = mnv2()
    lat = macs_ms(a)
    target = lat * 0.97
    props = propose(a, macs_ms, target)
    assert props
    for p in props:
        assert p.width % 8 == 0 and p.width >= 8 and p.width < p.unit.width
        assert p.latency_ms <= target
        wider = p.width + 8
        if wider < p.unit.width:
            b = set_widths(a, {p.unit: wider})
            assert b is None or macs_ms(b) > target
    # units that cannot reach the target alone give no proposal
    proposed = {p.unit.name for p in props}
    silent = [u for u in find_units(a).units if u.name not in proposed]
    assert silent
    for u in silent:
        for w in range(8, u.width, 8):
            b = set_widths(a, {u: w})
            assert b is None or macs_ms(b) > target


def test_smallest_is_below_every_proposal():
    a = mnv2()
    _, floor = smallest(a, macs_ms)
    assert floor < macs_ms(a) * 0.3


# ---------------------------------------------------------------------------------------------- the loop


class SGDTrainer:
    """A real but tiny trainer over fixed random tensors (the loop's contract, without nas.accuracy)."""

    def __init__(self, n: int = 64, classes: int = 10, res: int = 32):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 3, res, res, generator=g)
        self.y = torch.randint(0, classes, (n,), generator=g)
        self.calls: list[str] = []

    def _steps(self, net, steps):
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        net.train()
        for s in range(steps):
            idx = torch.arange(s * 16, s * 16 + 16) % len(self.y)
            loss = torch.nn.functional.cross_entropy(net(self.x[idx]), self.y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        net.eval()

    def pretrain(self, net):
        self.calls.append("pretrain")
        self._steps(net, 2)

    def recalibrate(self, net, batches):
        from nas.accuracy.data import Split
        from nas.netadapt.scoring import recalibrate_bn

        self.calls.append("recalibrate")
        recalibrate_bn(net, Split(self.x, self.y), batches, batch_size=16)

    def short(self, net, steps):
        self.calls.append("short")
        self._steps(net, steps)

    def long(self, net, epochs):
        self.calls.append("long")
        self._steps(net, epochs)

    def accuracy(self, net, split="val"):
        net.eval()
        with torch.no_grad():
            return float((net(self.x).argmax(1) == self.y).float().mean())


def test_netadapt_meets_the_target_and_writes_a_resumable_run(tmp_path):
    a = mixed(num_classes=10)
    l0 = macs_ms(a)
    cfg = NetAdaptConfig(target_ms=0.8 * l0, step=0.1, short_steps=1, long_epochs=1)
    trainer = SGDTrainer()
    messages: list[str] = []
    res = netadapt_loop(spec(a), trainer, cfg, out=tmp_path, log=messages.append)
    assert res.latency_ms <= cfg.target_ms
    assert macs_ms(res.arch) == res.latency_ms
    assert res.pretrained and trainer.calls[0] == "pretrain" and trainer.calls[-1] == "long"
    assert any("training the starting model briefly" in m for m in messages)
    assert len(res.iterations) >= 2  # 20% in steps of 10%
    lats = [it["latency_ms"] for it in res.iterations]
    assert lats == sorted(lats, reverse=True)
    assert all(it["latency_ms"] <= it["target_ms"] for it in res.iterations)
    # residual-tied blocks share their width in every iteration's architecture
    units = find_units(res.arch)
    for u in units.units:
        if u.kind == "out":
            assert len({res.arch.blocks[i].out for i in u.members}) == 1
    hist = json.loads((tmp_path / "history.json").read_text())
    assert hist["final"]["latency_ms"] == res.latency_ms
    assert [it["unit"] for it in hist["iterations"]] == [it["unit"] for it in res.iterations]
    assert (tmp_path / "netadapt.png").stat().st_size > 1000
    # the result loads back as arch + weights (what `nas export arch.json --weights weights.pt` reads)
    arch2 = Arch.from_json((tmp_path / "arch.json").read_text())
    assert arch2 == res.arch
    net2 = build(arch2)
    load_weights(net2, tmp_path / "weights.pt")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(net2.eval()(x), res.net.eval()(x))
    # a second start without --resume is refused; with it, the finished run is returned as is
    with pytest.raises(NasError, match="--resume"):
        netadapt_loop(spec(a), SGDTrainer(), cfg, out=tmp_path)
    again = netadapt_loop(spec(a), SGDTrainer(), cfg, out=tmp_path, resume=True)
    assert again.resumed and again.arch == res.arch


def test_killed_run_resumes_from_the_last_iteration(tmp_path):
    a = mixed(num_classes=10)
    l0 = macs_ms(a)
    cfg = NetAdaptConfig(target_ms=0.8 * l0, step=0.07, short_steps=1, long_epochs=0, metric="accuracy")
    full = netadapt_loop(spec(a), SGDTrainer(), cfg, out=tmp_path / "full")

    class Killed(Exception):
        pass

    class Dies(SGDTrainer):
        def __init__(self):
            super().__init__()
            self.shorts = 0

        def short(self, net, steps):
            self.shorts += 1
            if self.shorts > len(full.iterations[0]["proposals"]) + 1:  # during iteration 2
                raise Killed
            super().short(net, steps)

    with pytest.raises(Killed):
        netadapt_loop(spec(a), Dies(), cfg, out=tmp_path / "cut")
    hist = json.loads((tmp_path / "cut" / "history.json").read_text())
    assert len(hist["iterations"]) == 1 and hist["final"] is None
    trainer = SGDTrainer()
    res = netadapt_loop(spec(a), trainer, cfg, out=tmp_path / "cut", resume=True)
    assert res.resumed and "pretrain" not in trainer.calls
    assert [it["unit"] for it in res.iterations] == [it["unit"] for it in full.iterations]
    assert res.arch == full.arch
    # another configuration cannot resume it
    with pytest.raises(NasError, match="step"):
        netadapt_loop(
            spec(a),
            SGDTrainer(),
            NetAdaptConfig(target_ms=cfg.target_ms, step=0.2),
            out=tmp_path / "cut",
            resume=True,
        )


def test_bad_targets_and_weights(tmp_path):
    a = mnv2(res=32)
    l0 = macs_ms(a)
    with pytest.raises(NasError, match="nothing to do"):
        netadapt_loop(spec(a), SGDTrainer(), NetAdaptConfig(target_ms=l0 * 1.1))
    with pytest.raises(NasError, match=r"smallest latency reachable .* is \d+\.\d+ ms"):
        netadapt_loop(spec(a), SGDTrainer(), NetAdaptConfig(target_ms=l0 * 0.01))
    other = build(zoo.get("mobilenet_v2", width=0.5, resolution=32, num_classes=10))
    bad = tmp_path / "bad.pt"
    torch.save(other.state_dict(), bad)
    with pytest.raises(NasError, match="do not fit"):
        netadapt_loop(spec(a), SGDTrainer(), NetAdaptConfig(target_ms=l0 * 0.9), weights=bad)
    good = tmp_path / "good.pt"
    torch.save(build(a).state_dict(), good)
    trainer = SGDTrainer()
    res = netadapt_loop(
        spec(a), trainer, NetAdaptConfig(target_ms=l0 * 0.95, short_steps=1, long_epochs=0), weights=good
    )
    assert not res.pretrained and "pretrain" not in trainer.calls


def test_winner_by_slope_or_by_accuracy():
    """slope: largest ΔAcc/|ΔLat| (MobileNetV3); accuracy: highest accuracy (the NetAdapt paper)."""
    from nas.netadapt.core import choose
    from nas.netadapt.proposals import Proposal

    units = find_units(mnv2()).units
    # (latency, accuracy): from 10 ms at 0.50: A loses 0.02 for 1 ms (slope −0.02), B 0.03 for 3 ms (−0.01)
    proposals = [Proposal(units[0], 8, 9.0), Proposal(units[1], 8, 7.0)]
    accuracies = {units[0].name: 0.48, units[1].name: 0.47}

    class Fixed:
        def short(self, net, steps):
            pass

        def accuracy(self, net, split="val"):
            return accuracies[net]

    def make(prop):
        return SimpleNamespace(net=prop.unit.name)

    slope = choose(proposals, make, Fixed(), NetAdaptConfig(target_ms=5, metric="slope").resolved(), 1, 10.0, 0.50)
    assert slope[0].unit == units[1] and slope[3] == pytest.approx(-0.01)
    best = choose(proposals, make, Fixed(), NetAdaptConfig(target_ms=5, metric="accuracy").resolved(), 1, 10.0, 0.50)
    assert best[0].unit == units[0] and best[2] == 0.48
    assert [r["unit"] for r in best[4]] == [units[0].name, units[1].name]
