"""Accuracy evaluators for the search: `build_evaluator(spec, data, space=, seed=, options=)` (or, with a config
object, `make_evaluator(kind, data, config)`) → `evaluator(arch, report=None)` → `EvalResult`.

Every evaluator has `resolution` (the image size it reads candidates at), `metric_label` (what its `accuracy`
is, for tables and plots) and `default_trials` (about how many candidates it scores in two minutes of the
search's own time).

- ``train``: build the candidate for the data's classes at the proxy resolution, seed, train with `TrainConfig`
  (`PROXY_TRAIN`, the default, is sized for trials of ~10–20 s on one core of this machine), and return top-1 on
  the validation split (held out from the training data). `report` is passed to `train` for Optuna pruning.
- ``zero-cost``: score the untrained candidate (`ZeroCostConfig.score`: "synflow" or "naswot") and map the score
  to a number in (0, 1) with a logistic squash, ``sigmoid((score − center) / scale)``. That number increases with
  the score, is positive, and so can stand where MnasNet's reward ACC·(LAT/T)^w expects an accuracy — but it is
  **a proxy, not an accuracy**: `center` and `scale` only set how strongly it trades against latency in the soft
  reward (the default center/scale put the default space's candidates roughly in 0.3–0.7). The raw score is in
  `extra["score"]`. On 12 random candidates of the default space their Kendall τ with one epoch of proxy
  training was 0.20 (SynFlow) and 0.26 (NASWOT), and both grow mostly with network size: use it to screen,
  not to pick.

- ``supernet:DIR``: the validation top-1 of the candidate as a subnet of the weight-sharing supernet trained
  into DIR (`nas supernet train`), after BatchNorm recalibration on a fixed draw of training images
  (`nas.supernet`). The supernet must have been trained on this space and on this data (same images, same split).
- ``supernet-predictor:DIR``: that top-1 *predicted* by the ridge model `nas supernet predictor DIR` fitted on
  reads of random subnets (OFA's accuracy predictor): microseconds a candidate, for searches of thousands.

The latency of a candidate is never estimated here: the search predicts it at the deployment resolution.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from nas.accuracy.data import DataSplits
from nas.accuracy.train import Report, TrainConfig, train
from nas.accuracy.zero_cost import KINDS as SCORE_KINDS
from nas.accuracy.zero_cost import zero_cost_score
from nas.arch import Arch
from nas.errors import NasError
from nas.model import build, count_params

EVALUATORS = ("train", "zero-cost", "supernet:DIR", "supernet-predictor:DIR")
# The search's own time per trial besides the evaluator (sampling, latency lookup, journal): what
# `default_trials` adds to a measured evaluation. A rough allowance, not a measurement of any one machine.
SEARCH_OVERHEAD_S = 0.05
TRIAL_BUDGET_S = 120.0

# The default proxy-training recipe of the search: one epoch over the training split at the data's own 32×32, in
# batches of 32 (125 SGD steps on `synthetic`), no augmentation (each image is seen once, so crops and flips only
# add noise). MobileNetV3-Large takes ~15 s on one core of this machine (bench/accuracy_proxy.py).
PROXY_TRAIN = TrainConfig(epochs=1, batch_size=32, lr=0.05, augment=False, resolution=None)


@dataclass(frozen=True)
class ZeroCostConfig:
    score: str = "synflow"
    batch_size: int = 64
    seed: int = 0
    resolution: int | None = None
    # Logistic squash of the raw score into (0, 1); None → the per-score defaults below.
    center: float | None = None
    scale: float | None = None

    def __post_init__(self) -> None:
        if self.score not in SCORE_KINDS:
            raise NasError(f"unknown zero-cost score {self.score!r} (known: {', '.join(SCORE_KINDS)})")
        if self.batch_size < 2:
            raise NasError(f"zero-cost batch_size must be at least 2, got {self.batch_size}")
        if self.scale is not None and not self.scale > 0:
            raise NasError(f"zero-cost scale must be positive, got {self.scale}")


# (center, scale) of the squash per score: about the median and half the spread of 12 random archs of the default
# space on `synthetic` at 32×32, NASWOT on a batch of 64 (bench/accuracy_proxy.py --samples 12, 2026-11-26:
# synflow 40–64, median 54; naswot 667–717, median 686), so those archs map to roughly 0.3–0.7. Both raw scores
# shift with the resolution, the class count and (NASWOT) the batch size: set `center`/`scale` for other settings.
SQUASH_DEFAULTS: dict[str, tuple[float, float]] = {"synflow": (54.0, 12.0), "naswot": (688.0, 30.0)}


@dataclass(frozen=True)
class SupernetReadConfig:
    """How a supernet evaluator reads a candidate: BatchNorm statistics from `calib_images` training images (a
    fixed draw for `seed`), top-1 on the first `val_images` validation images (0: all), `threads` torch threads."""

    calib_images: int = 256
    val_images: int = 1000
    seed: int = 0
    threads: int = 1

    def __post_init__(self) -> None:
        if self.calib_images < 1:
            raise NasError(f"supernet calib_images must be at least 1, got {self.calib_images}")
        if self.val_images < 0:
            raise NasError(f"supernet val_images must be ≥ 0 (0: all), got {self.val_images}")
        if self.threads < 1:
            raise NasError(f"supernet threads must be at least 1, got {self.threads}")


@dataclass
class EvalResult:
    """`accuracy`: validation top-1 (train) or the squashed proxy score (zero-cost); `epochs` trained (0 for
    zero-cost); `extra`: details (history, steps, params, raw score, …), JSON-serialisable."""

    accuracy: float
    seconds: float
    epochs: float = 0.0
    pruned: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


def _proxy_arch(arch: Arch, data: DataSplits, resolution: int) -> Arch:
    try:
        return arch.replace(resolution=resolution, num_classes=data.num_classes)
    except NasError as err:
        name = arch.name or arch.hash
        raise NasError(f"candidate {name} cannot run at the proxy resolution {resolution}: {err}") from None


def zero_init_residuals(model: torch.nn.Module) -> int:
    """Zero the last BN scale of every residual block, so each starts as the identity (Goyal et al. 2017):
    deep MBConv nets then learn faster in a short run (+2 points for MobileNetV3-Large after one epoch on
    `synthetic`, two seeds). Returns the number of blocks changed."""
    changed = 0
    for module in model.modules():
        last = getattr(module, "project", getattr(module, "pw", None))  # MBConv / depthwise-separable
        if not getattr(module, "residual", False) or not isinstance(last, torch.nn.Sequential) or len(last) < 2:
            continue
        if isinstance(last[1], torch.nn.BatchNorm2d):
            torch.nn.init.zeros_(last[1].weight)
            changed += 1
    return changed


class TrainEvaluator:
    kind = "train"
    metric_label = "proxy top-1 (validation)"

    def __init__(self, data: DataSplits, config: TrainConfig | None = None):
        self.data = data
        self.config = config or PROXY_TRAIN

    @property
    def resolution(self) -> int:
        return self.config.resolution or self.data.image_size

    # The search's trial count when none is asked for: proxy training takes tens of seconds a candidate, so
    # two minutes would hold a handful; the search's long-standing default stands instead.
    default_trials = 40

    def __call__(self, arch: Arch, report: Report | None = None) -> EvalResult:
        start = time.perf_counter()
        proxy = _proxy_arch(arch, self.data, self.resolution)
        torch.manual_seed(self.config.seed)
        model = build(proxy)
        zero_init_residuals(model)
        result = train(model, self.data, self.config, report)
        return EvalResult(
            accuracy=float(result.accuracy if result.accuracy is not None else 0.0),
            seconds=time.perf_counter() - start,
            epochs=result.epochs,
            pruned=result.pruned,
            extra={
                "history": [list(h) for h in result.history],
                "steps": result.steps,
                "train_loss": result.train_loss,
                "train_seconds": result.seconds,
                "params": count_params(model),
                "proxy_resolution": self.resolution,
                "config": asdict(self.config),
            },
        )


class ZeroCostEvaluator:
    kind = "zero-cost"
    metric_label = "zero-cost proxy score (not an accuracy)"

    def __init__(self, data: DataSplits, config: ZeroCostConfig | None = None):
        self.data = data
        self.config = config or ZeroCostConfig()
        gen = torch.Generator().manual_seed(self.config.seed)
        n = min(self.config.batch_size, len(data.train))
        self.batch = data.train.x[torch.randperm(len(data.train), generator=gen)[:n]]
        center, scale = SQUASH_DEFAULTS[self.config.score]
        self.center = center if self.config.center is None else self.config.center
        self.scale = scale if self.config.scale is None else self.config.scale

    @property
    def resolution(self) -> int:
        return self.config.resolution or self.data.image_size

    @cached_property
    def default_trials(self) -> int:
        return _trials_in_budget(self, self.data)

    def squash(self, score: float) -> float:
        """Monotone map of a raw score into (0, 1), clamped away from 0 so a reward stays positive."""
        z = (score - self.center) / self.scale
        value = 1.0 / (1.0 + math.exp(-z)) if z > -700 else 0.0
        return min(max(value, 1e-6), 1 - 1e-6)

    def __call__(self, arch: Arch, report: Report | None = None) -> EvalResult:
        start = time.perf_counter()
        proxy = _proxy_arch(arch, self.data, self.resolution)
        torch.manual_seed(self.config.seed)
        model = build(proxy)
        batch = self.batch
        if self.resolution != batch.shape[-1]:
            batch = torch.nn.functional.interpolate(batch, size=(self.resolution,) * 2, mode="bilinear",
                                                    align_corners=False)
        prev = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            score = zero_cost_score(model, batch, self.config.score)
        finally:
            torch.set_num_threads(prev)
        return EvalResult(
            accuracy=self.squash(score),
            seconds=time.perf_counter() - start,
            extra={"score": score, "score_kind": self.config.score, "params": count_params(model),
                   "proxy_resolution": self.resolution, "proxy": True},
        )


class SupernetEvaluator:
    """Reads a candidate's accuracy from a trained supernet (see the module docstring and nas.supernet)."""

    kind = "supernet"
    metric_label = "supernet top-1 (validation, BN recalibrated)"

    def __init__(self, directory: str, data: DataSplits, space: Any, config: SupernetReadConfig | None = None):
        from nas.space import SearchSpace, load_space
        from nas.supernet.train import calibration_images, data_id, load_run, space_id

        self.config = config or SupernetReadConfig()
        self.directory = directory
        run = load_run(directory)
        sp = space if isinstance(space, SearchSpace) else load_space(space)
        if run.meta["space"] != sp.name or run.meta["space_id"] != space_id(sp):
            raise NasError(
                f"supernet {directory} was trained on space {run.meta['space']!r}"
                + (", as it was then" if run.meta["space"] == sp.name else "")
                + f"; this search is on {sp.name!r}: train a supernet of this space"
            )
        if run.meta["data"]["hash"] != data_id(data)["hash"]:
            raise NasError(
                f"supernet {directory} was trained on {run.meta['data'].get('spec', run.meta['data']['name'])}; "
                f"this search reads {data.name}: pass the same --data (and --seed) as the supernet"
            )
        self.run = run
        self.net = run.supernet
        self.data = data
        self.calib = calibration_images(data, self.config.calib_images, self.config.seed)
        # A read is deterministic: a candidate the search proposes again costs nothing the second time.
        self._reads: dict[str, float] = {}

    @property
    def resolution(self) -> int:
        return self.net.max_arch.resolution

    @cached_property
    def default_trials(self) -> int:
        return _trials_in_budget(self, self.data)

    def __call__(self, arch: Arch, report: Report | None = None) -> EvalResult:
        from nas.supernet.train import read_accuracy

        start = time.perf_counter()
        sub = _proxy_arch(arch, self.data, self.resolution)
        cached = sub.hash in self._reads
        if not cached:
            prev = torch.get_num_threads()
            torch.set_num_threads(self.config.threads)
            try:
                self.net.check(sub)
                self._reads[sub.hash] = read_accuracy(self.net, sub, self.calib, self.data.val,
                                                      self.config.val_images)
            finally:
                torch.set_num_threads(prev)
        acc = self._reads[sub.hash]
        return EvalResult(
            accuracy=acc,
            seconds=time.perf_counter() - start,
            extra={
                "supernet": str(self.directory),
                "supernet_epoch": self.run.epoch,
                "calib_images": len(self.calib),
                "val_images": min(self.config.val_images or len(self.data.val), len(self.data.val)),
                "proxy_resolution": self.resolution,
                "cached": cached,
            },
        )


class SupernetPredictorEvaluator(SupernetEvaluator):
    """The supernet's top-1 as predicted by DIR/predictor.json (see nas.supernet.predictor)."""

    kind = "supernet-predictor"

    def __init__(self, directory: str, data: DataSplits, space: Any, config: SupernetReadConfig | None = None):
        from nas.supernet.predictor import load_predictor

        super().__init__(directory, data, space, config)
        self.predictor, info = load_predictor(directory, self)
        self.holdout = info["holdout"]
        self.metric_label = (
            f"supernet top-1 predicted from {info['samples']} reads (validation, BN recalibrated; "
            f"held-out τ {self.holdout['kendall_tau']:.2f})"
        )

    def __call__(self, arch: Arch, report: Report | None = None) -> EvalResult:
        start = time.perf_counter()
        sub = _proxy_arch(arch, self.data, self.resolution)
        self.net.check(sub)
        return EvalResult(
            accuracy=self.predictor(sub),
            seconds=time.perf_counter() - start,
            extra={"supernet": str(self.directory), "supernet_epoch": self.run.epoch, "predicted": True,
                   "predictor_holdout": self.holdout, "proxy_resolution": self.resolution},
        )


def _trials_in_budget(evaluator: Any, data: DataSplits, samples: int = 3) -> int:
    """How many candidates `evaluator` scores in `TRIAL_BUDGET_S`: the median time of `samples` reads of
    random architectures of the default space (after one untimed read), plus the search's overhead."""
    import random
    import statistics

    from nas.space import load_space

    space = getattr(getattr(evaluator, "net", None), "space", None) or load_space()
    rng = random.Random(0)
    archs = [space.random_arch(rng, evaluator.resolution, data.num_classes) for _ in range(samples + 1)]
    times = []
    for i, arch in enumerate(archs):
        start = time.perf_counter()
        evaluator(arch)
        if i:
            times.append(time.perf_counter() - start)
    return max(1, int(TRIAL_BUDGET_S / (statistics.median(times) + SEARCH_OVERHEAD_S)))


Evaluator = Callable[..., EvalResult]


def data_seed(spec: str, seed: int) -> int:
    """The seed of the train/val split a search with evaluator `spec` must read: a supernet's reads are only
    valid on the split it was trained with, so a supernet evaluator takes its supernet's seed and the search's own
    `seed` seeds the sampler alone. Where the supernet cannot be read, `seed` (the evaluator then says why)."""
    kind, _, arg = spec.partition(":")
    if kind not in ("supernet", "supernet-predictor") or not arg:
        return seed
    from nas.io import read_json
    from nas.supernet.train import META

    try:
        return int(read_json(Path(arg) / META, "supernet description")["config"]["seed"])
    except (NasError, OSError, KeyError, TypeError, ValueError):
        return seed


def build_evaluator(
    spec: str, data: DataSplits, *, space: Any = None, seed: int = 0, options: dict[str, Any] | None = None
) -> Evaluator:
    """The evaluator a search names: "train", "zero-cost" or "supernet:DIR", seeded with `seed`; `options`
    override fields of its config (train: TrainConfig, e.g. epochs; zero-cost: ZeroCostConfig, e.g. score;
    supernet: SupernetReadConfig, e.g. val_images). `space` (name or SearchSpace) is checked against a supernet's.
    A supernet's reads are not reseeded by `seed`: a read is a fixed function of the architecture, so every seed
    of a search climbs one objective and the supernet's predictor, fitted on those reads, stays valid (an
    option `seed` still picks another calibration draw)."""
    options = dict(options or {})
    kind, _, arg = spec.partition(":")
    base: Any
    if spec == "train":
        base = PROXY_TRAIN
    elif spec in ("zero-cost", "zerocost", "zero_cost"):
        base = ZeroCostConfig()
    elif kind in ("supernet", "supernet-predictor"):
        if not arg:
            raise NasError(f"--evaluator {kind}:DIR needs the supernet's directory, as in {kind}:runs/supernet")
        base = SupernetReadConfig()
    else:
        raise NasError(f"unknown evaluator {spec!r} (known: {', '.join(EVALUATORS)})")
    known = {f.name for f in fields(base)}
    unknown = sorted(set(options) - known)
    if unknown:
        label = "supernet" if kind.startswith("supernet") else spec
        raise NasError(
            f"evaluator option {unknown[0]!r} is not one of the {label} evaluator's: " + ", ".join(sorted(known))
        )
    config = replace(base, **options) if kind.startswith("supernet") else replace(base, seed=seed, **options)
    if kind.startswith("supernet"):
        cls = SupernetEvaluator if kind == "supernet" else SupernetPredictorEvaluator
        return cls(arg, data, space if space is not None else "mobilenetv3", config)
    return make_evaluator(spec, data, config)


def make_evaluator(kind: str, data: DataSplits, config: TrainConfig | ZeroCostConfig | None = None) -> Evaluator:
    """An evaluator of architectures on `data`: "train" (config: TrainConfig) or "zero-cost" (ZeroCostConfig)."""
    if kind == "train":
        if config is not None and not isinstance(config, TrainConfig):
            raise NasError("the train evaluator takes a TrainConfig")
        return TrainEvaluator(data, config)
    if kind in ("zero-cost", "zerocost", "zero_cost"):
        if config is not None and not isinstance(config, ZeroCostConfig):
            raise NasError("the zero-cost evaluator takes a ZeroCostConfig")
        return ZeroCostEvaluator(data, config)
    raise NasError(f"unknown evaluator {kind!r} (known: {', '.join(EVALUATORS)})")
