"""Building a measured table: enumerate the ops a source can produce, time each here, resumably.

A build keeps its state in `.<table>.build/` beside the table: `checkpoint.json` (every timed repeat so far,
written atomically every few seconds) and `onnx/` (each op exported once, reused by later rounds and by a
resumed build). A killed build rerun with the same command skips what is done. The table file itself is
written once, complete; then the build directory is removed.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import random
import shutil
import statistics
import time
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from nas.arch import Arch, Block, Shape
from nas.errors import NasError
from nas.io import read_json, write_json
from nas.latency.keys import arch_ops, head_key, input_key, op_key
from nas.latency.measure import Protocol, run_worker
from nas.latency.table import FORMAT, LatencyTable, runtime_name, stats

CHECKPOINT_EVERY_S = 5.0


# ------------------------------------------------------------------------------------------ sources


def op_item(x: Shape, block: Block) -> dict[str, Any]:
    return {"kind": "op", "x": [x.c, x.h, x.w], "block": block.to_dict()}


def arch_items(archs: Iterable[Arch]) -> dict[str, dict[str, Any]]:
    """Every op, head and input of these networks, by key."""
    items: dict[str, dict[str, Any]] = {}
    for arch in archs:
        ops = arch_ops(arch)
        for site, key in zip(ops.sites, ops.keys, strict=True):
            items.setdefault(key, op_item(site.x, site.block))
        items.setdefault(ops.head, {"kind": "head", "key": ops.head})
        items.setdefault(ops.input, {"kind": "input", "x": [arch.in_channels, arch.resolution, arch.resolution]})
    return items


def space_items(name: str, resolution: int, num_classes: int = 1000) -> dict[str, dict[str, Any]]:
    """Every distinct op any architecture of the space can hold (all choices at all positions), its heads and
    its input."""
    from nas.space import load_space

    space = load_space(name)
    items: dict[str, dict[str, Any]] = {}
    ops = space.ops(resolution)
    for x, block in ops:
        items.setdefault(op_key(x, block), op_item(x, block))
    sample = space.random_arch(random.Random(0), resolution=resolution, num_classes=num_classes)
    head_blocks = set(sample.head.blocks)
    last = [(x, b) for x, b in ops if b in head_blocks] if head_blocks else ops
    if not head_blocks:  # the head pools the last stage's output: every shape at the smallest map size
        smallest = min(b.out_shape(x).h for x, b in ops)
        last = [(x, b) for x, b in ops if b.out_shape(x).h == smallest]
    for x, block in last:
        y = block.out_shape(x)
        pooled = sample.replace(
            stem=(), stages=(), head=replace(sample.head, blocks=()), in_channels=y.c, resolution=y.h
        )
        key = head_key(pooled)
        items.setdefault(key, {"kind": "head", "key": key})
    ikey = input_key(sample.in_channels, resolution)
    items[ikey] = {"kind": "input", "x": [sample.in_channels, resolution, resolution]}
    return items


def zoo_archs(resolution: int, num_classes: int = 1000) -> list[Arch]:
    from nas import zoo

    archs = []
    for variant in zoo.variants():
        try:
            archs.append(zoo.get(variant.name, resolution=resolution, num_classes=num_classes))
        except NasError:
            continue  # a net whose strides do not fit this resolution holds no ops here
    return archs


def load_arch_file(path: str | Path) -> Arch:
    from nas.arch import SpecError

    data = read_json(path, "architecture file")
    try:
        return Arch.from_dict(data)
    except SpecError as err:
        raise NasError(f"{path}: {err}") from None


# ------------------------------------------------------------------------------------------ host facts


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


# ------------------------------------------------------------------------------------------ build


def build_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.build"


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
    runtime: str = "onnxruntime",
    threads: int = 1,
    protocol: Protocol | None = None,
    source: dict[str, Any] | None = None,
    cpu: int | None = None,
    chunk: int = 150,
    progress: bool = True,
    seed: int = 0,
    note: str | None = None,
    add: bool = False,
) -> tuple[LatencyTable, dict[str, Any]]:
    """Time every item (key -> item) `protocol.rounds` times in worker processes, resuming a checkpoint; write
    the table to `out`, replacing it, or with `add` keeping the ops of the table there (same runtime, protocol
    and host) and timing only the others. Returns the table and a summary (counts, wall time)."""
    protocol = protocol or Protocol()
    label = runtime_name(runtime, threads)
    started = time.monotonic()
    workdir = build_dir(out)
    workdir.mkdir(parents=True, exist_ok=True)
    ckpt_path = workdir / "checkpoint.json"
    identity = {"device": device, "runtime": label, "protocol": asdict(protocol)}

    existing: LatencyTable | None = None
    if add and out.exists():
        existing = LatencyTable.from_dict(read_json(out, "latency table"), where=str(out))
        theirs = Protocol.from_dict(existing.meta.get("protocol", {}))
        same_host = existing.meta.get("host", {}).get("hostname") == host_info()["hostname"]
        if existing.runtime != label or existing.kind != "measured" or theirs != protocol or not same_host:
            raise NasError(
                f"{out} holds a {existing.kind} {existing.runtime} table of another protocol or host; ops timed "
                f"differently must not be mixed: build without --add to replace it, or into another --out"
            )
    done_keys = set(existing.ops) | set(existing.fixed) if existing else set()

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
    repeats_of: dict[str, list[list[list[float]]]] = state["repeats"]  # key -> per round -> repeats

    todo_keys = [k for k in items if k not in done_keys]
    total = len(todo_keys) * protocol.rounds
    done_runs = sum(min(len(repeats_of.get(k, [])), protocol.rounds) for k in todo_keys)
    measured_now = 0
    last_save = time.monotonic()
    failures: dict[str, str] = {}

    prior_wall = float(state.get("wall_s", 0.0))

    def save() -> None:
        state["wall_s"] = round(prior_wall + time.monotonic() - started, 1)
        write_json(ckpt_path, state)

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bar = Progress(
        TextColumn("[bold]latency build[/] {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("left"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not progress,
        transient=False,
    )
    try:
        with bar:
            task = bar.add_task(f"{device} {label}", total=total, completed=done_runs)
            for round_index in range(protocol.rounds):
                pending = [k for k in todo_keys if len(repeats_of.get(k, [])) <= round_index]
                random.Random(seed * 1000 + round_index).shuffle(pending)
                for start in range(0, len(pending), chunk):
                    batch = [{**items[k], "id": k} for k in pending[start : start + chunk]]
                    if protocol.passes:
                        passes = _interleaved_chunk(
                            batch, runtime, threads, protocol, workdir, cpu, seed * 1000 + round_index, bar, task
                        )
                        for k, reps in passes.items():
                            repeats_of.setdefault(k, []).append(reps)
                            measured_now += 1
                        save()
                        last_save = time.monotonic()
                        continue
                    for msg in run_worker(
                        batch,
                        runtime=runtime,
                        threads=threads,
                        protocol=protocol,
                        workdir=workdir,
                        cpu=cpu,
                        onnx_cache=workdir / "onnx",
                    ):
                        key = msg["id"]
                        if "error" in msg:
                            failures[key] = msg["error"]
                            continue
                        repeats_of.setdefault(key, []).append(msg["repeats"])
                        measured_now += 1
                        bar.advance(task)
                        if time.monotonic() - last_save > CHECKPOINT_EVERY_S:
                            save()
                            last_save = time.monotonic()
                    save()
    except KeyboardInterrupt:
        save()
        raise
    except RuntimeError as err:
        save()
        raise NasError(f"latency build stopped ({err}); rerun the same command to resume") from None
    if failures:
        save()
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
                "threads": threads,
                "runtime": runtime,
                "pinned_cpu": cpu,
                "malloc": "MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=1073741824",
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
        runtime=label,
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
    }


def _interleaved_chunk(
    batch: list[dict[str, Any]],
    runtime: str,
    threads: int,
    protocol: Protocol,
    workdir: Path,
    cpu: int | None,
    seed: int,
    bar: Any,
    task: Any,
) -> dict[str, list[list[float]]]:
    """One worker over a chunk of ops in interleaved passes: key -> its runs, one list per pass."""
    runs: dict[str, list[list[float]]] = {}
    for msg in run_worker(
        batch,
        runtime=runtime,
        threads=threads,
        protocol=protocol,
        workdir=workdir,
        cpu=cpu,
        onnx_cache=workdir / "onnx",
        interleave={"passes": protocol.passes, "seed": seed},
    ):
        if "pass" in msg:
            for key, samples in msg["samples"].items():
                runs.setdefault(key, []).append(samples)
            bar.advance(task, len(batch) / protocol.passes)
    if len(runs) != len(batch) or any(len(v) != protocol.passes for v in runs.values()):
        raise RuntimeError(f"interleaved worker returned {len(runs)}/{len(batch)} ops")
    return runs


def _resolutions(items: dict[str, dict[str, Any]]) -> set[int]:
    return {int(item["x"][1]) for item in items.values() if item["kind"] == "input"}


def measure_missing(arch: Arch | Iterable[Arch], table: LatencyTable, progress: Any = None) -> int:
    """Time the ops of `arch` (one spec, or several in one batch) that a measured table lacks, here, with the
    table's own protocol, into its file; the table object is refreshed in place. Returns how many ops were timed."""
    from nas.latency.table import load_table, missing_ops
    from nas.latency.validate import runtime_of

    archs = [arch] if isinstance(arch, Arch) else list(arch)
    keys = {key for a in archs for _, key in missing_ops(a, table)}
    if not keys:
        return 0
    if table.path is None or table.kind != "measured":
        raise NasError(f"only a table measured on this machine can time missing ops; {table.where} is {table.kind}")
    runtime, threads = runtime_of(table)
    items = {k: v for k, v in arch_items(archs).items() if k in keys}
    build_table(
        device=table.device,
        items=items,
        out=table.path,
        runtime=runtime,
        threads=threads,
        protocol=Protocol.from_dict(table.meta.get("protocol", {})),
        source={"measure_missing": ", ".join(sorted({a.name or a.hash for a in archs}))[:200]},
        add=True,
        progress=progress,
    )
    fresh = load_table(str(table.path))
    table.ops, table.fixed, table.ms, table.resolutions = fresh.ops, fresh.fixed, fresh.ms, fresh.resolutions
    return len(items)
