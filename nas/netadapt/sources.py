"""What `nas netadapt MODEL` (and `nas export`) accept as a model: a zoo name, an architecture JSON file,
a search run directory (its best.json) or a NetAdapt output directory (its arch.json and weights.pt)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.arch import Arch, SpecError
from nas.errors import NasError
from nas.io import read_json

HISTORY = "history.json"


def is_netadapt_dir(path: Path) -> bool:
    return path.is_dir() and (path / HISTORY).is_file() and (path / "arch.json").is_file()


def resolve_netadapt_dir(source: str, **_: Any) -> tuple[Arch, Path | None] | None:
    """A finished NetAdapt run directory → (its result arch, its weights file); anything else → None."""
    path = Path(source)
    if not is_netadapt_dir(path):
        return None
    try:
        arch = Arch.from_dict(read_json(path / "arch.json", "NetAdapt result"))
    except SpecError as err:
        raise NasError(f"{path / 'arch.json'}: {err}") from None
    weights = path / "weights.pt"
    return arch, weights if weights.is_file() else None


def resolve_model(
    source: str, *, width: float | None = None, resolution: int | None = None, num_classes: int = 1000
) -> tuple[Arch, Path | None]:
    """MODEL of `nas netadapt` → (arch, weights that come with it or None). `num_classes` sizes zoo models."""
    path = Path(source)
    found = resolve_netadapt_dir(source)
    if found is not None:
        return found
    if path.is_dir() and (path / "best.json").is_file():
        best = read_json(path / "best.json", "best trial file")
        if not isinstance(best, dict) or "arch" not in best:
            raise NasError(f"{path / 'best.json'} holds no architecture (has the search completed a trial?)")
        try:
            arch = Arch.from_dict(best["arch"])
        except SpecError as err:
            raise NasError(f"{path / 'best.json'}: {err}") from None
        return (arch.replace(resolution=resolution) if resolution else arch), None
    if path.is_dir():
        raise NasError(f"{source} is a directory without best.json (a search run) or arch.json (a NetAdapt run)")
    if path.suffix == ".json" or path.is_file():
        if width is not None:
            raise NasError("--width applies to zoo names; an architecture file holds resolved channel counts")
        try:
            arch = Arch.from_dict(read_json(path, "architecture file"))
        except SpecError as err:
            raise NasError(f"{path}: {err}") from None
        return (arch.replace(resolution=resolution) if resolution else arch), None
    from nas import zoo

    return zoo.get(source, width=width, resolution=resolution, num_classes=num_classes), None
