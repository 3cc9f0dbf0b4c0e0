"""NetAdapt's settings in one object, with its presets and checks (no torch: the CLI reads it for --help)."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from nas.errors import NasError

METRICS = ("slope", "accuracy")
SCORES = ("adaptive-bn", "fine-tune")
# MobileNetV3 (Howard et al. 2019, §4.2): a constant step δ = 0.01·L₀.
PRESETS = {"mobilenetv3": {"step": 0.01, "decay": 1.0}}
DEFAULT_STEP, DEFAULT_DECAY = 0.05, 1.0
DEFAULT_SHORT_STEPS = {"fine-tune": 100, "adaptive-bn": 0}


@dataclass(frozen=True)
class NetAdaptConfig:
    """Every setting of a NetAdapt run. `None` fields take their defaults in `resolved()`: step and decay from
    `preset` (else 0.05 and 1.0), short_steps from `score` (100 for fine-tune, 0 for adaptive-bn)."""

    target_ms: float
    step: float | None = None
    decay: float | None = None
    preset: str | None = None
    score: str = "fine-tune"
    bn_batches: int = 20
    short_steps: int | None = None
    long_epochs: int = 5
    metric: str = "slope"
    pretrain_epochs: float = 3
    batch_size: int = 128
    train_resolution: int | None = None
    seed: int = 0

    def resolved(self) -> NetAdaptConfig:
        """The config with its defaults filled in, checked (NasError naming the bad setting)."""
        if not (isinstance(self.target_ms, int | float) and math.isfinite(self.target_ms) and self.target_ms > 0):
            raise NasError(f"target latency must be above 0 ms, got {self.target_ms}")
        step, decay = self.step, self.decay
        if self.preset is not None:
            if self.preset not in PRESETS:
                raise NasError(f"unknown preset {self.preset!r} (known: {', '.join(PRESETS)})")
            if step is not None or decay is not None:
                raise NasError(f"--preset {self.preset} sets --step and --decay; give one or the other")
            step, decay = PRESETS[self.preset]["step"], PRESETS[self.preset]["decay"]
        step = DEFAULT_STEP if step is None else step
        decay = DEFAULT_DECAY if decay is None else decay
        if not 0 < step < 1:
            raise NasError(f"--step must be a fraction of the initial latency in (0, 1), got {step}")
        if not 0 < decay <= 1:
            raise NasError(f"--decay must be in (0, 1], got {decay}")
        if self.score not in SCORES:
            raise NasError(f"--score must be one of {', '.join(SCORES)}, got {self.score!r}")
        short = DEFAULT_SHORT_STEPS[self.score] if self.short_steps is None else self.short_steps
        if short < 0 or self.long_epochs < 0:
            raise NasError("--short-steps and --long-epochs must be ≥ 0")
        if self.score == "fine-tune" and short < 1:
            raise NasError("--score fine-tune needs --short-steps ≥ 1 (or use --score adaptive-bn)")
        if self.bn_batches < 1:
            raise NasError(f"--bn-batches must be ≥ 1, got {self.bn_batches}")
        if self.metric not in METRICS:
            raise NasError(f"--metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if not (math.isfinite(self.pretrain_epochs) and self.pretrain_epochs > 0):
            raise NasError(f"--pretrain-epochs must be above 0, got {self.pretrain_epochs}")
        if self.batch_size < 2:
            raise NasError(f"--batch-size must be ≥ 2, got {self.batch_size}")
        if self.train_resolution is not None and not 8 <= self.train_resolution <= 4096:
            raise NasError(f"--train-resolution must be in [8, 4096], got {self.train_resolution}")
        if not 0 <= self.seed < 2**31:
            raise NasError(f"--seed must be in [0, 2^31), got {self.seed}")
        return replace(self, step=step, decay=decay, short_steps=short)

    def delta(self, initial_ms: float, iteration: int) -> float:
        assert self.step is not None and self.decay is not None, "resolve the config first"
        return self.step * initial_ms * self.decay ** (iteration - 1)
