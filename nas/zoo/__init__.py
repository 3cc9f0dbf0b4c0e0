"""The classic lightweight nets as specs: baselines, NetAdapt starting points, and a check on the builders.

A *family* (`mobilenet_v2`) makes an `Arch` for a width multiplier, resolution and class count; its listed
*variants* (`mobilenet_v2_075`) are the widths the papers published. `get()` takes either name. A family
published at several widths, or marked `any_width`, takes any width in (0, WIDTH_MAX], scaled by its
reference implementation's rule (named in its docstring); the others have one width.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass

from nas.arch import Arch, check_resolution
from nas.errors import NasError

WIDTH_MAX = 4.0  # widest multiplier `get` builds (the published ones go to 2.0)
RESOLUTION_MIN = 32  # five stride-2 stages leave at least 1×1


@dataclass(frozen=True)
class Family:
    name: str
    make: Callable[[float, int, int], Arch]  # (width, resolution, num_classes) → Arch
    widths: tuple[float, ...] = (1.0,)  # the published variants (what `nas zoo list` shows)
    resolution: int = 224
    # The row of shared/reference/model_zoo.csv that a variant matches: (model, variant) or None.
    reference: Callable[[float], tuple[str, str] | None] = lambda width: None
    summary: str = ""
    any_width: bool = False  # takes a width multiplier though published at one width

    @property
    def scalable(self) -> bool:
        return self.any_width or len(self.widths) > 1

    def variant_name(self, width: float) -> str:
        """`mobilenet_v2_075`; a family published at one width keeps its plain name there."""
        return self.name if self.widths == (width,) else f"{self.name}_{round(width * 100):03d}"


FAMILIES: dict[str, Family] = {}


def register(family: Family) -> Family:
    FAMILIES[family.name] = family
    return family


@dataclass(frozen=True)
class Variant:
    family: Family
    width: float

    @property
    def name(self) -> str:
        return self.family.variant_name(self.width)

    @property
    def reference(self) -> tuple[str, str] | None:
        return self.family.reference(self.width)


def variants() -> list[Variant]:
    return [Variant(f, w) for f in FAMILIES.values() for w in f.widths]


def resolve(name: str) -> Variant:
    """A family or variant name → (family, width). Unknown names raise NasError with close matches."""
    if name in FAMILIES:
        family = FAMILIES[name]
        return Variant(family, 1.0 if 1.0 in family.widths or family.scalable else family.widths[0])
    for v in variants():
        if v.name == name:
            return v
    names = sorted(set(FAMILIES) | {v.name for v in variants()})
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `nas zoo list` shows them all"
    raise NasError(f"unknown zoo model {name!r}{hint}")


def get(
    name: str, width: float | None = None, resolution: int | None = None, num_classes: int = 1000
) -> Arch:
    """The spec of a zoo model. `width` overrides the variant's multiplier (scalable families only), in
    (0, WIDTH_MAX]; `resolution` is in [RESOLUTION_MIN, MAX_RESOLUTION]. NasError, before anything is built,
    for values out of range."""
    v = resolve(name)
    if width is not None:
        if isinstance(width, bool) or not isinstance(width, int | float) or not 0 < width <= WIDTH_MAX:
            raise NasError(f"width must be positive and at most {WIDTH_MAX:g}, got {width!r}")
        if width != v.width and not v.family.scalable:
            raise NasError(f"{v.family.name} has no width multiplier (it was published at one width)")
    if resolution is not None:
        check_resolution(resolution, RESOLUTION_MIN)
    w = v.width if width is None else width
    arch = v.family.make(w, resolution or v.family.resolution, num_classes)
    return arch.replace(name=v.family.variant_name(w))


# Families register themselves on import, the MobileNet family first (the order of `nas zoo list`).
# isort: off
from nas.zoo import mobilenets  # noqa: E402, F401
from nas.zoo import classic  # noqa: E402, F401
# isort: on
