"""File helpers every stage shares: atomic writes (a kill never leaves half a file) and safe reads."""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from nas.errors import NasError

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; outputs get the usual permissions
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def write_json(path: str | Path, data: Any) -> Path:
    return write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def read_json(path: str | Path, what: str = "file") -> Any:
    """Parse a JSON file; a missing, unreadable or malformed one is the user's error, named as `what`."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise NasError(f"{what} {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise NasError(f"cannot read {what} {path}: {err}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise NasError(f"{what} {path} is not valid JSON: {err}") from None


def writable_dir(path: str | Path) -> Path:
    """Create `path` if needed and check that files can be written there, before any work is done."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".nas-probe-"):
            pass
    except OSError as err:
        raise NasError(f"cannot write to {path}: {err.strerror or err}") from None
    return path


def read_state_dict(path: str | Path) -> dict[str, Any]:
    """A state_dict file, read with torch.load(weights_only=True); one-line NasError for anything else."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise NasError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises several kinds for a file that is not its format
        first = str(err).strip().split("\n")[0].split(". ")[0]
        raise NasError(f"cannot read weights {path}: not a torch state_dict file ({first})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise NasError(f"weights {path} hold a {type(state).__name__}, not a state_dict (names → tensors)")
    return state


def import_file(path: Path, prefix: str) -> ModuleType:
    """Import a Python file as a fresh module without touching sys.path; its own errors propagate."""
    name = f"{prefix}_{abs(hash(str(Path(path).resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise NasError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look a module up while it executes
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(name, None)
    return module
