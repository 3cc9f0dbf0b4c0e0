"""What every issue-6 evidence script shares: provenance (machine, date, versions, the exact command) and atomic
JSON/PNG output, so that a figure in docs/results.md can always be traced to the run that made it."""

from __future__ import annotations

import datetime as dt
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from nas.io import atomic_write, writable_dir, write_json

SCHEMA = "nas.evidence/1"


def provenance(smoke: bool) -> dict[str, Any]:
    """Where and how a result was made; `smoke` marks a tiny run whose figures mean nothing."""
    from nas.latency.build import library_versions

    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "schema": SCHEMA,
        "smoke": smoke,
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "cwd": os.getcwd(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "hostname": platform.node(),
            "python": platform.python_version(),
            "load_average_at_start": [round(x, 2) for x in load] if load else None,
        },
        "versions": library_versions(),
    }


def out_dir(path: str | Path) -> Path:
    return writable_dir(path)


def save(out: Path, name: str, result: dict[str, Any]) -> Path:
    """Write `name`.json atomically (called after every finished unit, so a killed run keeps what it did)."""
    return write_json(out / f"{name}.json", result)


def save_figure(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


class Stopwatch:
    """Wall time of each named phase, for the cost figures (issue 6, item 5)."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.phases: dict[str, float] = {}

    def add(self, name: str, seconds: float) -> None:
        self.phases[name] = round(self.phases.get(name, 0.0) + seconds, 2)

    def total(self) -> float:
        return round(time.perf_counter() - self.started, 2)


def mean_std(values: list[float]) -> dict[str, Any]:
    import statistics

    return {
        "n": len(values),
        "mean": round(statistics.fmean(values), 5) if values else None,
        "std": round(statistics.stdev(values), 5) if len(values) > 1 else None,
        "values": [round(v, 5) for v in values],
    }


def smoke_supernet(directory: Path, space: Any, data: Any, data_spec: str) -> str:
    """A tiny supernet of `space` trained on smoke data in `directory` (once; a rerun reuses it), for the --smoke
    runs of the benches that read one: the code path of a supernet, none of its meaning."""
    from nas.supernet.train import SupernetConfig, train_supernet

    if not (directory / "checkpoint.pt").exists():
        config = SupernetConfig(epochs=2, batch_size=16, max_steps=1, calib_images=32)
        train_supernet(space, data, directory, config, data_spec=data_spec)
    return str(directory)
