"""NetAdapt's proposals: for each unit, the widest multiple of 8 that meets an iteration's latency target."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from nas.arch import Arch
from nas.netadapt.subject import Adaptable, SpecNet
from nas.netadapt.units import Unit, UnitMap, candidate_widths, find_units, floor_widths, set_widths

LatencyFn = Callable[[Arch], float]


@dataclass(frozen=True)
class Proposal:
    unit: Unit
    width: int
    latency_ms: float


def propose_units(subject: Adaptable, target_ms: float) -> list[Proposal]:
    """One proposal per unit that can meet `target_ms` alone: its widest width (a multiple of 8, ≥ 8) whose
    whole-network predicted latency is at most the target; units that cannot reach it give none.

    Where the subject's table lacks ops (a measured table), each unit's width is first chosen on an estimate,
    the chosen widths are timed in one batch and the exact prediction decides. A width that misses after timing
    is dropped and the search goes on, narrower, in the next batch: then a unit's latency is interpolated
    linearly in its width between the widths already priced exactly (its current width is one)."""
    current = subject.latency()
    assert current is not None
    known: dict[Unit, dict[int, float]] = {u: {u.width: current} for u in subject.units}
    confirmed: dict[Unit, Proposal] = {}
    while True:
        picks: dict[Unit, list[int]] = {}
        for unit in subject.units:
            if unit in confirmed:
                continue
            widths = candidate_widths(unit.width)
            for k, width in enumerate(widths):
                ms = _estimate(subject, unit, width, known[unit])
                if ms is not None and ms <= target_ms:
                    # the estimate's pick and, in the same batch, the next narrower width: its fallback
                    todo = [w for w in widths[k : k + 2] if w not in known[unit]]
                    if todo:
                        picks[unit] = todo
                    elif known[unit].get(width, math.inf) <= target_ms:
                        confirmed[unit] = Proposal(unit, width, known[unit][width])
                    break
        if not picks:
            break
        subject.measure([{u: w} for u, ws in picks.items() for w in ws])
        for unit, widths in picks.items():
            for width in widths:
                ms = subject.latency({unit: width})
                if ms is not None:
                    known[unit][width] = ms
            meets = [w for w in candidate_widths(unit.width) if known[unit].get(w, math.inf) <= target_ms]
            if meets and meets[0] in widths:
                confirmed[unit] = Proposal(unit, meets[0], known[unit][meets[0]])
    return [confirmed[u] for u in subject.units if u in confirmed]


def _estimate(subject: Adaptable, unit: Unit, width: int, known: dict[int, float]) -> float | None:
    """The exact latency where known; between or beyond two exactly priced widths of the unit, their line;
    else the subject's own estimate (exact on a table that prices every op)."""
    if width in known:
        return known[width]
    if len(known) >= 2:
        above = [w for w in known if w > width]
        below = [w for w in known if w < width]
        if above and below:
            lo, hi = max(below), min(above)
        else:
            lo, hi = sorted(above or below)[:2] if above else sorted(below)[-2:]
        if subject.latency({unit: width}, estimate=True) is None:
            return None  # not a valid width
        slope = (known[hi] - known[lo]) / (hi - lo)
        return known[lo] + slope * (width - lo)
    return subject.latency({unit: width}, estimate=True)


def propose(arch: Arch, latency: LatencyFn, target_ms: float, units: UnitMap | None = None) -> list[Proposal]:
    """`propose_units` over a spec's units, each candidate priced as the whole network by `latency`."""
    return propose_units(SpecNet(arch, latency=latency, units=units), target_ms)


def smallest(arch: Arch, latency: LatencyFn) -> tuple[Arch, float]:
    """Every unit at its narrowest valid width: the reachable floor, and its latency."""
    units = find_units(arch)
    final = set_widths(arch, floor_widths(arch, units), units) or arch
    return final, latency(final)
