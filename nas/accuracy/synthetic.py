"""The built-in `synthetic` task: 10 classes of 32×32 RGB images, generated from a seed in about a second.

Why this task: the search needs a default data set that ships with the package, is cheap to make, and on which
the architecture matters. Each image holds **two parts of different types** among five (filled disc, ring,
plus-cross, square outline, striped disc); the class is the unordered *pair* of types, so C(5, 2) = 10 classes,
each type taking part in four of them. To classify, a network must recognise each part's shape wherever it is
(random centre, radius 5–8 px, rotation, hue), then combine the evidence of both across the image. Nothing
else carries the label:

- the background colour is uniform random, with a random linear gradient and Gaussian pixel noise (σ = `noise`,
  0.06 of the range); each part is dark on a light background or light on a dark one (a brightness gap of at
  least 0.3, so edges are always visible) with a random hue: colour says nothing about the class;
- `distractors` thin line segments (default 1) of random colour, length 5–12 px and angle are drawn over the
  image (a bar looks like an arm of the cross);
- the two parts never overlap (centres at least r₁ + r₂ + 1 px apart).

Evidence that it needs a real CNN (`python bench/accuracy_synthetic.py --epochs 3`, 2026-11-26, this 2-core VM
shared with other jobs, torch 2.13, one thread; every net: 3 epochs, batch 32, lr 0.05, no augmentation; test
top-1 on 1,000 images, chance 0.10; bench/results/accuracy_synthetic.png): ridge classifiers on raw pixels
0.10–0.11, nearest class mean 0.12, a 2-layer 8–16-channel CNN 0.16, MobileNetV2 1.0 0.28, MobileNetV3-Small
0.34, MobileNetV3-Large 0.75 0.38, MobileNetV3-Large 0.46, a plain 5-layer 32–128-channel CNN (full resolution
first) 0.64. tests/test_data_synthetic.py checks the linear baselines.

Generation is vectorised numpy: every image is a function of `np.random.default_rng(seed)` only, so a seed
gives the same data on any machine. Pixels are returned as uint8 N×3×32×32, the layout of the other loaders.
"""

from __future__ import annotations

import itertools

import numpy as np

PART_NAMES = ("disc", "ring", "cross", "square", "stripes")
# The class index is the position of the (sorted) type pair in this list.
CLASS_PAIRS: tuple[tuple[int, int], ...] = tuple(itertools.combinations(range(len(PART_NAMES)), 2))
CLASS_NAMES = tuple(f"{PART_NAMES[a]}+{PART_NAMES[b]}" for a, b in CLASS_PAIRS)
NUM_CLASSES = len(CLASS_PAIRS)
RADIUS = (5.0, 8.0)


def _part_mask(kind: np.ndarray, u: np.ndarray, v: np.ndarray, phase: np.ndarray) -> np.ndarray:
    """Coverage in [0, 1] of each part at local coordinates (u, v), in units of its radius (N×S×S)."""
    r = np.sqrt(u * u + v * v)
    au, av = np.abs(u), np.abs(v)
    disc = r <= 1.0
    ring = (r >= 0.55) & (r <= 1.0)
    cross = ((au <= 0.28) & (av <= 1.0)) | ((av <= 0.28) & (au <= 1.0))
    square_dist = np.maximum(au, av)
    square = (square_dist >= 0.62) & (square_dist <= 0.92)
    stripes = disc & (np.sin(np.pi * 1.6 * u + phase[:, None, None]) > 0)
    k = kind[:, None, None]
    return np.select([k == 0, k == 1, k == 2, k == 3, k == 4], [disc, ring, cross, square, stripes]).astype(np.float32)


def _part_colour(rng: np.random.Generator, background: np.ndarray) -> np.ndarray:
    """A random colour per image whose brightness differs from the background's by at least 0.35: light parts on
    dark backgrounds and dark on light, so an edge detector finds them whatever the hues."""
    bright = background.mean(axis=1, keepdims=True)
    target = np.where(bright > 0.5, rng.uniform(0.0, 0.2, bright.shape), rng.uniform(0.8, 1.0, bright.shape))
    hue = rng.random(background.shape, dtype=np.float32) - 0.5
    return np.clip(target + 0.4 * (hue - hue.mean(axis=1, keepdims=True)), 0, 1).astype(np.float32)


def generate(
    n: int,
    seed: int = 0,
    size: int = 32,
    noise: float = 0.06,
    distractors: int = 1,
    radius: tuple[float, float] = RADIUS,
) -> tuple[np.ndarray, np.ndarray]:
    """`n` images (uint8, N×3×size×size) and their labels (int64 in [0, 10)), balanced to within one per class."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % NUM_CLASSES
    rng.shuffle(labels)
    pairs = np.array(CLASS_PAIRS)[labels]
    swap = rng.random(n) < 0.5  # which of the pair is drawn first does not matter
    kinds = np.where(swap[:, None], pairs[:, ::-1], pairs)

    axis = np.arange(size, dtype=np.float32) + 0.5
    yy, xx = np.meshgrid(axis, axis, indexing="ij")
    background = rng.random((n, 3), dtype=np.float32)
    gradient = (rng.random((n, 2), dtype=np.float32) - 0.5) * 0.5
    img = (
        background[:, :, None, None]
        + (gradient[:, 0, None, None] * (xx / size - 0.5) + gradient[:, 1, None, None] * (yy / size - 0.5))[:, None]
    )

    radius = rng.uniform(radius[0], radius[1], size=(n, 2)).astype(np.float32)
    centres = np.empty((n, 2, 2), dtype=np.float32)
    margin = radius + 0.5
    centres[:, 0] = rng.uniform(margin[:, :1], size - margin[:, :1], size=(n, 2))
    todo = np.ones(n, dtype=bool)
    for _ in range(100):  # rejection sampling of the second centre until the parts do not overlap
        idx = np.flatnonzero(todo)
        if not len(idx):
            break
        m = margin[idx, 1:]
        centres[idx, 1] = rng.uniform(m, size - m, size=(len(idx), 2))
        dist = np.linalg.norm(centres[idx, 1] - centres[idx, 0], axis=1)
        todo[idx] = dist < radius[idx].sum(axis=1) + 1.0

    for p in range(2):
        angle = rng.uniform(0, np.pi, n).astype(np.float32)
        cos, sin = np.cos(angle)[:, None, None], np.sin(angle)[:, None, None]
        dx = xx[None] - centres[:, p, 0, None, None]
        dy = yy[None] - centres[:, p, 1, None, None]
        r = radius[:, p, None, None]
        u, v = (cos * dx + sin * dy) / r, (-sin * dx + cos * dy) / r
        mask = _part_mask(kinds[:, p], u, v, rng.uniform(0, 2 * np.pi, n).astype(np.float32))
        colour = _part_colour(rng, background)
        img = img * (1 - mask[:, None]) + colour[:, :, None, None] * mask[:, None]

    for _ in range(distractors):
        start = rng.uniform(0, size, (n, 2)).astype(np.float32)
        angle = rng.uniform(0, np.pi, n).astype(np.float32)
        length = rng.uniform(5, 12, n).astype(np.float32)
        direction = np.stack([np.cos(angle), np.sin(angle)], axis=1)
        px, py = xx[None] - start[:, 0, None, None], yy[None] - start[:, 1, None, None]
        along = np.clip(px * direction[:, 0, None, None] + py * direction[:, 1, None, None], 0, length[:, None, None])
        ex = px - along * direction[:, 0, None, None]
        ey = py - along * direction[:, 1, None, None]
        line = (np.sqrt(ex * ex + ey * ey) <= 0.6).astype(np.float32)
        colour = rng.random((n, 3), dtype=np.float32)
        img = img * (1 - line[:, None]) + colour[:, :, None, None] * line[:, None]

    img = img + rng.normal(0, noise, img.shape).astype(np.float32)
    pixels = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    return pixels, labels.astype(np.int64)
