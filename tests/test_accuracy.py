"""Training, evaluation, pruning, divergence, fine-tuning, zero-cost scores and the evaluators."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nas.accuracy import (
    EvalResult,
    TrainConfig,
    TrainingDiverged,
    ZeroCostConfig,
    evaluate,
    fine_tune,
    load_data,
    make_evaluator,
    train,
    zero_cost_score,
)
from nas.arch import Arch, Conv, Head, InvertedResidual
from nas.errors import NasError
from nas.model import build


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def _easy_npz(path, n_train=400, n_test=100, size=16):
    """A task a tiny CNN learns in a few dozen steps: the class sets where a bright square sits."""
    rng = np.random.default_rng(0)

    def make(n):
        y = np.arange(n) % 4
        x = rng.integers(0, 60, (n, 3, size, size)).astype(np.uint8)
        for i, c in enumerate(y):
            r, col = divmod(int(c), 2)
            x[i, :, r * 8 + 1 : r * 8 + 7, col * 8 + 1 : col * 8 + 7] = 230
        return x, y

    x_train, y_train = make(n_train)
    x_test, y_test = make(n_test)
    np.savez(path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return f"npz:{path}"


@pytest.fixture(scope="module")
def easy(tmp_path_factory):
    return load_data(_easy_npz(tmp_path_factory.mktemp("easy") / "easy.npz"))


def _small_cnn(num_classes=4, resolution=16, width=16) -> Arch:
    return Arch(
        resolution=resolution,
        num_classes=num_classes,
        stem=[Conv(out=width, k=3, s=2)],
        stages=[
            [InvertedResidual(out=width, mid=width * 3, k=3, act="hswish", se=0.25)],
            [Conv(out=width * 2, k=3, s=2)],
        ],
        head=Head(),
        name="small",
    )


def test_training_beats_chance_and_is_deterministic(easy):
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.1, augment=False)
    torch.manual_seed(0)
    model = build(_small_cnn())
    before = evaluate(model, easy.val)
    result = train(model, easy, cfg)
    assert result.accuracy is not None and result.accuracy > 0.8 > before + 0.3
    assert [e for e, _ in result.history] == [1, 2, 3] and result.steps == 30 and not result.pruned
    assert result.accuracy == evaluate(model, easy.val)
    assert evaluate(model, easy.test) > 0.7
    torch.manual_seed(0)
    again = build(_small_cnn())
    assert train(again, easy, cfg).history == result.history
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))


def test_report_prunes_and_max_steps_caps(easy):
    calls = []

    def report(epoch, acc):
        calls.append((epoch, acc))
        return epoch >= 2

    torch.manual_seed(0)
    result = train(build(_small_cnn()), easy, TrainConfig(epochs=5, batch_size=32), report)
    assert result.pruned and result.steps == 20 and [e for e, _ in calls] == [1, 2]
    # the last epoch is reported too, but a "prune" answer then changes nothing
    result = train(build(_small_cnn()), easy, TrainConfig(epochs=2, batch_size=32), lambda e, a: True)
    assert result.pruned and result.epochs == 1.0
    result = train(build(_small_cnn()), easy, TrainConfig(epochs=5, batch_size=32, max_steps=7))
    assert result.steps == 7 and len(result.history) == 1


def test_reports_within_an_epoch_let_a_pruner_stop_half_way(easy):
    calls = []
    cfg = TrainConfig(epochs=1, batch_size=32, reports_per_epoch=2)
    result = train(build(_small_cnn()), easy, cfg, lambda k, acc: calls.append(k) or False)
    assert calls == [1, 2] and result.steps == 10 and [k for k, _ in result.history] == [1, 2]
    result = train(build(_small_cnn()), easy, cfg, lambda k, acc: True)
    assert result.pruned and result.steps == 5 and result.epochs == 0.5 and len(result.history) == 1


def test_proxy_resolution_resizes_inputs(easy):
    seen = []
    model = build(_small_cnn())
    model.features[0].register_forward_pre_hook(lambda m, inp: seen.append(inp[0].shape[-1]))
    train(model, easy, TrainConfig(epochs=1, batch_size=100, resolution=24, augment=False))
    assert set(seen) == {24}


def test_nan_loss_raises_training_diverged(easy):
    torch.manual_seed(0)
    model = build(_small_cnn())
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    with pytest.raises(TrainingDiverged, match="loss became nan at step 1"):
        train(model, easy, TrainConfig(epochs=1))
    assert issubclass(TrainingDiverged, NasError)
    torch.manual_seed(0)
    with pytest.raises(TrainingDiverged):  # a learning rate that blows up
        train(build(_small_cnn()), easy, TrainConfig(epochs=3, lr=1e12, batch_size=32, augment=False))


def test_fine_tune_runs_exactly_the_steps(easy):
    torch.manual_seed(0)
    model = build(_small_cnn())
    steps = []
    model.features[0].register_forward_pre_hook(lambda m, inp: steps.append(1) if m.training else None)
    result = fine_tune(model, easy, 33, TrainConfig(lr=0.1, batch_size=32, augment=False))
    assert result.steps == 33 and len(steps) == 33 and result.accuracy is None and not model.training
    assert evaluate(model, easy.val) > 0.6
    with pytest.raises(NasError, match="at least 1"):
        fine_tune(model, easy, 0)


def test_train_evaluator_builds_for_the_data(easy):
    arch = _small_cnn(num_classes=1000, resolution=224)  # a deployment spec: the evaluator adapts it
    evaluator = make_evaluator("train", easy, TrainConfig(epochs=2, batch_size=32, augment=False))
    result = evaluator(arch)
    assert isinstance(result, EvalResult) and result.accuracy > 0.5 and result.epochs == 2 and result.seconds > 0
    assert result.extra["proxy_resolution"] == 16 and result.extra["steps"] == 20
    assert evaluator(arch).accuracy == result.accuracy  # seeded: the same candidate scores the same
    with pytest.raises(NasError, match="unknown evaluator"):
        make_evaluator("oracle", easy)


def test_zero_init_residuals_makes_residual_blocks_start_as_identity():
    from nas.accuracy.evaluator import zero_init_residuals

    arch = Arch(resolution=16, num_classes=4, stem=[Conv(out=16, k=3, s=2)],
                stages=[[InvertedResidual(out=16, mid=48, se=0.25), InvertedResidual(out=24, mid=48)]])
    model = build(arch).eval()
    assert zero_init_residuals(model) == 1  # the second block changes width: no residual, untouched
    x = torch.randn(2, 16, 8, 8)
    assert torch.equal(model.features[1](x), x)
    assert not torch.equal(model.features[2](x)[:, :16], x)


def test_zero_cost_scores_are_finite_and_prefer_capacity(easy):
    batch = easy.train.x[:32]
    small = build(_small_cnn(width=8))
    big = build(_small_cnn(width=48))
    for kind in ("synflow", "naswot"):
        s_small, s_big = zero_cost_score(small, batch, kind), zero_cost_score(big, batch, kind)
        assert math.isfinite(s_small) and math.isfinite(s_big)
        assert s_big > s_small, kind
    # the model itself is untouched by the scoring (SynFlow works on a positive double copy)
    assert all(p.dtype == torch.float32 for p in small.parameters())
    assert (small.features[0][0].weight < 0).any()
    with pytest.raises(NasError, match="unknown zero-cost score"):
        zero_cost_score(small, batch, "oracle")


def test_naswot_sees_collapsed_codes():
    """Identical activation codes (a network that maps every image alike) must score far below distinct ones."""
    torch.manual_seed(0)
    model = build(_small_cnn())
    varied = torch.randn(16, 3, 16, 16)
    same = varied[:1].repeat(16, 1, 1, 1)
    assert zero_cost_score(model, same, "naswot") < zero_cost_score(model, varied, "naswot") - 50


def test_zero_cost_evaluator_gives_a_positive_proxy(easy):
    evaluator = make_evaluator("zero-cost", easy, ZeroCostConfig(score="naswot", batch_size=16, center=130, scale=20))
    small, big = evaluator(_small_cnn(width=8)), evaluator(_small_cnn(width=48))
    for r in (small, big):
        assert 0 < r.accuracy < 1 and r.extra["proxy"] and r.epochs == 0
    assert big.accuracy > small.accuracy and big.extra["score"] > small.extra["score"]
    assert evaluator.squash(1e9) < 1 and evaluator.squash(-1e9) > 0
    with pytest.raises(NasError, match="unknown zero-cost score"):
        ZeroCostConfig(score="oracle")
