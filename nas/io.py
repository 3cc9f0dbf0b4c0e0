"""File helpers every stage shares: atomic writes (a kill never leaves half a file) and safe reads."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.errors import NasError


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
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
