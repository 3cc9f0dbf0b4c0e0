"""Issue 6, item 2: does the search beat hand-designed MobileNets at the same predicted latency, on real images?

For each device (`cpu`: a copy of the measured table; `pixel`: the estimated Pixel 1 table) and each of its
latency targets: run `nas.search.search` (proxy training on the CIFAR-10 subset, soft reward, TPE, a fixed time
budget), then train the searched architecture and MobileNetV2, MobileNetV3-Small and MobileNetV3-Large, each
at the widest width multiplier whose predicted latency (224×224, 1000 classes, the same table) is at most the
searched one's (`nas.zoo.widest.widest_width`: bisection on a 0.01 grid of the multiplier), with one identical
recipe (TrainConfig: `--epochs` epochs at
32×32, batch 128, SGD lr 0.2 cosine, crop+flip, residuals zero-initialised) for each of `--seeds`. Reports mean ±
std top-1 on the test split, and the margin of the searched net over the best baseline (the issue's goal:
≥ 2 points). Resumable: finished searches and trainings are kept in results.json and skipped on a rerun.

On `cpu`, baselines at arbitrary widths have ops the space's table lacks: they are timed here, with the table's
protocol, into the copy (out/cpu-table.json), never into latency_tables/.

Full size: 55 min measured on the 2-core VM (2026-11-26, docs/results.md): 4 searches × 6 min, timing the CPU
baselines' ops 4.5 min, 48 trainings × 15 epochs (34–102 s each, one thread) two at a time 27 min:

    MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=1073741824 python bench/evidence_search.py

Smoke (pixel only, one target, two seeds, a few optimizer steps; figures meaningless):
    python bench/evidence_search.py --smoke --out DIR
"""

from __future__ import annotations

import argparse
import shutil
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from evidence_common import Stopwatch, mean_std, out_dir, provenance, pyplot, save, save_figure

BASELINES = ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")
DEPLOY_RESOLUTION = 224
DEPLOY_CLASSES = 1000
GOAL_POINTS = 0.02  # the goal: the searched net ≥ 2 points above the best baseline


# ---------------------------------------------------------------------------------------------- latency


def width_at_latency(family: str, target_ms: float, table: Any, tol: float = 0.01) -> dict[str, Any]:
    """Widest multiplier (on a grid of step `tol`) of a zoo family predicted at most `target_ms` on `table`
    (`nas.zoo.widest.widest_width`), timing the ops the table lacks first."""
    from nas.latency import predict
    from nas.latency.build import measure_missing
    from nas.zoo.widest import widest_width

    timed = 0

    def latency(arch: Any) -> float:
        nonlocal timed
        timed += measure_missing(arch, table, progress=False)
        return float(predict(arch, table).latency_ms)

    found = widest_width(family, target_ms, latency, step=tol, resolution=DEPLOY_RESOLUTION, num_classes=DEPLOY_CLASSES)
    if found is None:
        return {
            "family": family,
            "width": None,
            "latency_ms": None,
            "reachable": False,
            "ops_timed": timed,
            "note": f"even the narrowest width is predicted above {target_ms:.2f} ms",
        }
    extra = {"note": f"capped at width {found.width}"} if found.capped else {"bisection_steps": found.evaluations - 1}
    return {
        "family": family,
        "width": found.width,
        "latency_ms": round(found.latency_ms, 4),
        "reachable": True,
        "ops_timed": timed,
        **extra,
    }


# ---------------------------------------------------------------------------------------------- training

_WORKER_DATA: dict[str, Any] = {}


def train_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one network with the shared recipe and return its top-1; runs inline or in a worker process."""
    import torch

    from nas.accuracy import TrainConfig, evaluate, load_data, train
    from nas.accuracy.evaluator import zero_init_residuals
    from nas.arch import Arch
    from nas.model import build

    torch.set_num_threads(1)
    if job["data"] not in _WORKER_DATA:
        _WORKER_DATA.clear()
        _WORKER_DATA[job["data"]] = load_data(job["data"], seed=0)
    data = _WORKER_DATA[job["data"]]
    arch = Arch.from_dict(job["arch"]).replace(resolution=data.image_size, num_classes=data.num_classes)
    torch.manual_seed(job["seed"])
    model = build(arch)
    zero_init_residuals(model)
    cfg = TrainConfig(**job["recipe"], seed=job["seed"])
    started = time.perf_counter()
    result = train(model, data, cfg)
    return {
        "key": job["key"],
        "seed": job["seed"],
        "val_top1": round(evaluate(model, data.val), 5),
        "test_top1": round(evaluate(model, data.test), 5),
        "steps": getattr(result, "steps", None),
        "params": arch.params,
        "wall_s": round(time.perf_counter() - started, 2),
    }


# ---------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="npz:../shared/data/cifar10_subset.npz")
    p.add_argument("--out", default="bench/results/evidence-search")
    p.add_argument("--devices", nargs="+", default=["cpu", "pixel"], choices=["cpu", "pixel"])
    p.add_argument("--cpu-targets", nargs="+", type=float, default=[3.0, 4.5], help="ms (cpu table)")
    p.add_argument("--pixel-targets", nargs="+", type=float, default=[50.0, 80.0], help="ms (pixel, estimated)")
    p.add_argument("--cpu-table", default="latency_tables/cpu.json", help="measured table to copy for cpu")
    p.add_argument("--search-minutes", type=float, default=6.0, help="time budget of each search")
    p.add_argument("--search-trials", type=int, default=200, help="cap on evaluated trials of each search")
    p.add_argument("--epochs", type=float, default=15, help="final training of every network")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--jobs", type=int, default=2, help="trainings in parallel, one thread each")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code path, figures mean nothing")
    args = p.parse_args(argv)
    if args.smoke:
        args.devices, args.pixel_targets, args.seeds, args.jobs = ["pixel"], [50.0], [0, 1], 1
    return args


def recipe(args: argparse.Namespace) -> dict[str, Any]:
    if args.smoke:
        return {"epochs": 1, "batch_size": 128, "max_steps": 2}
    return {"epochs": args.epochs, "batch_size": 128}


def run_search(args: argparse.Namespace, device: str, device_spec: str, target: float, out: Path) -> dict[str, Any]:
    from nas.search import SearchConfig, search

    name = f"{device}-{target:g}ms"
    run_dir = out / "searches" / name
    if run_dir.exists():  # an unfinished search of a killed run: start it again (its budget is its own)
        shutil.rmtree(run_dir)
    config = SearchConfig(
        target_latency=f"{target:g}ms",
        device=device_spec,
        data=args.data,
        evaluator="train",
        trials=2 if args.smoke else args.search_trials,
        time_budget_s=None if args.smoke else args.search_minutes * 60,
        seed=0,
        out_dir=str(out / "searches"),
        name=name,
        evaluator_options={"max_steps": 2} if args.smoke else {},
    )
    result = search(config)
    if result.best is None:
        return {"name": name, "best": None, "wall_s": round(result.wall_s, 1), "stopped": result.stopped}
    best = result.best.to_dict()
    return {
        "name": name,
        "run_dir": str(run_dir),
        "arch": best["arch"],
        "latency_ms": round(best["latency_ms"], 4),
        "proxy_val_top1": best["accuracy"],
        "reward": best["reward"],
        "trials": result.trials,
        "screened_out": result.screened_out,
        "stopped": result.stopped,
        "wall_s": round(result.wall_s, 1),
        "config": config.to_dict(),
    }


def summarise(cell: dict[str, Any]) -> None:
    """Mean ± std per network and the searched net's margin over the best baseline (in top-1 fraction)."""
    for net in cell["networks"].values():
        tops = [r["test_top1"] for r in net["runs"].values()]
        net["test_top1"] = mean_std(tops)
    searched = cell["networks"].get("searched", {}).get("test_top1", {}).get("mean")
    baselines = {
        k: v["test_top1"]["mean"] for k, v in cell["networks"].items() if k != "searched" and v["test_top1"]["mean"]
    }
    if searched is None or not baselines:
        cell["margin"] = None
        return
    best_name = max(baselines, key=baselines.get)
    margin = searched - baselines[best_name]
    cell["margin"] = {
        "best_baseline": best_name,
        "points": round(100 * margin, 2),
        "goal_points": 100 * GOAL_POINTS,
        "goal_met": margin >= GOAL_POINTS,
    }


def plot(result: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    devices = sorted({c["device"] for c in result["cells"].values()})
    fig, axes = plt.subplots(1, max(1, len(devices)), figsize=(5.5 * max(1, len(devices)), 4.5), dpi=120, squeeze=False)
    markers = {"searched": "*", "mobilenet_v2": "o", "mobilenet_v3_small": "s", "mobilenet_v3_large": "D"}
    for ax, device in zip(axes[0], devices, strict=False):
        for name, marker in markers.items():
            xs, ys, es = [], [], []
            for cell in result["cells"].values():
                net = cell["networks"].get(name)
                if cell["device"] != device or not net or not net.get("test_top1", {}).get("mean"):
                    continue
                xs.append(net["latency_ms"])
                ys.append(net["test_top1"]["mean"])
                es.append(net["test_top1"]["std"] or 0.0)
            if xs:
                ax.errorbar(xs, ys, yerr=es, fmt=marker, ms=9 if name == "searched" else 6, capsize=3, label=name)
        kind = " (estimated)" if device == "pixel" else ""
        ax.set_xlabel(f"predicted latency on {device}{kind}, 224×224 (ms)")
        ax.set_ylabel("test top-1 (mean ± std over seeds)")
        ax.legend(fontsize=7)
    fig.suptitle(
        "searched vs width-scaled MobileNets at equal predicted latency" + (" — SMOKE" if result["smoke"] else ""),
        fontsize=9,
    )
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = out_dir(args.out)
    results_path = out / "results.json"
    from nas.io import read_json
    from nas.latency import load_table

    previous = read_json(results_path, "results") if results_path.exists() else {}
    if previous.get("smoke", args.smoke) != args.smoke:
        previous = {}  # never mix smoke and full-size units
    elif previous and (
        previous.get("settings", {}).get("data") != args.data
        or previous.get("recipe", {}).get("epochs") != recipe(args)["epochs"]
    ):
        raise SystemExit(
            f"{results_path} holds results of another data set or recipe; rerun with their settings "
            "(see its settings), or choose another --out"
        )
    result: dict[str, Any] = {
        **provenance(args.smoke),
        "settings": vars(args).copy(),
        "recipe": recipe(args)
        | {
            "lr": 0.2,
            "optimizer": "sgd (Nesterov)",
            "augment": "crop+flip",
            "resolution": "data's own (32×32)",
            "zero_init_residuals": True,
        },
        "cells": previous.get("cells", {}),
        "wall_s": previous.get("wall_s", {}),
    }
    clock = Stopwatch()

    def checkpoint() -> None:
        result["wall_s"] = {**result["wall_s"], **clock.phases}
        save(out, "results", result)

    tables: dict[str, tuple[str, Any]] = {}
    for device in args.devices:
        if device == "cpu":
            copy = out / "cpu-table.json"
            if not copy.exists():
                shutil.copyfile(args.cpu_table, copy)
            tables[device] = (str(copy.resolve()), load_table(str(copy)))
        else:
            tables[device] = ("pixel", load_table("pixel"))

    # 1. searches and the baselines' widths (sequential: the cpu ops are timed on a core of their own)
    for device in args.devices:
        spec, table = tables[device]
        for target in args.pixel_targets if device == "pixel" else args.cpu_targets:
            key = f"{device}-{target:g}ms"
            cell = result["cells"].get(key)
            if cell is None or cell.get("search", {}).get("arch") is None:
                t0 = time.perf_counter()
                found = run_search(args, device, spec, target, out)
                clock.add(f"search {key}", time.perf_counter() - t0)
                cell = {
                    "device": device,
                    "target_ms": target,
                    "table_kind": table.kind,
                    "search": found,
                    "networks": {},
                }
                result["cells"][key] = cell
                checkpoint()
            if cell["search"].get("arch") is None:
                continue
            if "searched" not in cell["networks"]:
                cell["networks"]["searched"] = {
                    "arch": cell["search"]["arch"],
                    "latency_ms": cell["search"]["latency_ms"],
                    "runs": {},
                }
            for family in BASELINES:
                if family in cell["networks"]:
                    continue
                t0 = time.perf_counter()
                found = width_at_latency(family, cell["search"]["latency_ms"], table, tol=0.2 if args.smoke else 0.01)
                clock.add(f"baseline widths {device}", time.perf_counter() - t0)
                net: dict[str, Any] = {**found, "runs": {}}
                if found["reachable"]:
                    from nas import zoo

                    arch = zoo.get(
                        family, width=found["width"], resolution=DEPLOY_RESOLUTION, num_classes=DEPLOY_CLASSES
                    )
                    net["arch"] = arch.to_dict()
                cell["networks"][family] = net
                checkpoint()

    # 2. trainings: every network of every cell, every seed, one recipe
    jobs = []
    for key, cell in result["cells"].items():
        for name, net in cell["networks"].items():
            for seed in args.seeds:
                if net.get("arch") is not None and str(seed) not in net["runs"]:
                    jobs.append(
                        {
                            "key": [key, name],
                            "seed": seed,
                            "arch": net["arch"],
                            "data": args.data,
                            "recipe": recipe(args),
                        }
                    )

    def record(done: dict[str, Any]) -> None:
        key, name = done["key"]
        result["cells"][key]["networks"][name]["runs"][str(done["seed"])] = done
        clock.add("trainings (sum over jobs)", done["wall_s"])
        summarise(result["cells"][key])
        checkpoint()

    t0 = time.perf_counter()
    if args.jobs > 1 and len(jobs) > 1:
        import multiprocessing

        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for fut in as_completed([pool.submit(train_one, j) for j in jobs]):
                record(fut.result())
    else:
        for job in jobs:
            record(train_one(job))
    clock.add("trainings (wall)", time.perf_counter() - t0)
    for cell in result["cells"].values():
        summarise(cell)
    result["plot"] = str(plot(result, out / "search-vs-baselines.png"))
    result["wall_s"] = {**result["wall_s"], **clock.phases, "total (this invocation)": clock.total()}
    save(out, "results", result)
    for key, cell in result["cells"].items():
        margin = cell.get("margin")
        text = f"{margin['points']:+.2f} points over {margin['best_baseline']}" if margin else "no margin"
        print(f"{key}: {text}")
    print(f"wrote {results_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
