"""The simplifiable units of a spec: what NetAdapt may shrink, and which layers must shrink together.

A unit is one channel count of the spec that can change on its own:

- `mid`: the expansion width of an `ir` block that has an expansion conv;
- `out`: a *channel group*, the output of a producing block (a `conv`, a `ds` or a non-residual `ir`) together
  with every later block that adds its output to it (residual `ds`/`ir` blocks) and the pools that pass it on.
  All its members share one width and one set of kept channels; stem and head convs are groups of this kind.

Input channels are never stored in a spec, so setting a group's width also resizes whatever reads it (the next
expansion, depthwise, SE, the next 1×1, the classifier). An `ir` block without expansion (mid == in) reads the
group through its depthwise conv, so its `mid` follows the group too.

Supported block types: conv (ungrouped), pool, ds, ir (ungrouped). Others (ghost, shuffle_v1, shuffle_v2,
fire, sep, xception, grouped convs) raise NasError: their internal channel splits do not follow one width.
"""

from __future__ import annotations

from dataclasses import dataclass

from nas.arch import Arch, Block, Conv, DepthwiseSeparable, InvertedResidual, Pool, SpecError
from nas.errors import NasError

MID = "mid"
OUT = "out"
DIVISOR = 8  # proposed widths are multiples of this


@dataclass(frozen=True)
class Unit:
    """One simplifiable channel count. `index` is the defining block (paths() order); `members` the
    blocks whose `out` (kind "out") or `mid` (kind "mid") the unit sets."""

    kind: str
    index: int
    path: str
    members: tuple[int, ...]
    width: int

    @property
    def name(self) -> str:
        """Stable across iterations (widths change, positions do not)."""
        return f"{self.path}.{self.kind}"

    def describe(self) -> str:
        tied = f" (+{len(self.members) - 1} tied)" if self.kind == OUT and len(self.members) > 1 else ""
        return f"{self.name}{tied}={self.width}"


@dataclass(frozen=True)
class UnitMap:
    """Where every channel count of an arch comes from: per block, the unit of its output and of its mid
    (None: the input image, or a mid that follows the block's input)."""

    units: tuple[Unit, ...]
    out_unit: tuple[Unit | None, ...]
    mid_unit: tuple[Unit | None, ...]

    def by_name(self, name: str) -> Unit:
        for unit in self.units:
            if unit.name == name:
                return unit
        raise NasError(f"no unit {name!r} in this architecture")

    def in_unit(self, index: int) -> Unit | None:
        return self.out_unit[index - 1] if index > 0 else None

    @property
    def feature_unit(self) -> Unit | None:
        return self.out_unit[-1] if self.out_unit else None


SUPPORTED = ("conv", "pool", "ds", "ir")


def _check_supported(index: int, path: str, block: Block) -> None:
    if block.type not in SUPPORTED:
        raise NasError(
            f"netadapt: block {index} ({path}) is a {block.type!r} block; the spec route shrinks only "
            f"{', '.join(SUPPORTED)} blocks (adapt it as a traced module instead: docs/netadapt.md)"
        )
    if isinstance(block, Conv | InvertedResidual) and block.groups != 1:
        raise NasError(
            f"netadapt: block {index} ({path}, {block.type}) is grouped (groups={block.groups}); "
            "netadapt shrinks only ungrouped convs"
        )


def find_units(arch: Arch) -> UnitMap:
    """Group the spec's channel counts into units (see the module docstring)."""
    sites = arch.sites()
    groups: list[list[int]] = []  # member indices of each out group, in order
    group_of: list[int | None] = []  # per block: index into groups of its output, None for the input image
    mids: dict[int, int] = {}  # block index -> mid width, for ir blocks with an expansion conv
    for site in sites:
        block, cin = site.block, site.x.c
        _check_supported(site.index, site.path, block)
        current = group_of[-1] if group_of else None
        if isinstance(block, Pool):
            if current is not None:
                groups[current].append(site.index)
            group_of.append(current)
            continue
        if isinstance(block, InvertedResidual) and block.has_expand(cin):
            mids[site.index] = block.mid
        residual = isinstance(block, DepthwiseSeparable | InvertedResidual) and block.has_residual(cin)
        if residual and current is not None:
            groups[current].append(site.index)
            group_of.append(current)
        else:
            groups.append([site.index])
            group_of.append(len(groups) - 1)
    group_units = [
        Unit(OUT, members[0], sites[members[0]].path, tuple(members), sites[members[0]].block.out) for members in groups
    ]
    mid_units = {i: Unit(MID, i, sites[i].path, (i,), width) for i, width in mids.items()}
    units = sorted([*group_units, *mid_units.values()], key=lambda u: (u.index, u.kind != MID))
    return UnitMap(
        units=tuple(units),
        out_unit=tuple(None if g is None else group_units[g] for g in group_of),
        mid_unit=tuple(mid_units.get(i) for i in range(len(sites))),
    )


def set_widths(arch: Arch, widths: dict[Unit, int], units: UnitMap | None = None) -> Arch | None:
    """The arch with those units at those widths, or None where that would change the network's structure
    (an expansion conv would vanish because mid == in) or make an invalid spec.

    A block that would become residual by accident (its input now as wide as its output) gets `skip=False`, so
    the network computes the same function with fewer channels."""
    units = units or find_units(arch)
    sites = arch.sites()
    by_name = {u.name: w for u, w in widths.items()}
    new_out = [
        by_name.get(u.name, u.width) if u else site.block.out for u, site in zip(units.out_unit, sites, strict=True)
    ]
    blocks: list[Block] = []
    for site, out_u, mid_u in zip(sites, units.out_unit, units.mid_unit, strict=True):
        block = site.block
        i = site.index
        cin_new = new_out[i - 1] if i > 0 else arch.in_channels
        changes: dict = {}
        if out_u is not None and new_out[i] != block.out:
            changes["out"] = new_out[i]
        if isinstance(block, InvertedResidual):
            if mid_u is not None:
                mid = by_name.get(mid_u.name, mid_u.width)
                if mid == cin_new:
                    return None  # the expansion conv would disappear
            else:
                mid = cin_new  # no expansion: the depthwise conv reads the input
            if mid != block.mid:
                changes["mid"] = mid
        if isinstance(block, DepthwiseSeparable | InvertedResidual):
            was = block.has_residual(site.x.c)
            if not was and block.skip and block.s == 1 and cin_new == new_out[i]:
                changes["skip"] = False
        blocks.append(block.replace(**changes) if changes else block)
    try:
        return arch.with_blocks(blocks)
    except SpecError:
        return None


def candidate_widths(width: int) -> list[int]:
    """Multiples of 8 below `width`, widest first, down to 8."""
    top = (width - 1) // DIVISOR * DIVISOR
    return list(range(top, DIVISOR - 1, -DIVISOR))


def floor_widths(arch: Arch, units: UnitMap | None = None) -> dict[Unit, int]:
    """Every unit at its narrowest valid width (groups first, then expansions): what "as small as it gets" means."""
    units = units or find_units(arch)
    widths: dict[Unit, int] = {}
    for unit in sorted(units.units, key=lambda u: u.kind == MID):
        for width in reversed(candidate_widths(unit.width + 1)):
            if width >= unit.width:
                break
            if set_widths(arch, {**widths, unit: width}, units) is not None:
                widths[unit] = width
                break
    return widths
