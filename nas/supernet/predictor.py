"""An accuracy predictor fitted on supernet reads, so a search can score thousands of candidates in seconds.

Once-for-All (Cai et al. ICLR 2020, Sec. 3.3) reads a few thousand subnets from the supernet and fits a small
model on them; the search then queries the model instead of the supernet. Here the model is ridge regression on
a one-hot code of each searchable stage's choices as the subnet's blocks show them (depth, output channels,
kernel, expansion, SE, activation): with a few hundred reads a linear model is what the data can fix.

`fit_predictor` reads `samples` random subnets (each read as `SupernetEvaluator` does: the same calibration
images and validation images), holds a fifth out to measure its Kendall τ against the reads, refits on all of
them and writes DIR/predictor.json, tied to the checkpoint's epoch and the read settings. Reads already in the
file are kept, so a killed fit resumes. `--evaluator supernet-predictor:DIR` uses it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nas.arch import Arch
from nas.errors import NasError
from nas.io import read_json, write_json

PREDICTOR = "predictor.json"
FORMAT = "nas.supernet-predictor/1"
RIDGE = 1.0


def stage_features(arch: Arch, stages: list[int]) -> list[str]:
    """Categorical features of a subnet: per searchable stage, what its first block chose, and its depth."""
    out = []
    cin = {s.path: s.x.c for s in arch.sites()}
    for s in stages:
        blocks = arch.stages[s]
        b = blocks[0]
        e = round(b.mid / cin[f"stages[{s}][0]"], 2)
        out += [f"{s}.d{len(blocks)}", f"{s}.c{b.out}", f"{s}.k{b.k}", f"{s}.e{e}", f"{s}.se{b.se > 0}",
                f"{s}.a{b.act}"]
    return out


def _matrix(rows: list[list[str]], vocab: list[str]) -> np.ndarray:
    index = {v: i for i, v in enumerate(vocab)}
    x = np.zeros((len(rows), len(vocab) + 1))
    x[:, -1] = 1.0
    for r, feats in enumerate(rows):
        for f in feats:
            if f in index:
                x[r, index[f]] = 1.0
    return x


def _fit(rows: list[list[str]], y: list[float]) -> tuple[list[str], np.ndarray]:
    vocab = sorted({f for feats in rows for f in feats})
    x = _matrix(rows, vocab)
    reg = RIDGE * np.eye(x.shape[1])
    reg[-1, -1] = 0.0  # the intercept is not shrunk
    w = np.linalg.solve(x.T @ x + reg, x.T @ np.asarray(y))
    return vocab, w


class Predictor:
    def __init__(self, data: dict[str, Any]):
        self.data = data
        self.vocab = data["vocab"]
        self.weights = np.asarray(data["weights"])
        self.stages = data["stages"]

    def __call__(self, arch: Arch) -> float:
        x = _matrix([stage_features(arch, self.stages)], self.vocab)
        return float(np.clip(x @ self.weights, 0.0, 1.0)[0])


def elastic_stages(net: Any) -> list[int]:
    return sorted({int(p[len("stages[") : p.index("]")]) for p, i in net._index.items() if i in net._elastic})


def fit_predictor(
    directory: str | Path,
    evaluator: Any,
    samples: int,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Read `samples` random subnets with `evaluator` (a SupernetEvaluator of DIR), fit, write DIR/predictor.json."""
    from nas.latency.validate import kendall_tau

    if samples < 10:
        raise NasError(f"the predictor needs at least 10 reads, got {samples}")
    path = Path(directory) / PREDICTOR
    key = _key(evaluator)
    old = read_json(path, "supernet predictor") if path.is_file() else {}
    reads: list[dict[str, Any]] = old.get("reads", []) if old.get("key") == key else []
    net = evaluator.net
    stages = elastic_stages(net)
    rng = random.Random(seed)
    seen = {r["hash"] for r in reads}
    draws = []
    while len(draws) + len(reads) < samples:
        arch = net.random_subnet(rng)
        if arch.hash not in seen:
            seen.add(arch.hash)
            draws.append(arch)
    for i, arch in enumerate(draws):
        acc = evaluator(arch).accuracy
        reads.append({"hash": arch.hash, "features": stage_features(arch, stages), "accuracy": acc})
        if i % 10 == 9 or i == len(draws) - 1:
            write_json(path, {"format": FORMAT, "key": key, "reads": reads, "complete": False})
        if progress is not None:
            progress(len(reads), samples)
    reads = reads[:samples]
    order = list(range(len(reads)))
    random.Random(seed + 1).shuffle(order)
    held = order[: len(order) // 5]
    fit_on = order[len(order) // 5 :]
    vocab, w = _fit([reads[i]["features"] for i in fit_on], [reads[i]["accuracy"] for i in fit_on])
    x_held = _matrix([reads[i]["features"] for i in held], vocab) @ w
    tau = kendall_tau(list(x_held), [reads[i]["accuracy"] for i in held])
    mae = float(np.mean(np.abs(x_held - np.asarray([reads[i]["accuracy"] for i in held]))))
    vocab, w = _fit([r["features"] for r in reads], [r["accuracy"] for r in reads])
    result = {
        "format": FORMAT,
        "key": key,
        "complete": True,
        "samples": len(reads),
        "holdout": {"n": len(held), "kendall_tau": round(tau, 4), "mae": round(mae, 4)},
        "stages": stages,
        "vocab": vocab,
        "weights": w.tolist(),
        "reads": reads,
    }
    write_json(path, result)
    return result


def _key(evaluator: Any) -> dict[str, Any]:
    """What the reads depend on: the checkpoint's epoch, the data and the read settings."""
    return {
        "epoch": evaluator.run.epoch,
        "space_id": evaluator.run.meta["space_id"],
        "data": evaluator.run.meta["data"]["hash"],
        "calib_images": evaluator.config.calib_images,
        "val_images": evaluator.config.val_images,
        "seed": evaluator.config.seed,
    }


def load_predictor(directory: str | Path, evaluator: Any) -> tuple[Predictor, dict[str, Any]]:
    """DIR/predictor.json if it was fitted on this checkpoint with these read settings; NasError otherwise."""
    path = Path(directory) / PREDICTOR
    if not path.is_file():
        raise NasError(f"{directory} has no accuracy predictor; fit one with `nas supernet predictor {directory}`")
    data = read_json(path, "supernet predictor")
    if not isinstance(data, dict) or data.get("format") != FORMAT or not data.get("complete"):
        raise NasError(f"{path}: not a finished supernet predictor; rerun `nas supernet predictor {directory}`")
    if data.get("key") != _key(evaluator):
        raise NasError(
            f"{path} was fitted on other reads (epoch {data.get('key', {}).get('epoch')} or other read settings) "
            f"than this supernet's epoch {evaluator.run.epoch}; rerun `nas supernet predictor {directory}`"
        )
    return Predictor(data), data
