"""The latency table: a versioned JSON file of per-op timings on one device and runtime, and lookups in it.

Format `nas.latency-table/1` (documented in docs/latency.md)::

    {"format": "nas.latency-table/1", "device": str, "runtime": str, "kind": "measured" | "estimated",
     "resolutions": [int...], "created": ISO date, "host": {...}, "versions": {...}, "protocol": {...},
     "sources": [{...}], "complete": true,
     "fixed": {HEAD_KEY: STATS, INPUT_KEY: STATS},  # paid once per network (nas.latency.keys)
     "ops": {KEY: STATS},                           # one per distinct block op; STATS below
     "correction": null | {"scale": float, "offset_ms": float, ...},
     "calibration": {"scale": float, "offset_ms": float, "machine": {...}, ...},  # only in calibrated copies
     "model": null | {...}}                      # estimated tables: the cost model that prices any op

    STATS = {"median": ms, "mean": ms, "std": ms, "min": ms, "count": int}   (+ "rmin", "rounds" when measured)

A prediction uses each op's median. Everything is checked on load: a file with `"complete": false` (an
unfinished build), a median that is not a finite positive number, or a correction that is not finite or outside
the sane band is refused with one line. `LatencyTable` alone prices ops (`price`, `price_fixed`) and applies its
correction and calibration (`correct`).
"""

from __future__ import annotations

import math
import os
import re
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nas.arch import Arch, Block, Shape
from nas.errors import NasError
from nas.io import read_json, write_json
from nas.latency import machine
from nas.latency.costmodel import make_estimator
from nas.latency.keys import arch_ops, op_key
from nas.latency.machine import CALIBRATION_BAND
from nas.latency.measure import RUNTIMES
from nas.latency.metrics import check_scale

FORMAT = "nas.latency-table/1"
KINDS = ("measured", "estimated")
STAT_FIELDS = ("median", "mean", "std", "min", "count")
# A scale-and-offset correction of the sum of isolated ops (`validate --save-correction`) fixes a bias of a few
# percent; a scale outside this band means the table does not describe this machine, or a busy one timed it.
CORRECTION_BAND = (0.7, 1.4)


class MissingOp(NasError):
    """A measured table has no entry for an op (`key`)."""

    def __init__(self, message: str, key: str):
        super().__init__(message)
        self.key = key


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


def device_name(name: str) -> str:
    """A device name a table may be saved under (letters, digits, _ . -), canonical."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise NasError(f"device: {name!r} is not a device name (letters, digits, _ . -; at most 64)")
    return canonical_device(name)


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
    """Per-op latencies of one device and runtime; the one place that prices an op. `estimator`, when set, prices
    ops the file does not list (estimated tables carry their cost model instead of every op at every
    resolution). `engine` and `threads` say how its ops were timed here (None for imported or estimated
    tables: nothing here can time them)."""

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
        calibration: dict[str, Any] | None = None,
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
        self.calibration = calibration
        self.model = model
        self.path = path
        protocol = self.meta.get("protocol") or {}
        engine = protocol.get("runtime")
        self.engine: str | None = engine if kind == "measured" and engine in RUNTIMES else None
        self.threads: int = int(protocol.get("threads", 1)) if self.engine else 1
        self.ms: dict[str, float] = {k: float(v["median"]) for k, v in ops.items()}
        self.ms.update({k: float(v["median"]) for k, v in fixed.items()})
        self.estimator: Callable[[Shape | None, Block | None, Arch | None, str], float] | None = None
        if model is not None:
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

    # -- pricing

    def price(self, x: Shape, block: Block) -> float:
        """One block op's latency (ms): the table's entry, or its cost model's estimate (remembered)."""
        key = op_key(x, block)
        ms = self.ms.get(key)
        if ms is None:
            if self.estimator is None:
                raise MissingOp(f"table {self.where} has no entry for op {key}", key)
            ms = self.ms[key] = self.estimator(x, block, None, key)
        return ms

    def price_fixed(self, key: str) -> float:
        """A fixed cost (a `head:` or `input:` key) in ms."""
        ms = self.ms.get(key)
        if ms is None:
            if self.estimator is None:
                raise MissingOp(f"table {self.where} has no entry for {key}", key)
            ms = self.ms[key] = self.estimator(None, None, None, key)
        return ms

    def predict(self, arch: Arch) -> Prediction:
        return predict(arch, self)

    def correct(self, raw_ms: float) -> float:
        """The sum of a network's entries as a latency: the table's correction (isolated-op bias), then its
        calibration to this machine, when it has them."""
        ms = raw_ms
        for fix in (self.correction, self.calibration):
            if fix:
                ms = ms * fix["scale"] + fix["offset_ms"]
        return ms

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
            **({"calibration": self.calibration} if self.calibration else {}),
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
        for res in data["resolutions"]:
            if isinstance(res, bool) or not isinstance(res, int) or res < 1:
                raise NasError(f"{where}: resolutions must be positive integers, got {res!r}")
        for section in ("ops", "fixed"):
            for key, entry in data[section].items():
                if not isinstance(entry, dict) or any(f not in entry for f in STAT_FIELDS):
                    raise NasError(f"{where}: {section} entry {key!r} lacks {'/'.join(STAT_FIELDS)}")
                median = entry["median"]
                # the input entry (a runtime's per-inference cost) may be estimated at 0; an op never costs 0
                least_ok = 0.0 if key.startswith("input:") else math.ulp(0)
                if (
                    isinstance(median, bool)
                    or not isinstance(median, int | float)
                    or not math.isfinite(median)
                    or median < least_ok
                ):
                    raise NasError(
                        f"{where}: {section} entry {key!r} has median {median!r}; a latency must be a finite "
                        f"positive number of ms"
                    )
        for name, band in (("correction", CORRECTION_BAND), ("calibration", CALIBRATION_BAND)):
            fix = data.get(name)
            if fix is None:
                continue
            if not isinstance(fix, dict):
                raise NasError(f"{where}: {name} must be null or an object with scale and offset_ms")
            check_scale(name, fix.get("scale"), fix.get("offset_ms"), band, where)
        if data["kind"] == "estimated" and not data["ops"] and data.get("model") is None:
            raise NasError(f"{where}: an estimated table needs ops or a cost model")
        model = data.get("model")
        if model is not None and not isinstance(model, dict):
            raise NasError(f"{where}: model must be null or an object")
        try:
            return cls(
                device=data["device"],
                runtime=data["runtime"],
                kind=data["kind"],
                ops=data["ops"],
                fixed=data["fixed"],
                resolutions=list(data["resolutions"]),
                meta={k: v for k, v in data.items() if k not in _CORE},
                correction=data.get("correction"),
                calibration=data.get("calibration"),
                model=model,
            )
        except (KeyError, TypeError, ValueError) as err:
            raise NasError(f"{where}: malformed table ({type(err).__name__}: {err})") from None

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

    def merge(self, other: LatencyTable) -> None:
        """Take the entries and resolutions of `other` (the same table, rebuilt with more ops)."""
        for key, entry in other.ops.items():
            self.add(key, entry)
        for key, entry in other.fixed.items():
            self.fixed[key] = entry
            self.ms[key] = float(entry["median"])
        self.resolutions = sorted({*self.resolutions, *other.resolutions})


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
    "calibration",
    "model",
}


def load_table(
    name_or_path: str | Path, *, runtime: str | None = None, resolution: int | None = None, machine_check: bool = True
) -> LatencyTable:
    """A device name ("cpu", "pixel"/"pixel1", or any name with a table in latency_tables/) or a table path.

    A table measured on another machine (CPU model, cores, runtime version) is never used silently: the first
    load on this machine times a few networks end to end and compares (`nas.latency.machine`), once per machine;
    `machine_check=False` skips it (the commands that time, calibrate or rebuild the table)."""
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
    if machine_check and table.engine is not None:
        machine.ensure_checked(table)
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


def predict(arch: Arch, table: LatencyTable) -> Prediction:
    """Sum of the ops' latencies plus the fixed costs (input, head), through the table's correction. The hot path
    of a search: after the first call for a spec, dict lookups only; ops not looked up yet are priced by
    `LatencyTable.price`."""
    ops = arch_ops(arch)
    ms_of = table.ms
    try:
        ms = [ms_of[k] for k in ops.keys]
        fixed = ms_of[ops.head] + ms_of[ops.input]
    except KeyError:
        if table.estimator is None:
            raise _missing_error(arch, table, missing_ops(arch, table)) from None
        ms = [table.price(site.x, site.block) for site in ops.sites]
        fixed = table.price_fixed(ops.head) + table.price_fixed(ops.input)
    raw = sum(ms) + fixed
    return Prediction(
        latency_ms=table.correct(raw),
        raw_ms=raw,
        device=table.device,
        kind=table.kind,
        runtime=table.runtime,
        fixed_ms=fixed,
        _ops=ops,
        _ms=ms,
        _table=table,
    )
