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


MAX_TARGET_MS = 1e6  # 1000 s: far beyond any network a mobile search is for
ACCEPTED = "a duration such as 80ms, '80 ms', 0.08s or 80 (milliseconds), above 0 and at most 1000s"


def parse_target(text: str | float | int) -> float:
    """`80ms`, `80 ms`, `0.08s`, `80` (milliseconds) → 80.0. Anything else, or a target outside (0, 1000 s],
    is a NasError naming the accepted forms."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise NasError(f"target latency must be {ACCEPTED}; got {text!r}")
    if isinstance(text, int | float):
        value, unit = float(text), "ms"
    else:
        match = _TARGET.match(text)
        if not match:
            raise NasError(f"target latency must be {ACCEPTED}; got {text!r}")
        value, unit = float(match.group(1)), match.group(2) or "ms"
    ms = value * 1000.0 if unit == "s" else value
    if not math.isfinite(ms):
        raise NasError(f"target latency {text!r} is not a finite number; it must be {ACCEPTED}")
    if ms <= 0:
        raise NasError(f"target latency must be above 0 ms, got {text!r}; it must be {ACCEPTED}")
    if ms > MAX_TARGET_MS:
        raise NasError(f"target latency {text!r} is over 1000 s; it must be {ACCEPTED}")
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
        """The reward in plain words (summary.md)."""
        t = f"{self.target_ms:g} ms"
        if self.kind == "hard":
            over = "never trained" if self.beta == HARD[1] else "not trained"
            return (
                f"hard: the accuracy itself at or under {t}; over it ACC·(LAT/{t})^{self.beta:g}, "
                f"and candidates predicted over {t} are {over}"
            )
        if self.alpha == self.beta:
            slower = 100 * (1 - 2**self.beta)
            return (
                f"soft: ACC·(LAT/{t})^{self.beta:g} on both sides of the target, so a net may exceed {t}: "
                f"one twice as slow loses {slower:.0f}% of its reward, one twice as fast gains "
                f"{100 * (0.5**self.alpha - 1):.0f}%"
            )
        return f"soft: ACC·(LAT/{t})^w with w = {self.alpha:g} at or under the target and {self.beta:g} over it"


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
