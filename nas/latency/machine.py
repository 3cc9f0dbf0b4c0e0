"""Which machine a measured table describes, and a quick check of a table on a machine it was not built on.

A table records where it was timed (CPU model, cores, architecture, runtime versions). Loading a measured table
on a machine with another fingerprint times a few random networks of the table's space end to end here
(`CHECK_NETWORKS`, well under a minute) and compares them with the table's predictions, once per machine: the
result is cached in the user's cache directory ($XDG_CACHE_HOME/nas, else ~/.cache/nas). Past `OFF_BY` the
user is told on every load, with the two ways out: a calibrated copy of the table (`nas latency calibrate`:
scale and offset fitted on those networks, written as a user file that records the calibration) or a full
`nas latency build`. `NAS_MACHINE_CHECK=off` skips the timing (the warning stays).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import random
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.arch import Arch
from nas.errors import NasError
from nas.io import read_json, write_json
from nas.latency.measure import BUSY_SHARE, Protocol, time_items
from nas.latency.metrics import check_scale, fit_correction, kendall_tau, metrics

CHECK_NETWORKS = 8
MAX_NETWORKS = 10
CHECK_SEED = 1729  # not validate's default seed 0: a calibrated table is validated on other networks
CHECK_PASSES = 8
OFF_BY = 0.10  # MAPE of the table's predictions on this machine past which the user is told
CALIBRATION_BAND = (0.1, 10.0)  # a calibration maps a table to another machine: anything beyond is not one


def host_info() -> dict[str, Any]:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "hostname": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def library_versions() -> dict[str, str]:
    import numpy
    import onnx
    import onnxruntime
    import torch

    import nas

    return {
        "nas": getattr(nas, "__version__", "?"),
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": onnxruntime.__version__,
        "numpy": numpy.__version__,
    }


def fingerprint(engine: str) -> dict[str, Any]:
    """What makes this machine's timings of `engine` differ from another's (read without importing it)."""
    from importlib.metadata import PackageNotFoundError, version

    host = host_info()
    try:
        engine_version = version(engine)
    except PackageNotFoundError:
        engine_version = None
    return {"cpu": host["cpu"], "cores": host["cores"], "machine": host["machine"], engine: engine_version}


def table_fingerprint(table: Any) -> dict[str, Any] | None:
    """The fingerprint of the machine a measured table was timed on, None when it does not say."""
    host, versions = table.meta.get("host") or {}, table.meta.get("versions") or {}
    if table.engine is None or not host.get("cpu") or not versions.get(table.engine):
        return None
    return {
        "cpu": host["cpu"],
        "cores": host.get("cores"),
        "machine": host.get("machine"),
        table.engine: versions[table.engine],
    }


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nas"


def _describe(fp: dict[str, Any], engine: str) -> str:
    return f"{fp['cpu']} ({fp['cores']} cores, {engine} {fp[engine]})"


def _cache_path(table: Any, here: dict[str, Any]) -> Path:
    ident = {
        "table": table_fingerprint(table),
        "created": table.meta.get("created"),
        "runtime": table.runtime,
        "correction": table.correction,
        "calibration": table.calibration,
        "here": here,
    }
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True, default=str).encode()).hexdigest()[:20]
    return cache_dir() / "machine-checks" / f"{table.device}-{digest}.json"


def check_networks(table: Any, n: int = CHECK_NETWORKS, seed: int = CHECK_SEED) -> list[Arch]:
    """n distinct random networks of the table's space at its resolution."""
    from nas.space import load_space

    sources = [s for s in table.meta.get("sources", []) if isinstance(s, dict) and s.get("space")]
    space = load_space(sources[0]["space"] if sources else "mobilenetv3")
    rng = random.Random(seed)
    archs: dict[str, Arch] = {}
    tries = 0
    while len(archs) < n and tries < n * 50:
        tries += 1
        arch = space.random_arch(rng, resolution=table.resolution)
        archs.setdefault(arch.hash, arch.replace(name=f"{space.name}-check-{len(archs)}"))
    return list(archs.values())


def time_networks(
    archs: list[Arch], protocol: Protocol, passes: int = CHECK_PASSES, allow_busy: bool = True, seed: int = 0
) -> tuple[list[float], dict[str, Any]]:
    """End-to-end ms of each network here (median of interleaved pass medians, one worker) and the load."""
    with tempfile.TemporaryDirectory(prefix="nas-check-") as tmp:
        timed = time_items(
            [{"kind": "net", "arch": a.to_dict(), "id": i} for i, a in enumerate(archs)],
            protocol,
            workdir=Path(tmp),
            passes=passes,
            seed=seed,
            allow_busy=allow_busy,
            what="checking the table",
        )
    ms = [statistics.median(statistics.median(p) for p in timed.runs[i]) for i in range(len(archs))]
    return ms, timed.load.to_dict()


def run_check(
    table: Any,
    *,
    networks: int = CHECK_NETWORKS,
    allow_busy: bool = True,
    timer: Callable[..., tuple[list[float], dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Time `networks` random networks of the table's space here and compare with its predictions."""
    if table.engine is None:
        raise NasError(f"table {table.where} is {table.kind} for {table.runtime}: nothing here can time it")
    if isinstance(networks, bool) or not isinstance(networks, int) or not 2 <= networks <= MAX_NETWORKS:
        raise NasError(f"networks must be an integer from 2 to {MAX_NETWORKS}, got {networks!r}")
    archs = check_networks(table, networks)
    protocol = Protocol.from_dict(table.meta.get("protocol", {}))
    measured, load = (timer or time_networks)(archs, protocol, allow_busy=allow_busy)
    predicted = [table.predict(a).latency_ms for a in archs]
    ratios = [m / p for m, p in zip(measured, predicted, strict=True)]
    result = {
        "table": table.where,
        "table_machine": table_fingerprint(table),
        "machine": fingerprint(table.engine) if table.engine else None,
        "networks": len(archs),
        "median_ratio": round(statistics.median(ratios), 4),
        **{k: v for k, v in metrics([a.name for a in archs], predicted, measured).items() if k != "worst"},
        "load": load,
        "busy": load.get("other_cpu_share", 0.0) > BUSY_SHARE,
        "measured_ms": [round(m, 4) for m in measured],
        "predicted_ms": [round(p, 4) for p in predicted],
    }
    result["off"] = result["mape"] > OFF_BY
    return result


def calibration(result: dict[str, Any]) -> dict[str, Any]:
    """Scale and offset mapping the table's predictions to this machine, fitted on a check's networks. With a
    narrow spread of predictions the offset is not identifiable: the scale alone (median ratio) is used."""
    pred, meas = result["predicted_ms"], result["measured_ms"]
    if max(pred) >= 1.5 * min(pred):
        scale, offset = fit_correction(pred, meas)
        method = "least squares on relative error"
    else:
        scale, offset, method = result["median_ratio"], 0.0, "median ratio (predictions too close for an offset)"
    fitted = [p * scale + offset for p in pred]
    return {
        "scale": round(scale, 5),
        "offset_ms": round(offset, 5),
        "method": method,
        "networks": result["networks"],
        "mape_after_fit": round(statistics.fmean(abs(f / m - 1) for f, m in zip(fitted, meas, strict=True)), 4),
        "kendall_tau": round(kendall_tau(pred, meas), 4),
        "machine": result["machine"],
        "load": result["load"],
        "from_table": result["table"],
        "command": "nas latency calibrate",
    }


def _say(kind: str, text: str) -> None:
    print(f"nas: {kind}: {text}", file=sys.stderr)


def advice(table: Any) -> str:
    return (
        f"`nas latency calibrate --device {table.where}` writes a calibrated copy (about a minute), "
        f"`nas latency build --device {table.device} --out FILE` a full table for this machine"
    )


def ensure_checked(table: Any, timer: Callable | None = None) -> dict[str, Any] | None:
    """The check of a table measured on another machine: from the cache, or run now (once per machine). Tells
    the user on stderr when it is off; returns the check, or None when the table was made on this machine."""
    theirs = table_fingerprint(table)
    if theirs is None:
        return None
    here = fingerprint(table.engine)
    if theirs == here or (table.calibration and table.calibration.get("machine") == here):
        return None
    path = _cache_path(table, here)
    result = None
    if path.exists():
        try:
            result = read_json(path, "machine check")
        except NasError:
            result = None
    if result is None:
        if os.environ.get("NAS_MACHINE_CHECK", "").lower() in ("0", "off", "no"):
            _say(
                "warning",
                f"{table.where} was timed on {_describe(theirs, table.engine)}, not on this "
                f"{_describe(here, table.engine)}; not checked (NAS_MACHINE_CHECK=off): {advice(table)}",
            )
            return None
        _say(
            "note",
            f"{table.where} was timed on {_describe(theirs, table.engine)}, not on this "
            f"{_describe(here, table.engine)}: timing up to {CHECK_NETWORKS} networks end to end to check it (once)",
        )
        result = run_check(table, timer=timer)
        if result["busy"]:
            _say(
                "warning",
                f"could not check {table.where}: other processes used "
                f"{result['load']['other_cpu_share']:.0%} of the CPU meanwhile; it will be checked again next time",
            )
            return result
        write_json(path, result)
        if not result["off"]:
            _say("note", f"{table.where} predicts this machine within {result['mape']:.1%} (MAPE) — fine to use")
    if result["off"]:
        _say(
            "warning",
            f"{table.where} is off on this machine: its networks run ×{result['median_ratio']:.2f} the "
            f"predicted time (MAPE {result['mape']:.0%} over {result['networks']}); {advice(table)}",
        )
    return result


def check_result(table: Any, networks: int = CHECK_NETWORKS, timer: Callable | None = None) -> dict[str, Any]:
    """A fresh check of a measured table here (`nas latency check`); cached like the automatic one when the
    machine was quiet."""
    result = run_check(table, networks=networks, timer=timer)
    if not result["busy"] and table_fingerprint(table) is not None:
        write_json(_cache_path(table, fingerprint(table.engine)), result)
    return result


def calibrate(
    table: Any,
    *,
    out: Path | None = None,
    networks: int = MAX_NETWORKS,
    allow_busy: bool = False,
    timer: Callable | None = None,
) -> tuple[Any, Path]:
    """A copy of a measured table calibrated for this machine (scale and offset of its predictions, fitted on
    networks timed here end to end), written to `out` (a user file; default in the user cache directory). The
    table itself is never changed. Returns the calibrated table and where it was written."""
    from nas.latency.files import check_out_path

    default = cache_dir() / "tables" / f"{table.device}-calibrated.json"
    out = check_out_path(Path(out) if out is not None else default)
    if table.path is not None and out.resolve() == Path(table.path).resolve():
        raise NasError(f"--out {out} is the table being calibrated; a calibrated table is a separate user file")
    result = run_check(table, networks=networks, allow_busy=allow_busy, timer=timer)
    cal = calibration(result)
    check_scale("calibration", cal["scale"], cal["offset_ms"], CALIBRATION_BAND, "calibrate refused")
    data = table.to_dict()
    data["calibration"] = {**cal, "timed_under_load": result["busy"]}
    data["note"] = f"calibrated copy of {table.where} for this machine (`nas latency calibrate`)"
    calibrated = type(table).from_dict(data, where=str(out))
    calibrated.save(out)
    calibrated.path = out
    return calibrated, out
