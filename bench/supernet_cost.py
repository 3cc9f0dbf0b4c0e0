"""What a supernet costs (issue 11, item 6): training per epoch (from the run's log), reading one candidate's
accuracy (BN recalibration + validation top-1, one thread), and a search that reads its candidates from it.

    python bench/supernet_cost.py --supernet bench/results/supernet/cifar10-20k \\
        --data 'npz:../shared/data/cifar10.npz#first=20000' --reads 30 --search-trials 200

Writes `--out`/cost.json (with the machine, its load average and the exact command). The search is a real
`nas search` run (objective pareto, every candidate read: no latency window), timed end to end; the time of
1,000 candidates is extrapolated from it unless `--search-trials` is 1000 or more. With `--predictor-samples N`
it also fits the accuracy predictor on N reads and times a `--predictor-trials` search on it (measured).
Everything runs on a snapshot of the supernet directory (`--out`/snapshot), so a training still running beside
it does not change the checkpoint under the measurement.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import evidence_common as ec

from nas.accuracy import build_evaluator, load_data
from nas.io import read_json
from nas.search import SearchConfig, search
from nas.space import load_space


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", required=True)
    p.add_argument("--data", default="npz:../shared/data/cifar10.npz#first=20000")
    p.add_argument("--device", default="pixel")
    p.add_argument("--reads", type=int, default=30, help="random candidates whose read is timed")
    p.add_argument("--search-trials", type=int, default=200)
    p.add_argument("--predictor-samples", type=int, default=0,
                   help="also fit the accuracy predictor on this many reads and time a search on it")
    p.add_argument("--predictor-trials", type=int, default=1000)
    p.add_argument("--step-cost", type=int, default=0, metavar="N",
                   help="time N training steps of each phase (largest alone, sandwich) with the real training code")
    p.add_argument("--out", default="bench/results/supernet")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    out = ec.out_dir(args.out)
    # Each invocation refreshes the sections it runs and keeps the others, each with its own provenance.
    result: dict[str, Any] = read_json(out / "cost.json", "cost report") if (out / "cost.json").is_file() else {}
    here = ec.provenance(args.smoke)
    result.update(here)  # the top level names the latest invocation; each section keeps the one that made it
    if args.step_cost:
        import tempfile

        from nas.supernet.train import SupernetConfig, train_supernet

        data = load_data(args.data, seed=0)
        with tempfile.TemporaryDirectory() as tmp:
            cfg = SupernetConfig(epochs=2, warmup_epochs=1, max_steps=args.step_cost, val_images=500)
            run = train_supernet("mobilenetv3", data, Path(tmp) / "run", cfg)
        steps = len(data.train) // cfg.batch_size
        per_step = {e["phase"]: e["train_cpu_seconds"] / args.step_cost for e in run.log}
        result["step_cost"] = {
            "steps_timed_per_phase": args.step_cost,
            "cpu_seconds_per_step": {k: round(v, 3) for k, v in per_step.items()},
            "sandwich_over_largest": round(per_step["sandwich"] / per_step["largest"], 2),
            "steps_per_epoch": steps,
            "estimated_cpu_minutes_per_epoch": {k: round(v * steps / 60, 1) for k, v in per_step.items()},
            "provenance": here,
        }
        print("step cost", result["step_cost"])
        ec.save(out, "cost", result)
        if not args.reads and not args.search_trials:
            return 0
    # A snapshot, so that a training still running beside this does not move the checkpoint under it.
    snap = out / "snapshot"
    shutil.rmtree(snap, ignore_errors=True)
    snap.mkdir(parents=True)
    for name in ("supernet.json", "checkpoint.pt", "log.json"):
        shutil.copy2(Path(args.supernet) / name, snap / name)
    args.supernet = str(snap)
    meta = read_json(Path(args.supernet) / "supernet.json", "supernet description")
    log = read_json(Path(args.supernet) / "log.json", "supernet log")
    per_phase: dict[str, list[float]] = {}
    cpu_phase: dict[str, list[float]] = {}
    for e in log:
        per_phase.setdefault(e["phase"], []).append(e["train_seconds"] + e["eval_seconds"])
        if "train_cpu_seconds" in e:
            cpu_phase.setdefault(e["phase"], []).append(e["train_cpu_seconds"])
    result["training"] = {
        "data": meta["data"],
        "config": meta["config"],
        "epochs_done": len(log),
        "seconds_per_epoch": {k: round(statistics.median(v), 1) for k, v in per_phase.items()},
        "train_cpu_seconds_per_epoch": {k: round(statistics.median(v), 1) for k, v in cpu_phase.items()},
    }

    data = load_data(args.data, seed=meta["config"]["seed"])
    space = load_space(meta.get("space_source", meta["space"]))
    ev = build_evaluator(f"supernet:{args.supernet}", data, space=space, seed=meta["config"]["seed"])
    rng = random.Random(1)
    archs = [space.random_arch(rng, ev.resolution, data.num_classes) for _ in range(args.reads + 1)]
    times, cpu = [], []
    for i, arch in enumerate(archs):
        t0, c0 = time.perf_counter(), time.process_time()
        ev(arch)
        if i:  # the first read builds caches
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    times.sort()
    result["read"] = {
        "candidates": len(times),
        "median_s": round(statistics.median(times), 3),
        "p90_s": round(times[int(0.9 * (len(times) - 1))], 3),
        "median_cpu_s": round(statistics.median(cpu), 3),
        "calib_images": ev.config.calib_images,
        "val_images": ev.config.val_images,
        "threads": ev.config.threads,
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "provenance": here,
    }
    print("read", result["read"])

    t0, c0 = time.perf_counter(), time.process_time()
    cfg = SearchConfig(target_latency="80ms", device=args.device, space=meta.get("space_source", meta["space"]),
                       evaluator=f"supernet:{args.supernet}", data=args.data, seed=meta["config"]["seed"],
                       objective="pareto", trials=args.search_trials, time_budget_s=None, window=None,
                       out_dir=str(out / "searches"), name=f"cost-{int(time.time())}")
    found = search(cfg)
    wall, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    result["search"] = {
        "trials": found.trials,
        "wall_s": round(wall, 1),
        "seconds_per_trial": round(wall / max(1, found.trials), 3),
        "cpu_seconds_per_trial": round(cpu_s / max(1, found.trials), 3),
        "minutes_for_1000_cpu": round(cpu_s / max(1, found.trials) * 1000 / 60, 1),
        "pareto_points": len(found.pareto),
        "minutes_for_1000": round(wall / max(1, found.trials) * 1000 / 60, 1),
        "minutes_for_1000_is": "measured" if found.trials >= 1000 else "extrapolated from this run",
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "provenance": here,
    }
    print("search", result["search"])
    ec.save(out, "cost", result)

    if args.predictor_samples:
        from nas.supernet.predictor import fit_predictor

        t0, c0 = time.perf_counter(), time.process_time()
        fitted = fit_predictor(args.supernet, ev, args.predictor_samples, seed=meta["config"]["seed"])
        fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        cfg = SearchConfig(target_latency="80ms", device=args.device, space=meta.get("space_source", meta["space"]),
                           evaluator=f"supernet-predictor:{args.supernet}", data=args.data,
                           seed=meta["config"]["seed"], objective="pareto", trials=args.predictor_trials,
                           time_budget_s=None, window=None, out_dir=str(out / "searches"),
                           name=f"cost-predictor-{int(time.time())}")
        found = search(cfg)
        wall, cpu_s = time.perf_counter() - t0, time.process_time() - c0
        result["predictor"] = {
            "samples": fitted["samples"],
            "holdout": fitted["holdout"],
            "fit_wall_s": round(fit_s, 1),
            "fit_cpu_s": round(fit_cpu, 1),
            "search_trials": found.trials,
            "search_wall_s": round(wall, 1),
            "search_cpu_s": round(cpu_s, 1),
            "pareto_points": len(found.pareto),
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "provenance": here,
        }
        print("predictor", result["predictor"])
        ec.save(out, "cost", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
