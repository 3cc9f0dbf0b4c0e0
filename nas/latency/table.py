"""The latency table: a versioned JSON file of per-op timings on one device and runtime, and lookups in it.

Format `nas.latency-table/1` (documented in docs/latency.md)::

    {"format": "nas.latency-table/1", "device": str, "runtime": str, "kind": "measured" | "estimated",
     "resolutions": [int...], "created": ISO date, "host": {...}, "versions": {...}, "protocol": {...},
     "sources": [{...}], "complete": true,
     "fixed": {HEAD_KEY: STATS, INPUT_KEY: STATS},  # paid once per network (nas.latency.keys)
     "ops": {KEY: STATS},                           # one per distinct block op; STATS below
     "correction": null | {"scale": float, "offset_ms": float, ...},
     "model": null | {...}}                      # estimated tables: the cost model that prices any op

    STATS = {"median": ms, "mean": ms, "std": ms, "min": ms, "count": int}   (+ "rmin", "rounds" when measured)

A prediction uses each op's median. A file with `"complete": false` (an unfinished build) is refused: a table
is never silently partial.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.arch import Arch, Block, Shape
from nas.errors import NasError
from nas.io import read_json, write_json
from nas.latency.keys import arch_ops, op_key

FORMAT = "nas.latency-table/1"
KINDS = ("measured", "estimated")
STAT_FIELDS = ("median", "mean", "std", "min", "count")
RUNTIMES = ("onnxruntime", "torch")


def runtime_name(runtime: str, threads: int = 1) -> str:
    """The table's runtime label: `onnxruntime-cpu-1thread`, `torch-eager-2threads`."""
    if runtime not in RUNTIMES:
        raise NasError(f"--runtime: must be one of {', '.join(RUNTIMES)}; got {runtime!r}")
    unit = "thread" if threads == 1 else "threads"
    return f"onnxruntime-cpu-{threads}{unit}" if runtime == "onnxruntime" else f"torch-eager-{threads}{unit}"


def stats(samples_ms: Iterable[float]) -> dict[str, float | int]:
    values = sorted(samples_ms)
    if not values:
        raise ValueError("no samples")
    return {
        "median": round(statistics.median(values), 6),
        "mean": round(statistics.fmean(values), 6),
        "std": round(statistics.pstdev(values), 6),
        "min": round(values[0], 6),
        "count": len(values),
    }


def tables_dir() -> Path:
    """Where device tables live: $NAS_LATENCY_TABLES, else the project's `latency_tables/`."""
    env = os.environ.get("NAS_LATENCY_TABLES")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "latency_tables"


# Devices `nas` knows without a file of the user's: name -> what it is. Any other name with a table in
# tables_dir() (built or imported by the user) is a device too.
DEVICES: dict[str, str] = {
    "cpu": "this machine's CPU, measured here (`nas latency build --device cpu`)",
    "pixel1": "Google Pixel 1, one big core, TFLite float: estimated from published whole-network latencies",
}
ALIASES = {"pixel": "pixel1", "local": "cpu"}
LOCAL_DEVICES = ("cpu",)


def canonical_device(name: str) -> str:
    return ALIASES.get(name, name)


def device_table_path(device: str) -> Path:
    return tables_dir() / f"{canonical_device(device)}.json"


@dataclass
class BlockLatency:
    path: str
    key: str
    ms: float


@dataclass
class Prediction:
    """A network's predicted latency. `blocks` (per block: path, key, ms; then head and input) is built on
    demand, so that a search that only reads `latency_ms` pays for lookups alone."""

    latency_ms: float
    raw_ms: float  # sum of op entries + fixed costs, before the table's correction
    device: str
    kind: str
    runtime: str
    fixed_ms: float  # head + input
    _ops: Any = field(repr=False)
    _ms: list[float] = field(repr=False)
    _table: Any = field(repr=False)

    @property
    def blocks(self) -> list[BlockLatency]:
        ops, ms_of = self._ops, self._table.ms
        rows = [BlockLatency(p, k, m) for p, k, m in zip(ops.paths, ops.keys, self._ms, strict=True)]
        return [
            *rows,
            BlockLatency("head", ops.head, ms_of[ops.head]),
            BlockLatency("input", ops.input, ms_of[ops.input]),
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "latency_ms": round(self.latency_ms, 4),
            "raw_ms": round(self.raw_ms, 4),
            "device": self.device,
            "kind": self.kind,
            "runtime": self.runtime,
            "fixed_ms": round(self.fixed_ms, 4),
            "blocks": [{"path": b.path, "key": b.key, "ms": round(b.ms, 4)} for b in self.blocks],
        }


class LatencyTable:
    """Per-op latencies of one device and runtime. `estimator`, when set, prices ops the file does not list
    (estimated tables carry their cost model instead of every op at every resolution)."""

    def __init__(
        self,
        *,
        device: str,
        runtime: str,
        kind: str,
        ops: dict[str, dict[str, Any]],
        fixed: dict[str, dict[str, Any]],
        resolutions: list[int],
        meta: dict[str, Any] | None = None,
        correction: dict[str, Any] | None = None,
        model: dict[str, Any] | None = None,
        path: Path | None = None,
    ):
        if kind not in KINDS:
            raise NasError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        self.device = device
        self.runtime = runtime
        self.kind = kind
        self.ops = ops
        self.fixed = fixed
        self.resolutions = sorted(resolutions)
        self.meta = meta or {}
        self.correction = correction
        self.model = model
        self.path = path
        self.ms: dict[str, float] = {k: float(v["median"]) for k, v in ops.items()}
        self.ms.update({k: float(v["median"]) for k, v in fixed.items()})
        self.estimator: Callable[[Shape | None, Block | None, Arch | None, str], float] | None = None
        if model is not None:
            from nas.latency.pixel import make_estimator

            self.estimator = make_estimator(model)

    # -- identity

    @property
    def label(self) -> str:
        return f"{self.device} ({self.kind}, {self.runtime})"

    @property
    def resolution(self) -> int:
        return self.resolutions[-1] if self.resolutions else 0

    def __len__(self) -> int:
        return len(self.ops)

    def op_ms(self, x: Shape, block: Block) -> float:
        """One op's entry (priced by the cost model of an estimated table if the file lacks it)."""
        key = op_key(x, block)
        if key not in self.ms:
            if self.estimator is None:
                raise NasError(f"table {self.where} has no entry for op {key}")
            self.ms[key] = self.estimator(x, block, None, key)
        return self.ms[key]

    # -- file

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "device": self.device,
            "runtime": self.runtime,
            "kind": self.kind,
            "resolutions": self.resolutions,
            **{k: v for k, v in self.meta.items() if k not in _CORE},
            "complete": True,
            "fixed": self.fixed,
            "ops": dict(sorted(self.ops.items())),
            "correction": self.correction,
            "model": self.model,
        }

    def save(self, path: str | Path) -> Path:
        return write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: Any, where: str = "table", allow_partial: bool = False) -> LatencyTable:
        if not isinstance(data, dict):
            raise NasError(f'{where}: not a latency table (a JSON object with "format": {FORMAT!r})')
        fmt = data.get("format")
        if fmt != FORMAT:
            if isinstance(fmt, str) and fmt.startswith("nas.latency-table/"):
                raise NasError(
                    f"{where}: table format {fmt!r} is not supported (this nas reads {FORMAT!r}); rebuild it"
                )
            raise NasError(f"{where}: not a latency table (format is {fmt!r}, expected {FORMAT!r})")
        if not data.get("complete") and not allow_partial:
            raise NasError(f"{where}: an unfinished build (complete: false); resume it with `nas latency build`")
        for name, typ in (
            ("device", str),
            ("runtime", str),
            ("kind", str),
            ("resolutions", list),
            ("ops", dict),
            ("fixed", dict),
        ):
            if not isinstance(data.get(name), typ):
                raise NasError(f"{where}: field {name!r} missing or not a {typ.__name__}")
        if data["kind"] not in KINDS:
            raise NasError(f"{where}: kind must be one of {', '.join(KINDS)}, got {data['kind']!r}")
        for section in ("ops", "fixed"):
            for key, entry in data[section].items():
                if not isinstance(entry, dict) or any(f not in entry for f in STAT_FIELDS):
                    raise NasError(f"{where}: {section} entry {key!r} lacks {'/'.join(STAT_FIELDS)}")
                median = entry["median"]
                if isinstance(median, bool) or not isinstance(median, int | float) or not median >= 0:
                    raise NasError(f"{where}: {section} entry {key!r} has a bad median {median!r}")
        correction = data.get("correction")
        if correction is not None and not (
            isinstance(correction, dict)
            and all(isinstance(correction.get(f), int | float) for f in ("scale", "offset_ms"))
        ):
            raise NasError(f"{where}: correction must be null or have numeric scale and offset_ms")
        if data["kind"] == "estimated" and not data["ops"] and data.get("model") is None:
            raise NasError(f"{where}: an estimated table needs ops or a cost model")
        return cls(
            device=data["device"],
            runtime=data["runtime"],
            kind=data["kind"],
            ops=data["ops"],
            fixed=data["fixed"],
            resolutions=[int(r) for r in data["resolutions"]],
            meta={k: v for k, v in data.items() if k not in _CORE},
            correction=correction,
            model=data.get("model"),
        )

    # -- lookups

    def check(self, *, runtime: str | None = None, resolution: int | None = None) -> None:
        """NasError when this table is for another runtime or resolution than asked."""
        if runtime is not None and runtime != self.runtime:
            raise NasError(
                f"table {self.where} is for runtime {self.runtime}, not {runtime}; "
                f"rebuild it with `nas latency build --device {self.device} --runtime ...`"
            )
        if resolution is not None and self.estimator is None and resolution not in self.resolutions:
            built = ", ".join(str(r) for r in self.resolutions)
            raise NasError(
                f"table {self.where} was built at resolution {built}, not {resolution}; "
                f"build it with `nas latency build --device {self.device} --resolution {resolution}`"
            )

    @property
    def where(self) -> str:
        return str(self.path) if self.path else self.device

    def add(self, key: str, entry: dict[str, Any]) -> None:
        self.ops[key] = entry
        self.ms[key] = float(entry["median"])


_CORE = {
    "format",
    "device",
    "runtime",
    "kind",
    "resolutions",
    "complete",
    "fixed",
    "ops",
    "correction",
    "model",
}


def load_table(name_or_path: str | Path, *, runtime: str | None = None, resolution: int | None = None) -> LatencyTable:
    """A device name ("cpu", "pixel"/"pixel1", or any name with a table in latency_tables/) or a table path."""
    text = str(name_or_path)
    looks_like_path = text.endswith(".json") or os.sep in text or "/" in text
    if looks_like_path:
        path = Path(text)
    else:
        path = device_table_path(text)
        if not path.exists():
            device = canonical_device(text)
            if device in DEVICES:
                how = (
                    f"build it with `nas latency build --device {device}`"
                    if device in LOCAL_DEVICES
                    else "regenerate it with `python -m nas.latency.pixel`"
                )
                raise NasError(f"no latency table for device {device!r} at {path}; {how}")
            known = sorted(set(DEVICES) | set(ALIASES) | {p.stem for p in tables_dir().glob("*.json")})
            raise NasError(f"unknown device {text!r} (known: {', '.join(known)}; or give a table .json path)")
    table = LatencyTable.from_dict(read_json(path, "latency table"), where=str(path))
    table.path = path
    table.check(runtime=runtime, resolution=resolution)
    return table


def missing_ops(arch: Arch, table: LatencyTable) -> list[tuple[str, str]]:
    """(path, key) of every op of `arch` the table cannot price."""
    if table.estimator is not None:
        return []
    ops = arch_ops(arch)
    have = table.ms
    pairs = [*zip(ops.paths, ops.keys, strict=True), ("head", ops.head), ("input", ops.input)]
    return [(p, k) for p, k in pairs if k not in have]


def _missing_error(arch: Arch, table: LatencyTable, missing: list[tuple[str, str]]) -> NasError:
    name = f" {arch.name}" if arch.name else ""
    if arch.resolution not in table.resolutions:
        built = ", ".join(str(r) for r in table.resolutions)
        return NasError(
            f"table {table.where} was built at resolution {built}, network{name} is at {arch.resolution}; "
            f"build it with `nas latency build --device {table.device} --resolution {arch.resolution}`"
        )
    shown = "; ".join(f"{p} {k}" for p, k in missing[:3])
    more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
    return NasError(
        f"table {table.where} has no entry for {len(missing)} op(s) of network{name}: {shown}{more}; "
        f"build them with `nas latency build --device {table.device} --arch FILE` or predict with --measure-missing"
    )


def _estimate_missing(table: LatencyTable, arch: Arch) -> None:
    ops = arch_ops(arch)
    est = table.estimator
    assert est is not None
    for site, key in zip(ops.sites, ops.keys, strict=True):
        if key not in table.ms:
            table.ms[key] = est(site.x, site.block, None, key)
    for key in (ops.head, ops.input):
        if key not in table.ms:
            table.ms[key] = est(None, None, arch, key)


def predict(arch: Arch, table: LatencyTable) -> Prediction:
    """Sum of the ops' median latencies plus the fixed costs (input, head), corrected by the table's
    correction if it has one. The hot path of a search: after the first call for a spec, dict lookups only."""
    ops = arch_ops(arch)
    ms_of = table.ms
    try:
        ms = [ms_of[k] for k in ops.keys]
        fixed = ms_of[ops.head] + ms_of[ops.input]
    except KeyError:
        if table.estimator is None:
            raise _missing_error(arch, table, missing_ops(arch, table)) from None
        _estimate_missing(table, arch)
        ms = [ms_of[k] for k in ops.keys]
        fixed = ms_of[ops.head] + ms_of[ops.input]
    raw = sum(ms) + fixed
    corr = table.correction
    return Prediction(
        latency_ms=raw * corr["scale"] + corr["offset_ms"] if corr else raw,
        raw_ms=raw,
        device=table.device,
        kind=table.kind,
        runtime=table.runtime,
        fixed_ms=fixed,
        _ops=ops,
        _ms=ms,
        _table=table,
    )
