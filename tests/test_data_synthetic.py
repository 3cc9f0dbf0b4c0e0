"""The built-in synthetic task: deterministic, balanced, and not solvable from raw pixels by a linear model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nas.accuracy import TrainConfig, load_data, train
from nas.accuracy.synthetic import CLASS_PAIRS, NUM_CLASSES, generate
from nas.arch import Arch, Conv, Head
from nas.model import build


def test_deterministic_for_a_seed_and_balanced():
    x1, y1 = generate(200, seed=5)
    x2, y2 = generate(200, seed=5)
    x3, _ = generate(200, seed=6)
    assert np.array_equal(x1, x2) and np.array_equal(y1, y2) and not np.array_equal(x1, x3)
    assert x1.shape == (200, 3, 32, 32) and x1.dtype == np.uint8 and y1.dtype == np.int64
    assert NUM_CLASSES == len(CLASS_PAIRS) == 10 and np.bincount(y1).tolist() == [20] * 10
    a = load_data("synthetic:100,50", seed=1)
    b = load_data("synthetic:100,50", seed=1)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert (len(a.train), len(a.val), len(a.test)) == (80, 20, 50)


def _linear_probe_accuracy(x_train, y_train, x_test, y_test, ridge: float) -> float:
    """Ridge-regularised least squares to one-hot targets on raw pixels (a linear classifier in closed form)."""
    def feats(x):
        f = torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0)
        return torch.cat([f, torch.ones(len(f), 1, dtype=f.dtype)], 1)

    a, b = feats(x_train), feats(x_test)
    targets = torch.nn.functional.one_hot(torch.from_numpy(y_train), NUM_CLASSES).float()
    w = torch.linalg.solve(a.T @ a + ridge * torch.eye(a.shape[1], dtype=a.dtype), a.T @ targets)
    return float(((b @ w).argmax(1).numpy() == y_test).mean())


def test_linear_models_on_raw_pixels_stay_near_chance():
    x_train, y_train = generate(3000, seed=11)
    x_test, y_test = generate(1000, seed=12)
    assert _linear_probe_accuracy(x_train, y_train, x_test, y_test, ridge=30.0) < 0.18
    # nearest class mean: the classes have (almost) the same mean image
    flat = x_train.reshape(len(x_train), -1).astype(np.float64)
    means = np.stack([flat[y_train == c].mean(0) for c in range(NUM_CLASSES)])
    dist = ((x_test.reshape(len(x_test), -1)[:, None, :] - means[None]) ** 2).sum(-1)
    assert (dist.argmin(1) == y_test).mean() < 0.18


@pytest.mark.slow
def test_a_cnn_learns_what_a_linear_model_cannot():
    """~30 s: a plain 5-layer CNN, 2 epochs, clearly above chance (bench/accuracy_synthetic.py does more)."""
    torch.set_num_threads(1)
    data = load_data("synthetic")
    widths, strides = [64, 64, 128, 128], [2, 1, 2, 2]
    stages = [[Conv(out=w, k=3, s=s)] for w, s in zip(widths, strides, strict=True)]
    cnn = Arch(resolution=32, num_classes=10, stem=[Conv(out=32, k=3)], stages=stages, head=Head())
    torch.manual_seed(0)
    result = train(build(cnn), data, TrainConfig(epochs=2, batch_size=64, lr=0.1, augment=False))
    assert result.accuracy > 0.3
