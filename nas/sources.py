"""What a command takes as a model, resolved in one place for `nas export`, `nas netadapt` and the API.

A SOURCE is a zoo name (`mobilenet_v2`, `mobilenet_v2_075`), an architecture JSON file, a search run directory
(`runs/<name>`: its best trial, or `trial=N`), or a
NetAdapt output directory (its `arch.json` and `weights.pt`).
"""

from __future__ import annotations

from pathlib import Path

from nas.arch import Arch, SpecError, check_resolution
from nas.errors import NasError
from nas.io import read_json

NETADAPT_RESULT = "arch.json"
NETADAPT_WEIGHTS = "weights.pt"
NETADAPT_HISTORY = "history.json"


def is_netadapt_dir(path: Path) -> bool:
    return path.is_dir() and (path / NETADAPT_HISTORY).is_file() and (path / NETADAPT_RESULT).is_file()


def read_arch(path: str | Path, what: str = "architecture file") -> Arch:
    """An architecture JSON file; any fault is the user's, named with the file."""
    try:
        return Arch.from_dict(read_json(path, what))
    except SpecError as err:
        raise NasError(f"{path}: {err}") from None


def resolve(
    source: str,
    *,
    width: float | None = None,
    resolution: int | None = None,
    num_classes: int | None = None,
    trial: int | None = None,
) -> tuple[Arch, Path | None]:
    """SOURCE → (architecture, the weights file that comes with it or None).

    `width` and `num_classes` size zoo models only; `resolution` applies to any source (a spec holds no weights
    that depend on it); `trial` picks one trial of a search run rather than its best."""
    if resolution is not None:
        check_resolution(resolution)
    path = Path(source)
    weights: Path | None = None
    is_run = False
    if path.is_dir():
        from nas.search.runs import is_run_dir, run_arch

        if is_run_dir(path):
            arch, is_run = run_arch(path, trial=trial), True
        elif is_netadapt_dir(path):
            arch = read_arch(path / NETADAPT_RESULT, "NetAdapt result")
            if (path / NETADAPT_WEIGHTS).is_file():
                weights = path / NETADAPT_WEIGHTS
        else:
            raise NasError(
                f"{source} is a directory but neither a search run (config.json, trials/) "
                f"nor a NetAdapt result ({NETADAPT_RESULT}, {NETADAPT_HISTORY})"
            )
    elif path.suffix == ".json" or path.is_file():
        arch = read_arch(path)
    else:
        arch = None
    if trial is not None and not is_run:
        raise NasError(f"--trial applies to search run directories, not {source!r}")
    if arch is None:
        from nas import zoo

        return zoo.get(source, width=width, resolution=resolution, num_classes=num_classes or 1000), None
    if width is not None:
        raise NasError("--width applies to zoo names; an architecture holds resolved channel counts")
    if resolution is not None and resolution != arch.resolution:
        arch = arch.replace(resolution=resolution)
    return arch, weights


def resolve_front(source: str, resolution: int | None = None) -> list[Arch]:
    """The architectures of a search run's Pareto front, at `resolution` when given."""
    from nas.search.runs import is_run_dir, pareto_archs

    if not is_run_dir(Path(source)):
        raise NasError(f"--pareto applies to search run directories, not {source!r}")
    if resolution is not None:
        check_resolution(resolution)
    archs = pareto_archs(source)
    return [arch.replace(resolution=resolution) for arch in archs] if resolution else archs
