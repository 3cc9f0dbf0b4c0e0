"""NetAdapt's one loop: the API's checks (the CLI's bad values), resume of both routes from torn files, the
chance-accuracy warning, adaptive-BN scoring, and proposals on a table that must time what it lacks."""

from __future__ import annotations

import json

import pytest
import torch
from test_netadapt import SGDTrainer, macs_ms, mixed
from test_netadapt_graph import MODEL_SOURCE, SHAPE, _macs_latency, calibrated

from nas import zoo
from nas.arch import Arch
from nas.errors import NasError
from nas.netadapt import NetAdaptConfig, SpecNet, netadapt, netadapt_loop, propose, propose_units
from nas.netadapt.graph import TracedNet, load_factory, rebuild, trace
from nas.netadapt.scoring import recalibrate_bn, val_metrics

torch.set_num_threads(1)


def spec(arch: Arch) -> SpecNet:
    return SpecNet(arch, latency=macs_ms)


# ---------------------------------------------------------------------------------------------- the API's checks


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (dict(target_ms=-5), "target latency must be above 0"),
        (dict(target_ms=float("inf")), "target latency must be above 0"),
        (dict(target_ms=3, step=2), "--step"),
        (dict(target_ms=3, decay=0), "--decay"),
        (dict(target_ms=3, preset="mobilenetv3", step=0.1), "--preset mobilenetv3 sets"),
        (dict(target_ms=3, preset="fast"), "unknown preset"),
        (dict(target_ms=3, score="guess"), "--score"),
        (dict(target_ms=3, score="fine-tune", short_steps=0), "--short-steps"),
        (dict(target_ms=3, short_steps=-1), "--short-steps"),
        (dict(target_ms=3, bn_batches=0), "--bn-batches"),
        (dict(target_ms=3, metric="best"), "--metric"),
        (dict(target_ms=3, seed=-1), "--seed"),
        (dict(target_ms=3, batch_size=1), "--batch-size"),
        (dict(target_ms=3, pretrain_epochs=0), "--pretrain-epochs"),
        (dict(target_ms=3, train_resolution=100000), "--train-resolution"),
    ],
)
def test_the_api_refuses_what_the_cli_refuses(tmp_path, config, message):
    with pytest.raises(NasError, match=message):
        netadapt("mobilenet_v2", NetAdaptConfig(**config), data="synthetic:40,20", out=tmp_path / "r")
    assert not (tmp_path / "r").exists()


def test_presets_and_defaults_resolve_in_the_config():
    c = NetAdaptConfig(target_ms=3, preset="mobilenetv3").resolved()
    assert (c.step, c.decay) == (0.01, 1.0)
    assert NetAdaptConfig(target_ms=3, score="fine-tune").resolved().short_steps == 100
    assert NetAdaptConfig(target_ms=3, score="adaptive-bn").resolved().short_steps == 0


def test_refused_runs_leave_no_output_directory(tmp_path):
    for target in (1e6, 1e-6):  # nothing to do; unreachable
        with pytest.raises(NasError):
            netadapt("mobilenet_v2", NetAdaptConfig(target_ms=target), data="synthetic:40,20", out=tmp_path / "r")
        assert not (tmp_path / "r").exists()
    wrong = tmp_path / "wrong.pt"
    torch.save({"x": torch.zeros(1)}, wrong)
    arch = zoo.get("mobilenet_v2", width=0.35, resolution=32, num_classes=10)
    with pytest.raises(NasError, match="do not fit"):
        netadapt_loop(spec(arch), SGDTrainer(), NetAdaptConfig(target_ms=macs_ms(arch) * 0.9), weights=wrong,
                      out=tmp_path / "w")  # fmt: skip
    assert not (tmp_path / "w").exists()


# ---------------------------------------------------------------------------------------------- resume


class Killed(Exception):
    pass


def dies_after(shorts: int):
    class Dies(SGDTrainer):
        def __init__(self):
            super().__init__()
            self.n = 0

        def short(self, net, steps):
            self.n += 1
            if self.n > shorts:
                raise Killed
            super().short(net, steps)

    return Dies()


def test_torn_history_and_journal_recover(tmp_path):
    a = mixed(num_classes=10)
    cfg = NetAdaptConfig(target_ms=0.8 * macs_ms(a), step=0.07, short_steps=1, long_epochs=0, metric="accuracy")
    full = netadapt_loop(spec(a), SGDTrainer(), cfg, out=tmp_path / "full")
    assert len(full.iterations) >= 2
    with pytest.raises(Killed):
        netadapt_loop(spec(a), dies_after(len(full.iterations[0]["proposals"]) + 1), cfg, out=tmp_path / "cut")
    cut = tmp_path / "cut"
    text = (cut / "history.json").read_text()
    (cut / "history.json").write_text(text[: len(text) // 2])  # torn
    with open(cut / "journal.jsonl", "a") as f:
        f.write('{"iteration": {"iteration": 2, "unit": "sta')  # a write cut short
    messages: list[str] = []
    res = netadapt_loop(spec(a), SGDTrainer(), cfg, out=cut, resume=True, log=messages.append)
    assert any("rebuilt from journal.jsonl (1 iterations)" in m for m in messages)
    assert any("dropped a torn last line" in m for m in messages)
    assert [it["unit"] for it in res.iterations] == [it["unit"] for it in full.iterations]
    assert res.arch == full.arch
    assert json.loads((cut / "history.json").read_text())["final"]["latency_ms"] == res.latency_ms


def test_lost_checkpoint_drops_its_iteration(tmp_path):
    a = mixed(num_classes=10)
    cfg = NetAdaptConfig(target_ms=0.8 * macs_ms(a), step=0.07, short_steps=1, long_epochs=0, metric="accuracy")
    full = netadapt_loop(spec(a), SGDTrainer(), cfg, out=tmp_path / "full")
    with pytest.raises(Killed):
        netadapt_loop(spec(a), dies_after(len(full.iterations[0]["proposals"]) + 1), cfg, out=tmp_path / "cut")
    (tmp_path / "cut" / "checkpoints" / "iter_001.pt").write_bytes(b"torn")
    messages: list[str] = []
    res = netadapt_loop(spec(a), SGDTrainer(), cfg, out=tmp_path / "cut", resume=True, log=messages.append)
    assert any("dropped iteration 1" in m for m in messages)
    assert res.arch == full.arch and len(res.iterations) == len(full.iterations)


def test_the_module_route_resumes_and_is_seeded(tmp_path):
    from test_netadapt_graph import Trainer

    path = tmp_path / "user_model.py"
    path.write_text(MODEL_SOURCE)

    def start():
        net = calibrated(path)
        return TracedNet(net, trace(net, SHAPE), latency=_macs_latency)

    l0 = _macs_latency(trace(calibrated(path), SHAPE))
    cfg = NetAdaptConfig(target_ms=0.7 * l0, step=0.1, short_steps=1, long_epochs=1)
    full = netadapt_loop(start(), Trainer(), cfg, out=tmp_path / "full")
    again = netadapt_loop(start(), Trainer(), cfg)
    assert again.widths() == full.widths()
    x = torch.randn(2, *SHAPE[1:])
    with torch.no_grad():  # seeded: the same weights after the long fine-tune as well
        torch.testing.assert_close(again.net.eval()(x), full.net.eval()(x))

    class Dies(Trainer):
        n = 0

        def short(self, net, steps):
            Dies.n += 1
            if Dies.n > len(full.iterations[0]["proposals"]) + 1:
                raise Killed
            super().short(net, steps)

    with pytest.raises(Killed):
        netadapt_loop(start(), Dies(), cfg, out=tmp_path / "cut")
    res = netadapt_loop(start(), Trainer(), cfg, out=tmp_path / "cut", resume=True)
    assert res.resumed and res.widths() == full.widths()
    assert res.final.kept_lists() == full.final.kept_lists()
    channels = json.loads((tmp_path / "cut" / "channels.json").read_text())
    assert channels["kept"] == full.final.kept_lists()
    assert not hasattr(res.net, "kept_idx")
    rebuilt = rebuild(load_factory(f"{path}:make")(), channels["kept"], SHAPE)
    rebuilt.load_state_dict(torch.load(tmp_path / "cut" / "weights.pt", weights_only=True))


# ---------------------------------------------------------------------------------------------- scoring


def test_chance_accuracy_is_reported():
    class AtChance(SGDTrainer):
        num_classes = 10

        def accuracy(self, net, split="val"):
            return 0.1

    a = mixed(num_classes=10)
    res = netadapt_loop(spec(a), AtChance(), NetAdaptConfig(target_ms=0.9 * macs_ms(a), short_steps=1, long_epochs=0))
    assert res.warnings and "chance" in res.warnings[0]
    good = netadapt_loop(spec(a), SGDTrainer(), NetAdaptConfig(target_ms=0.9 * macs_ms(a), short_steps=1,
                                                               long_epochs=0))  # fmt: skip
    assert good.warnings == []  # the plain trainer says nothing about its classes


def test_adaptive_bn_recalibrates_without_a_gradient_step():
    from nas.accuracy.data import Split
    from nas.model import build

    torch.manual_seed(0)
    net = build(zoo.get("mobilenet_v2", width=0.35, resolution=32, num_classes=10))
    x, y = torch.randn(64, 3, 32, 32) * 3 + 1, torch.randint(0, 10, (64,))
    weights = {k: v.clone() for k, v in net.state_dict().items() if "running" not in k and "num_batches" not in k}
    recalibrate_bn(net, Split(x, y), 4, batch_size=16)
    state = net.state_dict()
    assert all(torch.equal(state[k], v) for k, v in weights.items())
    first = next(m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d))
    # the stem's BN statistics are those of its conv's output on these images, not the fresh 0/1
    conv = net.features[0][0]
    with torch.no_grad():
        out = conv(x)
    torch.testing.assert_close(first.running_mean, out.mean((0, 2, 3)), atol=0.05, rtol=0.05)
    assert first.momentum == 0.1 and not net.training
    top1, loss = val_metrics(net, Split(x, y))
    assert 0 <= top1 <= 1 and loss > 0


def test_adaptive_bn_scoring_in_the_loop():
    a = mixed(num_classes=10)
    trainer = SGDTrainer()
    res = netadapt_loop(spec(a), trainer, NetAdaptConfig(target_ms=0.9 * macs_ms(a), score="adaptive-bn",
                                                         bn_batches=2, long_epochs=0))  # fmt: skip
    assert "recalibrate" in trainer.calls and "short" not in trainer.calls
    assert res.latency_ms <= 0.9 * macs_ms(a)


# ---------------------------------------------------------------------------------------------- measured tables


class Timed(SpecNet):
    """A spec whose table knows nothing until timed: the estimate is off by a factor, `measure` records batches."""

    def __init__(self, arch, known=None, batches=None):
        super().__init__(arch, latency=macs_ms)
        self.known = known if known is not None else {arch: macs_ms(arch)}
        self.batches = batches if batches is not None else []

    def latency(self, widths=None, *, estimate=False):
        arch = self.candidate(widths)
        if arch is None:
            return None
        if estimate and arch not in self.known:
            return 0.8 * macs_ms(arch)  # optimistic
        assert arch in self.known, "priced exactly before it was timed"
        return self.known[arch]

    def measure(self, assignments):
        archs = [a for a in (self.candidate(w) for w in assignments) if a is not None]
        self.batches.append(len(archs))
        self.known.update({a: macs_ms(a) for a in archs})


def test_proposals_on_a_table_that_times_what_it_lacks_are_the_exact_ones():
    a = zoo.get("mobilenet_v2", width=0.35, resolution=64, num_classes=10)
    target = 0.97 * macs_ms(a)
    exact = {(p.unit, p.width) for p in propose(a, macs_ms, target)}
    timed = Timed(a)
    found = {(p.unit, p.width) for p in propose_units(timed, target)}
    assert found == exact
    assert len(timed.batches) <= 6  # a few batches, not one per candidate width
    assert sum(timed.batches) < 6 * len(exact)


@pytest.mark.slow
def test_a_measured_table_is_timed_into_a_copy_in_the_run_directory(tmp_path, monkeypatch):
    from nas.latency.build import arch_items, build_table
    from nas.latency.measure import Protocol, TimingWorker
    from nas.latency.table import load_table, predict

    arch = zoo.get("mobilenet_v2", width=0.5, resolution=96, num_classes=10)
    table = tmp_path / "measured.json"
    quick = Protocol(warmup=2, runs=3, min_repeats=3, max_repeats=3, rounds=1, warmup_s=0.05, passes=0)
    build_table(device="tiny", items=arch_items([arch]), out=table, protocol=quick, progress=False)
    before = table.read_bytes()
    l0 = predict(arch, load_table(table)).latency_ms
    with pytest.raises(NasError, match="give an output directory"):
        netadapt(arch, NetAdaptConfig(target_ms=0.9 * l0), table=str(table), data="synthetic:40,20")
    cfg = NetAdaptConfig(target_ms=0.9 * l0, step=0.1, score="adaptive-bn", bn_batches=1, long_epochs=0,
                         pretrain_epochs=0.1, batch_size=16)  # fmt: skip
    started: list[int] = []
    real_start = TimingWorker._start

    def counted_start(self):
        started.append(1)
        return real_start(self)

    monkeypatch.setattr(TimingWorker, "_start", counted_start)
    res = netadapt(arch, cfg, table=str(table), data="synthetic:40,20", out=tmp_path / "run")
    assert len(started) == quick.rounds  # one worker per round for the whole run, however many batches
    assert table.read_bytes() == before  # the user's table is never written
    copy = load_table(tmp_path / "run" / "latency-table.json")
    assert len(copy.ops) > len(load_table(table).ops)
    assert res.latency_ms == pytest.approx(predict(res.arch, copy).latency_ms) and res.latency_ms <= 0.9 * l0
    assert res.iterations[-1]["pricing"]["timed_ops"] > 0
