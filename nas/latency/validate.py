"""Validating a measured table: time whole networks here, end to end, with the table's runtime and protocol,
and compare with the table's predictions.

Ground truth for one network: `rounds` worker processes each load every network and time them in `passes`
interleaved passes (each pass its own shuffled order, `protocol.runs` runs per network, the cache evicted before
each run); a round's figure is the median of its pass medians, the ground truth the median over rounds. Timing
one network after the other let the machine's slow drifts land on a few networks: two such rounds of the same
20 networks agreed only to Kendall τ 0.65 here, interleaved rounds to 0.99 (bench/latency_groundtruth.py). If the
plain sum of isolated ops is biased, a scale and an offset fitted on a calibration subset of the random
networks correct it; figures are then reported on the other networks only.
"""

from __future__ import annotations

import math
import random
import statistics
import time
from pathlib import Path
from typing import Any

from nas.arch import Arch
from nas.errors import NasError
from nas.io import write_json
from nas.latency.measure import Protocol, run_worker
from nas.latency.table import LatencyTable, missing_ops, predict


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's τ-b (ties counted in neither pair class)."""
    n = len(a)
    concordant = discordant = ties_a = ties_b = 0
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denom if denom else float("nan")


def metrics(names: list[str], predicted: list[float], measured: list[float], worst: int = 5) -> dict[str, Any]:
    errors = [p / m - 1 for p, m in zip(predicted, measured, strict=True)]
    abs_err = [abs(e) for e in errors]
    order = sorted(range(len(errors)), key=lambda i: -abs_err[i])
    return {
        "samples": len(errors),
        "mape": round(statistics.fmean(abs_err), 4),
        "median_ape": round(statistics.median(abs_err), 4),
        "within_5pct": round(sum(e <= 0.05 for e in abs_err) / len(errors), 4),
        "within_10pct": round(sum(e <= 0.10 for e in abs_err) / len(errors), 4),
        "kendall_tau": round(kendall_tau(predicted, measured), 4),
        "bias": round(statistics.median(errors), 4),
        "worst": [
            {
                "name": names[i],
                "predicted_ms": round(predicted[i], 3),
                "measured_ms": round(measured[i], 3),
                "error": round(errors[i], 4),
            }
            for i in order[:worst]
        ],
    }


def fit_correction(predicted: list[float], measured: list[float]) -> tuple[float, float]:
    """measured ≈ scale·predicted + offset, least squares on relative error."""
    import numpy as np

    p, m = np.array(predicted), np.array(measured)
    a = np.stack([p / m, 1 / m], axis=1)
    scale, offset = np.linalg.lstsq(a, np.ones(len(m)), rcond=None)[0]
    return float(scale), float(offset)


def runtime_of(table: LatencyTable) -> tuple[str, int]:
    """(runtime, threads) to time with, read from the table's runtime label."""
    label = table.runtime
    parts = label.split("-")
    if table.kind != "measured" or parts[0] not in ("onnxruntime", "torch"):
        raise NasError(
            f"table {table.where} is {table.kind} for {label}: validate times networks on this machine, so it needs "
            f"a table measured here (`nas latency build`); the pixel1 model's cross-validation is printed by "
            f"`python -m nas.latency.pixel`"
        )
    threads = int("".join(ch for ch in parts[-1] if ch.isdigit()) or 1)
    return parts[0], threads


def validate(
    table: LatencyTable,
    *,
    space: str = "mobilenetv3",
    samples: int = 50,
    seed: int = 0,
    with_zoo: bool = True,
    rounds: int = 3,
    passes: int = 30,
    calibration: float = 0.4,
    correct: bool = True,
    save_correction: bool = False,
    out_dir: Path | None = None,
    cpu: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    from nas.latency.build import zoo_archs
    from nas.space import load_space

    runtime, threads = runtime_of(table)
    resolution = table.resolution
    protocol = Protocol.from_dict(table.meta.get("protocol", {}))
    started = time.monotonic()
    rng = random.Random(seed)
    sp = load_space(space)
    archs: list[Arch] = []
    seen: set[str] = set()
    tries = 0
    while len(archs) < samples and tries < samples * 20:
        tries += 1
        arch = sp.random_arch(rng, resolution=resolution)
        if arch.hash not in seen:
            seen.add(arch.hash)
            archs.append(arch.replace(name=f"{sp.name}-random-{len(archs)}"))
    uncovered = [a for a in archs if missing_ops(a, table)]
    if uncovered:
        miss = missing_ops(uncovered[0], table)
        raise NasError(
            f"table {table.where} misses {len(miss)} op(s) of space {space} at {resolution} (e.g. {miss[0][1]}); "
            f"build it with `nas latency build --device {table.device} --space {space} --resolution {resolution}`"
        )
    n_random = len(archs)
    zoo_names = []
    if with_zoo:
        for arch in zoo_archs(resolution):
            if not missing_ops(arch, table):
                archs.append(arch)
                zoo_names.append(arch.name)

    workdir = (out_dir or Path(".")) / ".validate-work"
    workdir.mkdir(parents=True, exist_ok=True)
    per_round: list[dict[int, float]] = []
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("[bold]latency validate[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )
    with bar:
        task = bar.add_task("", total=rounds * passes)
        for r in range(rounds):
            order = list(range(len(archs)))
            random.Random(seed * 7919 + r).shuffle(order)
            items = [{"kind": "net", "arch": archs[i].to_dict(), "id": i} for i in order]
            pass_medians: dict[int, list[float]] = {i: [] for i in range(len(archs))}
            try:
                for msg in run_worker(
                    items,
                    runtime=runtime,
                    threads=threads,
                    protocol=protocol,
                    workdir=workdir,
                    cpu=cpu,
                    onnx_cache=workdir / "onnx",
                    interleave={"passes": passes, "seed": seed * 7919 + r},
                ):
                    if "pass" not in msg:
                        continue
                    for i, ms in msg[protocol.clock].items():
                        pass_medians[int(i)].append(ms)
                    bar.advance(task)
            except RuntimeError as err:
                raise NasError(f"latency validate stopped: {err}") from None
            if any(len(v) != passes for v in pass_medians.values()):
                raise NasError(f"latency validate stopped: round {r + 1} timed only part of the networks")
            per_round.append({i: statistics.median(v) for i, v in pass_medians.items()})
    import shutil

    shutil.rmtree(workdir, ignore_errors=True)

    saved_correction = table.correction
    table.correction = None  # judge the plain sum first; a stored correction is refitted, never stacked
    names = [a.name for a in archs]
    measured = [statistics.median(rnd[i] for rnd in per_round) for i in range(len(archs))]
    predicted = [predict(a, table).raw_ms for a in archs]
    table.correction = saved_correction
    spread = [
        (max(rnd[i] for rnd in per_round) - min(rnd[i] for rnd in per_round)) / measured[i] for i in range(len(archs))
    ]
    result: dict[str, Any] = {
        "device": table.device,
        "runtime": table.runtime,
        "kind": table.kind,
        "table": table.where,
        "space": space,
        "resolution": resolution,
        "random_networks": n_random,
        "zoo_networks": zoo_names,
        "rounds": rounds,
        "seed": seed,
        "passes": passes,
        "runs_per_pass": protocol.runs,
        "measurement_spread_median": round(statistics.median(spread), 4) if rounds > 1 else None,
        "measurement_tau_between_rounds": round(
            statistics.fmean(
                kendall_tau([a[i] for i in range(len(archs))], [b[i] for i in range(len(archs))])
                for k, a in enumerate(per_round)
                for b in per_round[k + 1 :]
            ),
            4,
        )
        if rounds > 1
        else None,
        "raw": metrics(names, predicted, measured),
        "networks": [
            {"name": n, "predicted_ms": round(p, 4), "measured_ms": round(m, 4)}
            for n, p, m in zip(names, predicted, measured, strict=True)
        ],
    }
    final = result["raw"]
    n_cal = math.ceil(calibration * n_random) if correct else 0
    if correct and 2 <= n_cal < len(archs):
        scale, offset = fit_correction(predicted[:n_cal], measured[:n_cal])
        rest = range(n_cal, len(archs))
        corrected = [predicted[i] * scale + offset for i in rest]
        result["correction"] = {
            "scale": round(scale, 5),
            "offset_ms": round(offset, 5),
            "fitted_on": n_cal,
            "reported_on": len(archs) - n_cal,
        }
        result["raw_holdout"] = metrics(
            [names[i] for i in rest], [predicted[i] for i in rest], [measured[i] for i in rest]
        )
        result["corrected_holdout"] = metrics([names[i] for i in rest], corrected, [measured[i] for i in rest])
        final = result["corrected_holdout"]
        if save_correction and table.path is not None:
            table.correction = {**result["correction"], "space": space, "command": "nas latency validate"}
            table.save(table.path)
            result["correction_saved_to"] = str(table.path)
    result.update(
        {
            k: final[k]
            for k in (
                "samples",
                "mape",
                "median_ape",
                "within_5pct",
                "within_10pct",
                "kendall_tau",
                "bias",
                "worst",
            )
        }
    )
    result["reported"] = "corrected_holdout" if final is result.get("corrected_holdout") else "raw"
    result["wall_s"] = round(time.monotonic() - started, 1)
    if out_dir is not None:
        result["plot"] = str(plot(result, out_dir / f"validate-{table.device}.png"))
        write_json(out_dir / f"validate-{table.device}.json", result)
    return result


def plot(result: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.io import atomic_write

    nets = result["networks"]
    meas = [n["measured_ms"] for n in nets]
    pred = [n["predicted_ms"] for n in nets]
    fig, ax = plt.subplots(figsize=(5, 5), dpi=120)
    is_zoo = [n["name"] in result["zoo_networks"] for n in nets]
    ax.scatter(
        [m for m, z in zip(meas, is_zoo, strict=True) if not z],
        [p for p, z in zip(pred, is_zoo, strict=True) if not z],
        s=14,
        label="random networks (raw sum)",
    )
    if any(is_zoo):
        ax.scatter(
            [m for m, z in zip(meas, is_zoo, strict=True) if z],
            [p for p, z in zip(pred, is_zoo, strict=True) if z],
            s=22,
            marker="s",
            label="zoo (raw sum)",
        )
    lo, hi = min(meas + pred) * 0.9, max(meas + pred) * 1.1
    ax.plot([lo, hi], [lo, hi], "k-", lw=1)
    for f in (0.9, 1.1):
        ax.plot([lo, hi], [lo * f, hi * f], "k:", lw=0.8)
    if "correction" in result:
        c = result["correction"]
        ax.plot(
            [lo, hi],
            [(lo - c["offset_ms"]) / c["scale"], (hi - c["offset_ms"]) / c["scale"]],
            "r--",
            lw=0.8,
            label=f"correction (scale {c['scale']:.3f}, offset {c['offset_ms']:.3f} ms)",
        )
    ax.set_xlabel("measured end to end (ms)")
    ax.set_ylabel("predicted from the table (ms)")
    ax.set_title(
        f"{result['device']} {result['runtime']}: MAPE {result['mape']:.1%}, τ {result['kendall_tau']:.2f} "
        f"({result['reported'].replace('_', ' ')})",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path
