"""Where a table may be written: checked before any work starts, so a bad path costs nothing."""

from __future__ import annotations

import os
from pathlib import Path

from nas.errors import NasError
from nas.io import writable_dir


def check_out_path(out: Path) -> Path:
    """NasError (one line) unless a table can be written at `out`: not a directory, in a writable directory, not
    under /proc or /sys. Checked before any timing starts."""
    out = Path(out)
    resolved = out.resolve()
    if any(str(resolved).startswith(p) for p in ("/proc/", "/sys/", "/dev/")) or str(resolved) in ("/proc", "/sys"):
        raise NasError(f"--out {out}: not a place for a table (a system directory)")
    if out.is_dir():
        raise NasError(f"--out {out} is a directory; give the table's file name (e.g. {out / 'cpu.json'})")
    if out.exists() and not out.is_file():
        raise NasError(f"--out {out} exists and is not a regular file")
    writable_dir(out.parent)
    if out.exists() and not os.access(out, os.W_OK):
        raise NasError(f"--out {out}: the file is not writable")
    return out
