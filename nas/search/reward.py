"""MnasNet's latency-aware reward, ACC·(LAT/T)^w, and the parsing of a latency target.

Tan et al., "MnasNet: Platform-Aware Neural Architecture Search for Mobile" (CVPR 2019), eq. 2 and §3.1:
w = α where LAT ≤ T, β otherwise; α = β = −0.07 is their soft constraint (a 2× slower model must be about 5%
more accurate to win), α = 0, β = −1 the hard one (over the target the reward falls as fast as latency grows).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from nas.errors import NasError

SOFT = (-0.07, -0.07)
HARD = (0.0, -1.0)
REWARD_KINDS = ("soft", "hard")

_TARGET = re.compile(r"^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(ms|s)?\s*$")


def parse_target(text: str | float | int) -> float:
    """`80ms`, `80 ms`, `0.08s`, `80` (milliseconds) → 80.0. Anything else, or a target ≤ 0, is a NasError."""
    if isinstance(text, bool):
        raise NasError(f"target latency must be a duration such as 80ms or 0.08s, got {text!r}")
    if isinstance(text, int | float):
        value, unit = float(text), "ms"
    else:
        match = _TARGET.match(str(text))
        if not match:
            raise NasError(f"target latency must be a duration such as 80ms, 80 ms, 0.08s or 80; got {text!r}")
        value, unit = float(match.group(1)), match.group(2) or "ms"
    ms = value * 1000.0 if unit == "s" else value
    if not math.isfinite(ms) or ms <= 0:
        raise NasError(f"target latency must be above 0 ms, got {text!r}")
    return ms


@dataclass(frozen=True)
class Reward:
    """ACC·(LAT/T)^w with w = alpha when LAT ≤ T, else beta."""

    target_ms: float
    alpha: float = SOFT[0]
    beta: float = SOFT[1]
    kind: str = "soft"

    def factor(self, latency_ms: float) -> float:
        w = self.alpha if latency_ms <= self.target_ms else self.beta
        return (latency_ms / self.target_ms) ** w

    def __call__(self, accuracy: float, latency_ms: float) -> float:
        return accuracy * self.factor(latency_ms)

    @property
    def hard(self) -> bool:
        """Hard mode: a candidate over the target is not worth training (MnasNet's β = −1 with α = 0)."""
        return self.kind == "hard"

    def describe(self) -> str:
        w = f"w = {self.alpha:g} if LAT ≤ T else {self.beta:g}"
        return f"ACC·(LAT/{self.target_ms:g}ms)^w, {w} ({self.kind})"


def make_reward(target: str | float, kind: str = "soft", w: float | None = None) -> Reward:
    """The reward for `--target-latency`, `--reward` and `--w` (w sets both exponents; hard keeps α = 0)."""
    target_ms = parse_target(target)
    if kind not in REWARD_KINDS:
        raise NasError(f"unknown reward {kind!r}; choose one of {', '.join(REWARD_KINDS)}")
    alpha, beta = SOFT if kind == "soft" else HARD
    if w is not None:
        if not math.isfinite(w) or w > 0:
            raise NasError(f"--w must be a finite number ≤ 0 (a penalty on latency), got {w}")
        alpha, beta = (w, w) if kind == "soft" else (0.0, w)
    return Reward(target_ms, alpha, beta, kind)
