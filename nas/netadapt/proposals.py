"""NetAdapt's proposals: for each unit, the widest multiple of 8 that meets an iteration's latency target."""

from __future__ import annotations

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

    Where the subject's table lacks ops (a measured table), each unit's width is first chosen on the estimate,
    the chosen widths are timed in one batch and the exact prediction decides; a width that misses after
    timing is dropped and the search goes on, narrower, in the next batch."""
    confirmed: dict[Unit, Proposal] = {}
    rejected: set[tuple[Unit, int]] = set()
    while True:
        picks: dict[Unit, int] = {}
        for unit in subject.units:
            if unit in confirmed:
                continue
            for width in candidate_widths(unit.width):
                if (unit, width) in rejected:
                    continue
                ms = subject.latency({unit: width}, estimate=True)
                if ms is not None and ms <= target_ms:
                    picks[unit] = width
                    break
        if not picks:
            break
        subject.measure([{u: w} for u, w in picks.items()])
        for unit, width in picks.items():
            ms = subject.latency({unit: width})
            assert ms is not None
            if ms <= target_ms:
                confirmed[unit] = Proposal(unit, width, ms)
            else:
                rejected.add((unit, width))
    return [confirmed[u] for u in subject.units if u in confirmed]


def propose(arch: Arch, latency: LatencyFn, target_ms: float, units: UnitMap | None = None) -> list[Proposal]:
    """`propose_units` over a spec's units, each candidate priced as the whole network by `latency`."""
    return propose_units(SpecNet(arch, latency=latency, units=units), target_ms)


def smallest(arch: Arch, latency: LatencyFn) -> tuple[Arch, float]:
    """Every unit at its narrowest valid width: the reachable floor, and its latency."""
    units = find_units(arch)
    final = set_widths(arch, floor_widths(arch, units), units) or arch
    return final, latency(final)
