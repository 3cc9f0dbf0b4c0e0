"""The widest width multiplier of a zoo family within a latency: the baselines "at equal predicted latency".

One rule, used by every benchmark that compares against width-scaled hand-designed nets: widths lie on a grid of
`step` (0.01 by default, so a width prints as the variant name it builds, `mobilenet_v2_105` = 1.05), and the
answer is the widest grid width whose latency is at most the target while the next grid width above exceeds it.
Predicted latency grows with the width in steps (channels are rounded to multiples of 8), so it is found by
bisection: a bracket from width 1.0 by doubling or halving (pricing a very wide network is the slow part), then
halving the bracket down to one grid step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nas.arch import Arch
from nas.errors import NasError
from nas.zoo import FAMILIES, WIDTH_MAX, get


@dataclass(frozen=True)
class WidestWidth:
    """`width`: the answer; `latency_ms`: its latency; `above_ms`: the latency of `width + step` (None when
    `width` is the top of the range: `capped`); `evaluations`: latencies computed."""

    family: str
    width: float
    latency_ms: float
    above_ms: float | None
    capped: bool
    evaluations: int


def widest_width(
    family: str,
    target_ms: float,
    latency: Any,
    *,
    lo: float = 0.1,
    hi: float = WIDTH_MAX,
    step: float = 0.01,
    resolution: int = 224,
    num_classes: int = 1000,
) -> WidestWidth | None:
    """The widest width in [lo, hi] (on the `step` grid) of zoo `family` at `resolution`/`num_classes` whose
    latency is at most `target_ms`; None when even `lo` exceeds it. `latency` is a latency table (predicted with
    `nas.latency.predict`) or a function Arch → ms (to time a table's missing ops first, say)."""
    if family not in FAMILIES or not FAMILIES[family].scalable:
        raise NasError(f"{family!r} is not a zoo family that takes a width multiplier")
    if not step > 0 or not 0 < lo <= hi <= WIDTH_MAX:
        raise NasError(f"need 0 < lo <= hi <= {WIDTH_MAX:g} and step > 0, got lo={lo}, hi={hi}, step={step}")
    if callable(latency):
        price: Callable[[Arch], float] = latency
    else:
        from nas.latency import predict

        def price(arch: Arch) -> float:
            return float(predict(arch, latency).latency_ms)

    # Work in integer grid units so that every width is exactly k * step (no float drift in names or keys).
    k_lo, k_hi = round(lo / step), int(hi / step + 1e-9)
    if k_lo * step < lo - 1e-9:
        k_lo += 1
    cache: dict[int, float] = {}

    def ms(k: int) -> float:
        if k not in cache:
            arch = get(family, width=round(k * step, 10), resolution=resolution, num_classes=num_classes)
            cache[k] = float(price(arch))
        return cache[k]

    def answer(k: int, above: int | None) -> WidestWidth:
        return WidestWidth(
            family, round(k * step, 10), ms(k), None if above is None else ms(above), above is None, len(cache)
        )

    # Bracket: `good` within the target, `bad` over it (or None: all of [good, k_hi] fits).
    start = min(max(round(1.0 / step), k_lo), k_hi)
    good: int | None
    bad: int | None
    if ms(start) <= target_ms:
        good, bad = start, None
        while good < k_hi:
            up = min(k_hi, good * 2)
            if ms(up) > target_ms:
                bad = up
                break
            good = up
        if bad is None:
            return answer(good, None)
    else:
        good, bad = None, start
        while good is None:
            if bad == k_lo:
                return None
            down = max(k_lo, bad // 2)
            if ms(down) <= target_ms:
                good = down
            else:
                bad = down
    while bad - good > 1:
        mid = (good + bad) // 2
        if ms(mid) <= target_ms:
            good = mid
        else:
            bad = mid
    return answer(good, bad)
