"""Building a measured table: time every item (op, head, input) here, resumably, and write the table once.

A build keeps its state in `.<table>.build/` beside the table: `checkpoint.json` (every timed run so far,
written atomically after every chunk) and `onnx/` (each op exported once, reused by later rounds and by a
resumed build). A killed build rerun with the same command skips what is done. The output path is checked
before any timing starts; the table file itself is written once, complete; then the build directory is removed.
While it times, the machine's load is sampled: a busy machine stops the build (the checkpoint is kept) unless
`allow_busy`, and the table records the load it was timed under.
"""

from __future__ import annotations

import datetime as dt
import random
import shutil
import statistics
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from nas.arch import Arch
from nas.errors import NasError
from nas.io import read_json, write_json
from nas.latency.files import check_out_path
from nas.latency.items import arch_items
from nas.latency.machine import host_info, library_versions
from nas.latency.measure import BUSY_SHARE, Load, Protocol, TimingWorker, busy_error, progress_bar, time_items
from nas.latency.table import FORMAT, LatencyTable, device_name, stats

__all__ = ["build_table", "buildable_device", "check_out_path", "library_versions", "measure_missing"]


def build_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.build"


def buildable_device(name: str) -> str:
    """A device name a table can be built for here (not the estimated pixel1), canonical."""
    device = device_name(name)
    if device == "pixel1":
        raise NasError(
            "pixel1 is an estimated table (nothing here runs on a Pixel): time ops on the phone with "
            "`nas latency export-ops` and `nas latency import`, or refit it with `python -m nas.latency.pixel`"
        )
    return device


def entry_from_repeats(repeats: list[list[float]]) -> dict[str, Any]:
    samples = [s for rep in repeats for s in rep]
    entry = stats(samples)
    entry["rmin"] = round(min(statistics.median(rep) for rep in repeats), 6)
    entry["rounds"] = 0
    return entry


def build_table(
    *,
    device: str,
    items: dict[str, dict[str, Any]],
    out: Path,
    protocol: Protocol | None = None,
    source: dict[str, Any] | None = None,
    cpu: int | None = None,
    chunk: int = 150,
    progress: bool = True,
    seed: int = 0,
    note: str | None = None,
    add: bool = False,
    allow_busy: bool = False,
    busy_share: float = BUSY_SHARE,
    workers: Sequence[TimingWorker] | None = None,
) -> tuple[LatencyTable, dict[str, Any]]:
    """Time every item (key -> item) `protocol.rounds` times in worker processes, resuming a checkpoint; write
    the table to `out`, replacing it, or with `add` keeping the ops of the table there (same runtime, protocol
    and host) and timing only the others. Returns the table and a summary (counts, wall time, load).
    `workers`: running workers, round r on `workers[r % len(workers)]` (each chunk gets a fresh one without)."""
    protocol = protocol or Protocol()
    device = buildable_device(device)
    out = check_out_path(Path(out))
    started = time.monotonic()
    workdir = build_dir(out)
    ckpt_path = workdir / "checkpoint.json"
    identity = {"device": device, "runtime": protocol.label, "protocol": protocol.to_dict()}

    existing: LatencyTable | None = None
    if add and out.exists():
        existing = LatencyTable.from_dict(read_json(out, "latency table"), where=str(out))
        theirs = Protocol.from_dict(existing.meta.get("protocol", {}))
        same_host = existing.meta.get("host", {}).get("hostname") == host_info()["hostname"]
        if existing.runtime != protocol.label or existing.kind != "measured" or theirs != protocol or not same_host:
            raise NasError(
                f"{out} holds a {existing.kind} {existing.runtime} table of another protocol or host; ops timed "
                f"differently must not be mixed: build without --add to replace it, or into another --out"
            )
    done_keys = set(existing.ops) | set(existing.fixed) if existing else set()

    workdir.mkdir(parents=True, exist_ok=True)
    state: dict[str, Any] = {"format": FORMAT + "+checkpoint", **identity, "repeats": {}}
    if ckpt_path.exists():
        saved = read_json(ckpt_path, "build checkpoint")
        if {k: saved.get(k) for k in identity} == identity:
            state = saved
        else:
            raise NasError(
                f"{ckpt_path} is a build with other settings ({saved.get('runtime')}, protocol "
                f"{saved.get('protocol')}); rerun with those settings or delete {workdir}"
            )
    repeats_of: dict[str, list[list[list[float]]]] = state["repeats"]  # key -> per round -> repeats or passes
    load = Load(**state.get("load", {}))

    todo_keys = [k for k in items if k not in done_keys]
    total = len(todo_keys) * protocol.rounds
    done_runs = sum(min(len(repeats_of.get(k, [])), protocol.rounds) for k in todo_keys)
    measured_now = 0
    failures: dict[str, str] = {}
    prior_wall = float(state.get("wall_s", 0.0))

    def save() -> None:
        state["wall_s"] = round(prior_wall + time.monotonic() - started, 1)
        state["load"] = {
            "other_share": load.other_share,
            "other_runnable": load.other_runnable,
            "seconds": load.seconds,
        }
        write_json(ckpt_path, state)

    try:
        with progress_bar(f"latency build {device} {protocol.label}", total, progress, done_runs) as advance:
            for round_index in range(protocol.rounds):
                pending = [k for k in todo_keys if len(repeats_of.get(k, [])) <= round_index]
                random.Random(seed * 1000 + round_index).shuffle(pending)
                for start in range(0, len(pending), chunk):
                    batch = [{**items[k], "id": k} for k in pending[start : start + chunk]]
                    timed = time_items(
                        batch,
                        protocol,
                        workdir=workdir,
                        seed=seed * 1000 + round_index,
                        cpu=cpu,
                        on_progress=advance,
                        allow_busy=True,
                        worker=workers[round_index % len(workers)] if workers else None,
                    )
                    load = load.add(timed.load)
                    failures.update(timed.errors)
                    for key, runs in timed.runs.items():
                        repeats_of.setdefault(key, []).append(runs)
                        measured_now += 1
                    save()
                    if timed.load.other_share > busy_share and not allow_busy:
                        raise busy_error(timed.load, "timing ops", busy_share)
    except KeyboardInterrupt:
        save()
        raise
    except NasError:
        save()
        raise
    except RuntimeError as err:
        save()
        raise NasError(f"latency build stopped ({err}); rerun the same command to resume") from None
    if failures:
        key, why = next(iter(failures.items()))
        raise NasError(f"{len(failures)} op(s) could not be timed, e.g. {key}: {why}; the table was not written")

    ops = dict(existing.ops) if existing else {}
    fixed = dict(existing.fixed) if existing else {}
    for key in todo_keys:
        rounds = repeats_of[key]
        entry = entry_from_repeats([rep for rnd in rounds for rep in rnd])
        entry["rounds"] = len(rounds)
        (fixed if items[key]["kind"] in ("head", "input") else ops)[key] = entry
    resolutions = sorted({*(existing.resolutions if existing else []), *_resolutions(items)})
    meta = dict(existing.meta) if existing else {}
    meta.update(
        {
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "host": host_info(),
            "versions": library_versions(),
            "protocol": {
                **protocol.to_dict(),
                "pinned_cpu": cpu,
                "malloc": "MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=1073741824",
            },
            "load": {
                **load.to_dict(),
                "round_spread_median": _round_spread(repeats_of, todo_keys),
                "busy_limit": busy_share,
                "timed_under_load": load.other_share > busy_share,
            },
        }
    )
    if note is not None:
        meta["note"] = note
    sources = list(meta.get("sources", []))
    if source and source not in sources:
        sources.append(source)
    meta["sources"] = sources
    wall = time.monotonic() - started
    meta["build"] = {"ops_timed": len(todo_keys), "wall_s": round(prior_wall + wall, 1)}
    table = LatencyTable(
        device=device,
        runtime=protocol.label,
        kind="measured",
        ops=ops,
        fixed=fixed,
        resolutions=resolutions,
        meta=meta,
        correction=existing.correction if existing else None,
    )
    table.save(out)
    table.path = out
    shutil.rmtree(workdir, ignore_errors=True)
    return table, {
        "ops": len(items),
        "timed": len(todo_keys),
        "timed_now": measured_now,
        "reused": len(items) - len(todo_keys),
        "wall_s": round(wall, 1),
        "total_wall_s": round(prior_wall + wall, 1),
        "out": str(out),
        "load": meta["load"],
    }


def _round_spread(repeats_of: dict[str, list[list[list[float]]]], keys: list[str]) -> float | None:
    """How far apart the rounds of an op came out ((max - min) / median of the round medians), median over ops."""
    spreads = []
    for key in keys:
        rounds = [statistics.median(s for rep in rnd for s in rep) for rnd in repeats_of.get(key, [])]
        if len(rounds) > 1:
            spreads.append((max(rounds) - min(rounds)) / statistics.median(rounds))
    return round(statistics.median(spreads), 4) if spreads else None


def _resolutions(items: dict[str, dict[str, Any]]) -> set[int]:
    return {int(item["x"][1]) for item in items.values() if item["kind"] == "input"}


def measure_missing(
    arch: Arch | Iterable[Arch],
    table: LatencyTable,
    progress: bool = False,
    allow_busy: bool = False,
    workers: Sequence[TimingWorker] | None = None,
) -> int:
    """Time the ops of `arch` (one spec, or several in one batch) that a measured table lacks, here, with the
    table's own protocol (on `workers` as in `build_table`), into its file; the new entries are merged into the
    table object. Returns how many ops were timed."""
    from nas.latency.table import missing_ops

    archs = [arch] if isinstance(arch, Arch) else list(arch)
    keys = {key for a in archs for _, key in missing_ops(a, table)}
    if not keys:
        return 0
    if table.path is None or table.engine is None:
        raise NasError(f"only a table measured on this machine can time missing ops; {table.where} is {table.kind}")
    items = {k: v for k, v in arch_items(archs).items() if k in keys}
    built, _ = build_table(
        device=table.device,
        items=items,
        out=table.path,
        protocol=Protocol.from_dict(table.meta.get("protocol", {})),
        source={"measure_missing": ", ".join(sorted({a.name or a.hash for a in archs}))[:200]},
        add=True,
        progress=progress,
        allow_busy=allow_busy,
        workers=workers,
    )
    table.merge(built)
    return len(items)
