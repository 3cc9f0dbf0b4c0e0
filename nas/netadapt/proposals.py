"""NetAdapt's proposals: for each unit, the widest multiple of 8 that meets an iteration's latency target."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from nas.arch import Arch
from nas.netadapt.units import Unit, UnitMap, find_units, set_widths

LatencyFn = Callable[[Arch], float]
DIVISOR = 8


@dataclass(frozen=True)
class Proposal:
    unit: Unit
    width: int
    latency_ms: float
    arch: Arch | None = None  # the proposed spec (spec route; None for a user's module)


def candidate_widths(width: int) -> list[int]:
    """Multiples of 8 below `width`, widest first, down to 8."""
    top = (width - 1) // DIVISOR * DIVISOR
    return list(range(top, DIVISOR - 1, -DIVISOR))


def propose_units(
    units: Iterable[Unit],
    latency_at: Callable[[Unit, int], tuple[float, Arch | None] | None],
    target_ms: float,
) -> list[Proposal]:
    """One proposal per unit that can meet `target_ms` alone: its widest width (a multiple of 8, ≥ 8) whose
    whole-network predicted latency is at most the target. `latency_at(unit, width)` gives (latency, spec) or
    None where that width is not allowed. Units that cannot reach the target give none."""
    out = []
    for unit in units:
        for width in candidate_widths(unit.width):
            found = latency_at(unit, width)
            if found is None:
                continue
            ms, arch = found
            if ms <= target_ms:
                out.append(Proposal(unit, width, ms, arch))
                break
    return out


def propose(arch: Arch, latency: LatencyFn, target_ms: float, units: UnitMap | None = None) -> list[Proposal]:
    """`propose_units` over a spec's units, each candidate priced as the whole network."""
    units = units or find_units(arch)

    def latency_at(unit: Unit, width: int) -> tuple[float, Arch | None] | None:
        candidate = set_widths(arch, {unit: width}, units)
        return None if candidate is None else (latency(candidate), candidate)

    return propose_units(units.units, latency_at, target_ms)


def smallest(arch: Arch, latency: LatencyFn) -> tuple[Arch, float]:
    """Every unit at its narrowest valid width (groups first, then expansions): the reachable floor."""
    units = find_units(arch)
    widths: dict[Unit, int] = {}
    ordered = sorted(units.units, key=lambda u: u.kind == "mid")
    for unit in ordered:
        for width in reversed(candidate_widths(unit.width + 1)):
            if width >= unit.width:
                break
            if set_widths(arch, {**widths, unit: width}, units) is not None:
                widths[unit] = width
                break
    final = set_widths(arch, widths, units) or arch
    return final, latency(final)
