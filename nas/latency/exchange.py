"""Timing ops on a device `nas` cannot run on: export each op as a standalone ONNX model with a manifest,
time them there with a standard benchmark tool, import the timings as a measured table.

Manifest `nas.latency-ops/1` (DIR/manifest.json)::

    {"format": "nas.latency-ops/1", "source": {...}, "resolutions": [int...], "input_name": "x",
     "ops": [{"id": "op0001", "key": KEY, "kind": "op" | "head" | "input", "file": "ops/op0001.onnx",
              "input_shape": [1, C, H, W]}...]}

Results CSV (one or more rows per op; several rows are samples of one op): a column `id` (or `key`) and either
`ms` (one timing per row) or `median_ms` (a benchmark's summary; `mean_ms`, `std_ms`, `min_ms`, `count` optional).
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from pathlib import Path
from typing import Any

from nas.errors import NasError
from nas.io import MAX_JSON_BYTES, atomic_write, check_file, read_json, writable_dir, write_json
from nas.latency.measure import item_module, onnx_bytes
from nas.latency.table import LatencyTable, stats

MANIFEST = "nas.latency-ops/1"


def export_ops(items: dict[str, dict[str, Any]], out: Path, source: dict[str, Any], progress: bool = True) -> Path:
    writable_dir(out)
    entries = []
    from nas.progress import progress_bar

    with progress_bar("export-ops", disable=not progress) as bar:
        task = bar.add_task("export-ops", total=len(items))
        for n, (key, item) in enumerate(sorted(items.items()), start=1):
            op_id = f"op{n:04d}"
            module, shape = item_module(item)
            data = onnx_bytes(module, shape)
            rel = f"ops/{op_id}.onnx"
            atomic_write(out / rel, lambda tmp, data=data: tmp.write_bytes(data))
            entries.append({"id": op_id, "key": key, "kind": item["kind"], "file": rel, "input_shape": [1, *shape]})
            bar.advance(task)
    resolutions = sorted({int(i["x"][1]) for i in items.values() if i["kind"] == "input"})
    return write_json(
        out / "manifest.json",
        {
            "format": MANIFEST,
            "source": source,
            "resolutions": resolutions,
            "input_name": "x",
            "ops": entries,
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        },
    )


def read_manifest(path: Path) -> dict[str, Any]:
    data = read_json(path, "op manifest")
    if not isinstance(data, dict) or data.get("format") != MANIFEST or not isinstance(data.get("ops"), list):
        raise NasError(f"{path}: not an op manifest (format {MANIFEST!r}; written by `nas latency export-ops`)")
    return data


def _number(value: str, where: str, positive: bool = True) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise NasError(f"{where}: not a number: {value!r}") from None
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        kind = "positive" if positive else "non-negative"
        raise NasError(f"{where}: a latency must be a finite {kind} number of ms, got {value!r}")
    return number


def import_results(
    results: Path, manifest_path: Path, *, device: str, runtime: str, host: dict[str, Any] | None = None
) -> LatencyTable:
    """A measured table from a results CSV; every op of the manifest must have a timing."""
    manifest = read_manifest(manifest_path)
    by_id = {op["id"]: op for op in manifest["ops"]}
    by_key = {op["key"]: op for op in manifest["ops"]}
    samples: dict[str, list[float]] = {}
    summaries: dict[str, dict[str, Any]] = {}
    check_file(results, "results file", MAX_JSON_BYTES)  # a FIFO or device would block the reader
    try:
        with results.open(newline="") as fh:
            reader = csv.DictReader(line for line in fh if line.strip() and not line.startswith("#"))
            cols = set(reader.fieldnames or [])
            if not ({"id", "key"} & cols) or not ({"ms", "median_ms"} & cols):
                raise NasError(
                    f"{results}: needs a column id (or key) and a column ms (or median_ms); "
                    f"has {', '.join(sorted(cols)) or 'none'}"
                )
            for line_no, row in enumerate(reader, start=2):
                where = f"{results}:{line_no}"
                ref = (row.get("id") or "").strip()
                op = by_id.get(ref) if ref else by_key.get((row.get("key") or "").strip())
                if op is None:
                    raise NasError(f"{where}: op {ref or row.get('key')!r} is not in {manifest_path}")
                if row.get("ms") not in (None, ""):
                    samples.setdefault(op["key"], []).append(_number(row["ms"], f"{where} ms"))
                else:
                    median = _number(row["median_ms"], f"{where} median_ms")
                    summaries[op["key"]] = {
                        "median": median,
                        "mean": _number(row.get("mean_ms") or median, f"{where} mean_ms"),
                        "std": _number(row.get("std_ms") or 0, f"{where} std_ms", positive=False),
                        "min": _number(row.get("min_ms") or median, f"{where} min_ms"),
                        "count": int(_number(row.get("count") or 1, f"{where} count")),
                    }
    except FileNotFoundError:
        raise NasError(f"results file {results} does not exist") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise NasError(f"cannot read results file {results}: {err}") from None
    missing = [op for op in manifest["ops"] if op["key"] not in samples and op["key"] not in summaries]
    if missing:
        shown = ", ".join(op["id"] for op in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise NasError(
            f"{results} has no timing for {len(missing)} of {len(manifest['ops'])} ops of "
            f"{manifest_path}: {shown}{more}; a table is never partial"
        )
    ops: dict[str, dict[str, Any]] = {}
    fixed: dict[str, dict[str, Any]] = {}
    for op in manifest["ops"]:
        entry = stats(samples[op["key"]]) if op["key"] in samples else summaries[op["key"]]
        (fixed if op["kind"] in ("head", "input") else ops)[op["key"]] = entry
    return LatencyTable(
        device=device,
        runtime=runtime,
        kind="measured",
        ops=ops,
        fixed=fixed,
        resolutions=list(manifest.get("resolutions", [])),
        meta={
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "host": host or {"device": device, "imported": True},
            "versions": {},
            "protocol": {"imported_from": str(results), "manifest": str(manifest_path)},
            "sources": [manifest.get("source", {})],
        },
    )
