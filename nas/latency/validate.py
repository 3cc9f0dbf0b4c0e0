"""Validating a measured table: time whole networks here, end to end, with the table's runtime and protocol,
and compare with the table's predictions.

Ground truth for one network: `rounds` worker processes each load every network and time them in `passes`
interleaved passes (each pass its own shuffled order, `protocol.runs` runs per network, the cache evicted before
each run); a round's figure is the median of its pass medians, the ground truth the median over rounds
(why interleaved: docs/latency.md). If the plain sum of isolated ops is biased, a scale and an offset fitted on
a calibration subset of the random networks correct it; figures are then reported on the other networks only.
Validation reports; it changes the table only when asked (`save_correction`), and never with a correction
fitted on a busy machine or outside the sane band.
"""

from __future__ import annotations

import math
import random
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from nas.arch import Arch
from nas.errors import NasError
from nas.io import writable_dir, write_json
from nas.latency.items import zoo_archs
from nas.latency.measure import BUSY_SHARE, Load, Protocol, progress_bar, time_items
from nas.latency.metrics import check_scale, fit_correction, kendall_tau, metrics
from nas.latency.table import CORRECTION_BAND, LatencyTable, missing_ops, predict

SUMMARY = ("samples", "mape", "median_ape", "within_5pct", "within_10pct", "kendall_tau", "bias", "worst")


def check_options(samples: int, rounds: int, passes: int, calibration: float) -> None:
    """The limits of validate's own options (the protocol checks its own)."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 2:
        raise NasError(f"samples must be an integer of at least 2, got {samples!r}")
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise NasError(f"rounds must be an integer of at least 1, got {rounds!r}")
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise NasError(f"passes must be an integer of at least 1, got {passes!r}")
    if not (isinstance(calibration, int | float) and 0 <= calibration < 1):
        raise NasError(f"calibration must be a share in [0, 1), got {calibration!r}")


def sample_networks(table: LatencyTable, space: str, samples: int, seed: int) -> list[Arch]:
    from nas.space import load_space

    rng = random.Random(seed)
    sp = load_space(space)
    archs: list[Arch] = []
    seen: set[str] = set()
    tries = 0
    while len(archs) < samples and tries < samples * 20:
        tries += 1
        arch = sp.random_arch(rng, resolution=table.resolution)
        if arch.hash not in seen:
            seen.add(arch.hash)
            archs.append(arch.replace(name=f"{sp.name}-random-{len(archs)}"))
    uncovered = [a for a in archs if missing_ops(a, table)]
    if uncovered:
        miss = missing_ops(uncovered[0], table)
        raise NasError(
            f"table {table.where} misses {len(miss)} op(s) of space {space} at {table.resolution} (e.g. "
            f"{miss[0][1]}); build it with `nas latency build --device {table.device} --space {space} "
            f"--resolution {table.resolution}`"
        )
    return archs


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
    allow_busy: bool = False,
    busy_share: float = BUSY_SHARE,
) -> dict[str, Any]:
    """Time networks here and compare; returns the report (and writes it with a plot to `out_dir`). With
    `save_correction` the fitted correction is written into the table's file, and the report says what changed."""
    check_options(samples, rounds, passes, calibration)
    if table.engine is None:
        raise NasError(
            f"table {table.where} is {table.kind} for {table.runtime}: validate times networks on this machine, so "
            f"it needs a table measured here (`nas latency build`); the pixel1 model's cross-validation is printed "
            f"by `python -m nas.latency.pixel`"
        )
    if save_correction and table.path is None:
        raise NasError("--save-correction needs a table file to write the correction into")
    protocol = Protocol.from_dict(table.meta.get("protocol", {}))
    started = time.monotonic()
    archs = sample_networks(table, space, samples, seed)
    n_random = len(archs)
    zoo_names = []
    if with_zoo:
        for arch in zoo_archs(table.resolution):
            if not missing_ops(arch, table):
                archs.append(arch)
                zoo_names.append(arch.name)

    workdir = writable_dir(Path(out_dir or ".") / ".validate-work")
    per_round: list[dict[int, float]] = []
    load = Load()
    try:
        with progress_bar("latency validate", rounds * len(archs), progress) as advance:
            for r in range(rounds):
                order = list(range(len(archs)))
                random.Random(seed * 7919 + r).shuffle(order)
                items = [{"kind": "net", "arch": archs[i].to_dict(), "id": i} for i in order]
                try:
                    timed = time_items(
                        items,
                        protocol,
                        workdir=workdir,
                        passes=passes,
                        seed=seed * 7919 + r,
                        cpu=cpu,
                        on_progress=advance,
                        allow_busy=allow_busy,
                        busy_share=busy_share,
                        what="validating",
                    )
                except RuntimeError as err:
                    raise NasError(f"latency validate stopped: {err}") from None
                load = load.add(timed.load)
                per_round.append({i: statistics.median(statistics.median(p) for p in v) for i, v in timed.runs.items()})
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    names = [a.name for a in archs]
    measured = [statistics.median(rnd[i] for rnd in per_round) for i in range(len(archs))]
    preds = [predict(a, table) for a in archs]
    predicted = [p.raw_ms for p in preds]  # the plain sum: a stored correction is refitted, never stacked
    spread = [
        (max(rnd[i] for rnd in per_round) - min(rnd[i] for rnd in per_round)) / measured[i] for i in range(len(archs))
    ]
    busy = load.other_share > busy_share
    result: dict[str, Any] = {
        "device": table.device,
        "runtime": table.runtime,
        "kind": table.kind,
        "table": table.where,
        "space": space,
        "resolution": table.resolution,
        "random_networks": n_random,
        "zoo_networks": zoo_names,
        "rounds": rounds,
        "seed": seed,
        "passes": passes,
        "runs_per_pass": protocol.runs,
        "load": {**load.to_dict(), "busy_limit": busy_share, "timed_under_load": busy},
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
    if table.correction or table.calibration:  # the table as predictions use it
        result["as_predicted"] = metrics(names, [p.latency_ms for p in preds], measured)
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
    if save_correction:
        result["correction_saved"] = _save_correction(table, result, busy)
    result.update({k: final[k] for k in SUMMARY})
    result["reported"] = "corrected_holdout" if final is result.get("corrected_holdout") else "raw"
    result["wall_s"] = round(time.monotonic() - started, 1)
    if out_dir is not None:
        result["plot"] = str(plot(result, out_dir / f"validate-{table.device}.png"))
        write_json(out_dir / f"validate-{table.device}.json", result)
    return result


def _save_correction(table: LatencyTable, result: dict[str, Any], busy: bool) -> dict[str, Any]:
    """Write the fitted correction into the table's file, or refuse with the reason; say what changed."""
    fitted = result.get("correction")
    if fitted is None:
        raise NasError("--save-correction: no correction was fitted (too few networks, or --no-correction)")
    if busy:
        raise NasError(
            f"--save-correction refused: the networks were timed under load (other processes used "
            f"{result['load']['other_cpu_share']:.0%} of the CPU); a correction fitted then would skew every "
            f"prediction — rerun on a quiet machine"
        )
    check_scale("fitted correction", fitted["scale"], fitted["offset_ms"], CORRECTION_BAND, "--save-correction refused")
    before = table.correction
    after = {**fitted, "space": result["space"], "command": "nas latency validate --save-correction"}
    saved = LatencyTable.from_dict(table.to_dict(), where=table.where)
    saved.correction = after
    saved.save(table.path)  # type: ignore[arg-type]
    table.correction = after
    return {"path": str(table.path), "before": before, "after": after}


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
