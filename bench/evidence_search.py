"""Issue 15, item 1: does the search beat hand-designed MobileNets at the same predicted latency (second round)?

Cells: each `--pixel-targets` on the estimated Pixel 1 table and one `--cpu-target` on a CPU table built and
validated here, into the output directory (`cpu-table.json`; latency_tables/ is never written). Per cell:

- (a) `supernet`: the supernet search's best network (`nas.search` with `--evaluator supernet:DIR`, the
  evaluator's two-minute trial count by default), extracted with inherited weights and fine-tuned
  (`nas.supernet.extract.extract_subnet`), one fine-tune per seed: what a user deploys;
- (b) `scratch`: the same architecture trained from scratch with the baselines' recipe;
- (c) `proxy`: the one-epoch-proxy search (evaluator `train`, `--proxy-minutes`/`--proxy-trials`), its best
  trained from scratch like (b);
- MobileNetV2, MobileNetV3-Small, MobileNetV3-Large and MnasNet-A1 at the widest width multiplier whose predicted
  latency (224×224, 1000 classes, the cell's table) is at most (a)'s (`nas.zoo.widest.widest_width`; on the CPU
  table the baselines' missing ops are timed into the built table first).

Every from-scratch training is `nas.training.train_source` (what `nas train` runs) with `lr="auto"`: the peak rate
chosen from {0.05, 0.1, 0.2} by validation top-1 after `--lr-epochs` epochs, then `--seeds` seeds of `--epochs`
epochs at that rate; test top-1 (all test images, read only after training) mean ± standard error. The goal: (a)
and (b) each ≥ 2 points above the best baseline of the cell; the margin's standard error is that of a difference
of two independent means.

The defaults (3 epochs per seed, the learning rate chosen after 1-epoch runs, 2 fine-tune epochs, 5-minute proxy
searches, 3 seeds) are what `--plan` finds to fit the issue's budget for this item on a 2-core machine: the
lr-selection runs are shorter than the final ones for that reason (`nas.training.train_source`'s `lr_epochs`).

Resumable: searches, trainings (one `train_source` directory per architecture, resumed epoch by epoch) and
fine-tunes are kept under `--out`; a rerun continues. `--jobs` worker processes of one thread each.
`--plan` times a few training steps of representative networks here and prints the estimated wall time of the
whole item without running it (also saved as plan.json). `--smoke`: tiny sizes on synthetic data with a tiny
supernet trained on the spot, pixel cells only (seconds; the figures mean nothing).

    python bench/evidence_search.py --plan
    nice python bench/evidence_search.py [--allow-busy]

Round 1 (issue 6: one fixed recipe, 1,017 test images) is in bench/results/evidence-search, as it was run.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from evidence_common import Stopwatch, out_dir, provenance, pyplot, save, save_figure, smoke_supernet

BASELINES = ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "mnasnet_a1")
SEARCHED = ("supernet", "scratch", "proxy")  # (a), (b), (c)
LABELS = {
    "supernet": "(a) supernet search, extracted + fine-tuned",
    "scratch": "(b) (a)'s architecture from scratch",
    "proxy": "(c) one-epoch-proxy search, from scratch",
}
GOAL_NETS = ("supernet", "scratch")
GOAL_POINTS = 2.0
DEPLOY_RESOLUTION = 224
DEPLOY_CLASSES = 1000
SMOKE_DATA = "synthetic:200,60"
SMOKE_CPU_TABLE = "latency_tables/cpu.json"
ROUND = 2


# ---------------------------------------------------------------------------------------------- latency


def width_at_latency(
    family: str, target_ms: float, table: Any, tol: float = 0.01, allow_busy: bool = False
) -> dict[str, Any]:
    """Widest multiplier (on a grid of step `tol`) of a zoo family predicted at most `target_ms` on `table`
    (`nas.zoo.widest.widest_width`), timing the ops the table lacks first (refused on a busy machine unless
    `allow_busy`)."""
    from nas.latency import predict
    from nas.latency.build import measure_missing
    from nas.zoo.widest import widest_width

    timed = 0

    def latency(arch: Any) -> float:
        nonlocal timed
        timed += measure_missing(arch, table, progress=False, allow_busy=allow_busy)
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


def cpu_table(args: argparse.Namespace, out: Path, record: dict[str, Any], clock: Stopwatch) -> Any:
    """The cell's CPU table: built here into out/cpu-table.json (once) and validated (once), both recorded."""
    from evidence_latency import build_cpu_table

    from nas.latency import load_table
    from nas.latency.validate import validate

    path = out / "cpu-table.json"
    if "build" not in record:
        t0 = time.perf_counter()
        if args.smoke:  # a smoke build's few ops cannot price a network: a copy of the committed table stands in
            shutil.copyfile(SMOKE_CPU_TABLE, path)
            record["build"] = {"path": str(path), "ops": None, "copied_from": SMOKE_CPU_TABLE}
        else:
            _, record["build"] = build_cpu_table(path, smoke=False, allow_busy=args.allow_busy)
        record["build"]["wall_s"] = round(time.perf_counter() - t0, 2)
        clock.add("cpu table build", time.perf_counter() - t0)
    if "validate" not in record:
        t0 = time.perf_counter()
        tiny = {"rounds": 2, "passes": 2, "with_zoo": False} if args.smoke else {}
        report = validate(
            load_table(str(path), machine_check=False),
            samples=args.validate_samples,
            # Into the table built here (never latency_tables/), and only from a quiet machine's timings.
            save_correction=not (args.allow_busy or args.smoke),
            out_dir=out / "cpu-validate",
            allow_busy=args.allow_busy or args.smoke,
            progress=not args.smoke,
            **tiny,
        )
        record["validate"] = {k: v for k, v in report.items() if k != "networks"}
        record["validate"]["wall_s"] = round(time.perf_counter() - t0, 2)
        clock.add("cpu table validate", time.perf_counter() - t0)
    record["path"] = str(path.resolve())
    return load_table(str(path), machine_check=False)


# ---------------------------------------------------------------------------------------------- jobs
# A job is a dict naming its kind; it runs inline (--jobs 1) or in a worker process of one thread.

_DATA: dict[str, Any] = {}


def _data(spec: str) -> Any:
    from nas.accuracy import load_data

    if spec not in _DATA:
        _DATA.clear()
        _DATA[spec] = load_data(spec, seed=0)
    return _DATA[spec]


def search_job(job: dict[str, Any]) -> dict[str, Any]:
    """One search, started afresh (a search killed part-way restarts: its time budget is its own)."""
    from nas.search import SearchConfig, search

    config = SearchConfig(**job["config"])
    run_dir = Path(config.out_dir) / str(config.name)
    if run_dir.exists():
        shutil.rmtree(run_dir)
    result = search(config)
    found: dict[str, Any] = {
        "run_dir": str(run_dir),
        "evaluator": config.evaluator,
        "trials": result.trials,
        "screened_out": result.screened_out,
        "stopped": result.stopped,
        "wall_s": round(result.wall_s, 1),
        "config": config.to_dict(),
    }
    if result.best is not None:
        best = result.best.to_dict()
        found.update(
            arch=best["arch"], latency_ms=round(best["latency_ms"], 4), val_top1=best["accuracy"], reward=best["reward"]
        )
    return found


def train_job(job: dict[str, Any]) -> dict[str, Any]:
    """One architecture through `nas.training.train_source` (lr auto, every seed), resuming its directory."""
    from nas.accuracy import TrainConfig
    from nas.arch import Arch
    from nas.training import train_source

    data = _data(job["data"])
    started = time.perf_counter()
    run = train_source(
        Arch.from_dict(job["arch"]),
        data,
        job["out"],
        epochs=job["epochs"],
        lr="auto",
        seeds=job["seeds"],
        lr_epochs=job["lr_epochs"],
        test=True,
        resume=True,
        recipe=TrainConfig(**job["recipe"]),
    )
    copied = job["lr_epochs"] == job["epochs"]  # seed 0 is then the lr search's run at the chosen rate
    seeds_s = sum(r["seconds"] for r in run.runs) - (run.runs[0]["seconds"] if copied else 0.0)
    return {
        "test_top1": run.summary["test_top1"],
        "val_top1": run.summary["val_top1"],
        "lr": run.lr,
        "lr_search": run.summary["lr_search"],
        "params": run.summary["params"],
        "seed_values": {str(r["seed"]): r["test_top1"] for r in run.runs},
        "lr_search_s": run.summary["lr_search_seconds"],
        "seeds_s": round(seeds_s, 2),
        "wall_s": round(time.perf_counter() - started, 2),
    }


def finetune_job(job: dict[str, Any]) -> dict[str, Any]:
    """(a): the search's best cut out of the supernet and fine-tuned with one seed, then its test top-1."""
    import nas
    from nas.accuracy import evaluate
    from nas.io import read_json, write_json
    from nas.supernet.extract import extract_subnet

    out = Path(job["out"])
    done = out / "result.json"
    if done.is_file():
        return read_json(done, "fine-tune result")
    data = _data(job["data"])
    started = time.perf_counter()
    record = extract_subnet(
        job["supernet"], job["source"], out, finetune_epochs=job["epochs"], data=data, seed=job["seed"]
    )
    model = nas.load(str(out / "arch.json"), str(out / "weights.pt"))
    result = {
        "seed": job["seed"],
        "inherited_val_top1": record["inherited_val_top1"],
        "finetuned_val_top1": record.get("finetuned_val_top1"),
        "test_top1": evaluate(model, data.test),
        "finetune_s": record.get("finetune", {}).get("seconds", 0.0),
        "wall_s": round(time.perf_counter() - started, 2),
    }
    write_json(done, result)
    return result


JOBS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "search": search_job,
    "train": train_job,
    "finetune": finetune_job,
}


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    return JOBS[job["kind"]](job)


def run_jobs(
    jobs: list[dict[str, Any]], workers: int, done: Callable[[dict[str, Any], dict[str, Any]], list[dict[str, Any]]]
) -> None:
    """Run `jobs` (and the ones `done(job, result)` returns) on `workers` processes, in order of submission."""
    queue = list(jobs)
    if workers <= 1:
        while queue:
            job = queue.pop(0)
            queue += done(job, run_job(job))
        return
    import multiprocessing

    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = {pool.submit(run_job, j): j for j in queue}
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in finished:
                job = pending.pop(fut)
                for new in done(job, fut.result()):
                    pending[pool.submit(run_job, new)] = new


# ---------------------------------------------------------------------------------------------- settings


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="npz:../shared/data/cifar10.npz#first=20000")
    p.add_argument("--out", default="bench/results/evidence2-search")
    p.add_argument("--supernet", default="bench/results/supernet/cifar10-20k", help="trained supernet directory")
    p.add_argument("--evaluator", choices=["supernet", "supernet-predictor"], default="supernet",
                   help="(a)'s search: direct supernet reads, or the supernet's accuracy predictor")
    p.add_argument("--search-trials", type=int, default=None,
                   help="(a)'s search: evaluated trials (default: what the evaluator does in about two minutes)")
    p.add_argument("--devices", nargs="+", choices=["pixel", "cpu"],
                   help="default: pixel and cpu (--smoke: pixel; a smoke cpu cell validates a copy of the committed "
                        "cpu table with a tiny protocol instead of building one)")
    p.add_argument("--pixel-targets", nargs="+", type=float, default=[80.0, 50.0], help="ms (pixel, estimated)")
    p.add_argument("--cpu-target", type=float, default=4.5, help="ms on the CPU table built here")
    p.add_argument("--validate-samples", type=int, default=50, help="random networks timed to validate that table")
    p.add_argument("--allow-busy", action="store_true",
                   help="time the CPU table's ops, its validation and the baselines' missing ops even on a busy "
                        "machine (recorded in the report; no latency correction is saved then)")
    p.add_argument("--proxy-minutes", type=float, default=5.0, help="(c)'s search: time budget of each")
    p.add_argument("--proxy-trials", type=int, default=40, help="(c)'s search: cap on evaluated trials")
    p.add_argument("--epochs", type=int, default=3, help="every from-scratch training, per seed")
    p.add_argument("--lr-epochs", type=int, default=1, help="each run of the learning-rate selection")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--finetune-epochs", type=int, default=2, help="(a): fine-tuning after extraction, per seed")
    p.add_argument("--jobs", type=int, default=None, help="worker processes, one thread each (default 2; --smoke 1)")
    p.add_argument("--plan", action="store_true", help="estimate the full run's wall time from a few timed steps")
    p.add_argument("--plan-steps", type=int, default=8, help="--plan: training steps timed per network")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code path, figures mean nothing")
    args = p.parse_args(argv)
    args.devices = args.devices or (["pixel"] if args.smoke else ["pixel", "cpu"])
    if args.smoke:
        args.data, args.pixel_targets = SMOKE_DATA, [50.0]
        args.validate_samples = 5
        args.epochs = args.lr_epochs = args.finetune_epochs = 1
        args.seeds, args.search_trials, args.proxy_trials = 2, 2, 2
    args.jobs = args.jobs or (1 if args.smoke else 2)
    return args


def cells(args: argparse.Namespace) -> list[tuple[str, str, float]]:
    out = []
    for device in args.devices:
        for target in args.pixel_targets if device == "pixel" else [args.cpu_target]:
            out.append((f"{device}-{target:g}ms", device, target))
    return out


def recipe(args: argparse.Namespace) -> dict[str, Any]:
    """What every from-scratch training shares (TrainConfig fields besides epochs, lr and seed)."""
    return {"batch_size": 128, "max_steps": 2 if args.smoke else None}


def recipe_record(args: argparse.Namespace) -> dict[str, Any]:
    from nas.accuracy import TrainConfig
    from nas.supernet.extract import FINETUNE
    from nas.training import LR_GRID

    base = TrainConfig(**recipe(args))
    return {
        "trainer": "nas.training.train_source (nas train), lr auto",
        "epochs": args.epochs,
        "lr_epochs": args.lr_epochs,
        "lr_grid": list(LR_GRID),
        "seeds": args.seeds,
        "batch_size": base.batch_size,
        "optimizer": "sgd (Nesterov), warm-up + cosine, label smoothing",
        "augment": base.augment,
        "max_steps": base.max_steps,
        "finetune": {"epochs": args.finetune_epochs, "lr": FINETUNE.lr, "batch_size": FINETUNE.batch_size},
    }


def search_config(args: argparse.Namespace, out: Path, key: str, device: str, target: float, which: str,
                  supernet: str) -> dict[str, Any]:
    from nas.search import SearchConfig

    if which == "supernet":
        evaluator, trials, budget, options = f"{args.evaluator}:{supernet}", args.search_trials, None, {}
    else:
        evaluator, trials = "train", args.proxy_trials
        budget = None if args.smoke else args.proxy_minutes * 60
        options = {"max_steps": 2} if args.smoke else {}
    return SearchConfig(
        target_latency=f"{target:g}ms",
        device=device,
        data=args.data,
        evaluator=evaluator,
        trials=trials,
        time_budget_s=budget,
        seed=0,
        out_dir=str(out / "searches"),
        name=f"{key}-{which}",
        evaluator_options=options,
    ).to_dict()


# ---------------------------------------------------------------------------------------------- figures


def mean_se(values: list[float]) -> dict[str, Any]:
    from nas.training import mean_se as stats

    return stats(values) if values else {"mean": None, "se": None, "n": 0, "values": []}


def summarise(cell: dict[str, Any], trainings: dict[str, Any]) -> None:
    """Each network's test top-1 (mean ± SE over seeds) and each searched network's margin over the best
    baseline of the cell, in points, with the standard error of the difference."""
    for name, net in cell["networks"].items():
        if name == "supernet":
            net["test_top1"] = mean_se([r["test_top1"] for _, r in sorted(net["runs"].items())])
        elif net.get("training") in trainings:
            net["test_top1"] = trainings[net["training"]]["test_top1"]
    nets = cell["networks"]
    scored = {k: nets[k]["test_top1"] for k in BASELINES if k in nets and nets[k].get("test_top1", {}).get("mean")
              is not None}
    cell["margins"] = {}
    if not scored:
        return
    best = max(scored, key=lambda k: scored[k]["mean"])
    for name in SEARCHED:
        ours = cell["networks"].get(name, {}).get("test_top1", {})
        if ours.get("mean") is None:
            continue
        points = 100 * (ours["mean"] - scored[best]["mean"])
        se = 100 * math.hypot(ours["se"] or 0.0, scored[best]["se"] or 0.0)
        cell["margins"][name] = {
            "best_baseline": best,
            "points": round(points, 2),
            "se_points": round(se, 2),
            "goal_points": GOAL_POINTS if name in GOAL_NETS else None,
            "goal_met": points >= GOAL_POINTS if name in GOAL_NETS else None,
        }


def phase_sums(result: dict[str, Any]) -> dict[str, float]:
    """Seconds of each phase over every invocation, from what the finished units recorded (a resumed run's
    earlier work included); the wall time of the pooled phases is each invocation's (`invocations`)."""
    cells_ = result["cells"].values()
    trainings = result["trainings"].values()
    cpu = result["tables"].get("cpu", {})
    sums = {
        "cpu table build (wall)": cpu.get("build", {}).get("wall_s", 0.0),
        "cpu table validate (wall)": cpu.get("validate", {}).get("wall_s", 0.0),
        "supernet searches (sum)": sum(c["searches"].get("supernet", {}).get("wall_s") or 0.0 for c in cells_),
        "proxy searches (sum)": sum(c["searches"].get("proxy", {}).get("wall_s") or 0.0 for c in cells_),
        "baseline widths, timing missing ops (sum)": sum(
            n.get("wall_s", 0.0) for c in cells_ for k, n in c["networks"].items() if k in BASELINES
        ),
        "lr selection (sum)": sum(t["lr_search_s"] or 0.0 for t in trainings),
        "seed trainings (sum)": sum(t["seeds_s"] for t in trainings),
        "fine-tunes (sum)": sum(
            r["wall_s"] for c in cells_ for r in c["networks"].get("supernet", {}).get("runs", {}).values()
        ),
        "all invocations (wall)": sum(i.get("wall_s", {}).get("total", 0.0) for i in result["invocations"]),
    }
    return {k: round(v, 1) for k, v in sums.items()}


def plot(result: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    devices = sorted({c["device"] for c in result["cells"].values()})
    fig, axes = plt.subplots(1, max(1, len(devices)), figsize=(5.5 * max(1, len(devices)), 4.5), dpi=120, squeeze=False)
    markers = dict(zip((*SEARCHED, *BASELINES), "*PXosDv", strict=True))
    for ax, device in zip(axes[0], devices, strict=False):
        for name, marker in markers.items():
            xs, ys, es = [], [], []
            for cell in result["cells"].values():
                net = cell["networks"].get(name)
                if cell["device"] != device or not net or net.get("test_top1", {}).get("mean") is None:
                    continue
                xs.append(net["latency_ms"])
                ys.append(net["test_top1"]["mean"])
                es.append(net["test_top1"]["se"] or 0.0)
            if xs:
                ax.errorbar(xs, ys, yerr=es, fmt=marker, ms=8, capsize=3, label=LABELS.get(name, name))
        kind = " (estimated)" if device == "pixel" else " (built here)"
        ax.set_xlabel(f"predicted latency on {device}{kind}, 224×224 (ms)")
        ax.set_ylabel("test top-1 (mean ± standard error over seeds)")
        ax.legend(fontsize=6)
    fig.suptitle("search vs width-scaled baselines at equal predicted latency, round 2"
                 + (" — SMOKE" if result["smoke"] else ""), fontsize=9)
    fig.tight_layout()
    return save_figure(fig, path)


# ---------------------------------------------------------------------------------------------- plan


def plan(args: argparse.Namespace) -> dict[str, Any]:
    """Time `--plan-steps` training steps (one thread) of each cell's kinds of network and estimate the full run.
    Representative networks: per pixel target, the four baselines at their width for that target and the
    space's network predicted nearest to it; the cpu cell counts as the smallest pixel cell."""
    import random

    import torch

    from nas import zoo
    from nas.accuracy import TrainConfig, evaluate, train
    from nas.accuracy.evaluator import TRIAL_BUDGET_S, zero_init_residuals
    from nas.io import read_json
    from nas.latency import load_table, predict
    from nas.model import build
    from nas.space import load_space
    from nas.zoo.widest import widest_width

    torch.set_num_threads(1)
    data = _data(args.data)
    table = load_table("pixel")
    space = load_space("mobilenetv3")
    rng = random.Random(0)
    pool = [space.random_choices(rng) for _ in range(300)]
    deploy = [(predict(space.arch(c, resolution=224, num_classes=1000), table).latency_ms, c) for c in pool]
    spe = max(1, len(data.train) // 128)
    steps = min(args.plan_steps, spe)

    def timed(arch: Any) -> dict[str, float]:
        arch = arch.replace(resolution=data.image_size, num_classes=data.num_classes)
        torch.manual_seed(0)
        model = build(arch)
        zero_init_residuals(model)
        t0, c0 = time.perf_counter(), time.process_time()
        evaluate(model, data.val)
        val_s, val_cpu = time.perf_counter() - t0, time.process_time() - c0
        t0, c0 = time.perf_counter(), time.process_time()
        train(model, data, TrainConfig(epochs=1, batch_size=128, max_steps=steps))  # ends with one val eval
        wall, cpu = time.perf_counter() - t0 - val_s, time.process_time() - c0 - val_cpu
        return {"step_s": wall / steps, "step_cpu_s": cpu / steps, "val_s": val_s, "val_cpu_s": val_cpu}

    measured: dict[str, dict[str, dict[str, float]]] = {}
    for target in args.pixel_targets:
        nets = {}
        for family in BASELINES:
            found = widest_width(family, target, table)
            if found is not None:
                arch = zoo.get(family, width=found.width, resolution=224, num_classes=1000)
                nets[f"{family} ×{found.width:g}"] = timed(arch)
        _, choices = min(deploy, key=lambda r: abs(r[0] - target))
        nets["space network"] = timed(space.arch(choices, resolution=224, num_classes=1000))
        measured[f"pixel-{target:g}ms"] = nets
    smallest = min(args.pixel_targets)
    test_per_val = len(data.test) / len(data.val)
    copied = args.lr_epochs == args.epochs

    def training(t: dict[str, float], cpu: bool) -> dict[str, float]:
        step, val = (t["step_cpu_s"], t["val_cpu_s"]) if cpu else (t["step_s"], t["val_s"])
        epoch = spe * step + val
        return {"lr selection": 3 * args.lr_epochs * epoch,
                "seeds": (args.seeds - copied) * args.epochs * epoch + args.seeds * test_per_val * val,
                "fine-tunes": args.seeds * (args.finetune_epochs * epoch + (1 + test_per_val + 0.5) * val)}

    estimate: dict[str, dict[str, Any]] = {}
    for cpu in (False, True):
        parts = {"lr selection": 0.0, "seeds": 0.0, "fine-tunes": 0.0}
        longest = 0.0
        for key, device, _ in cells(args):
            nets = measured[key if device == "pixel" else f"pixel-{smallest:g}ms"]
            space_net = nets["space network"]
            for name, t in nets.items():
                one = training(t, cpu)
                times = 2 if name == "space network" else 1  # (b) and (c) are networks of the space
                parts["lr selection"] += times * one["lr selection"]
                parts["seeds"] += times * one["seeds"]
                longest = max(longest, one["lr selection"] + one["seeds"])
            parts["fine-tunes"] += training(space_net, cpu)["fine-tunes"]
        n_cells = len(cells(args))
        proxy = n_cells * args.proxy_minutes * 60
        pooled = sum(parts.values()) + proxy
        estimate["wall (under load)" if not cpu else "CPU time (closer to a quiet core)"] = {
            **{k: round(v / 60, 1) for k, v in parts.items()},
            "proxy searches": round(proxy / 60, 1),
            "pool, one core (sum)": round(pooled / 60, 1),
            "pool with --jobs": round(max(pooled / max(1, args.jobs), longest) / 60, 1),
        }
    # Phases that are not training: by design (the supernet search's two-minute trial count plus loading and
    # timing its reads) or from the recorded quiet-machine reports of the latency and round-1 benches.
    fixed: dict[str, Any] = {
        "supernet searches (designed: 2 min of reads + ~30 s setup each, --jobs at a time)":
            round(math.ceil(len(cells(args)) / max(1, args.jobs)) * (TRIAL_BUDGET_S + 30) / 60, 1),
    }
    if "cpu" in args.devices:
        lat = Path("bench/results/evidence-latency/latency.json")
        if lat.is_file():
            rec = read_json(lat)
            fixed["cpu table build (recorded, evidence-latency)"] = round(rec["build"]["wall_s"] / 60, 1)
            n_rec = rec["cpu_validate"]["random_networks"]
            fixed[f"cpu table validate, {args.validate_samples} networks (recorded {n_rec}, scaled)"] = round(
                rec["wall_s"]["cpu_validate"] * args.validate_samples / n_rec / 60, 1)
        r1 = Path("bench/results/evidence-search/results.json")
        if r1.is_file():
            rec = read_json(r1)
            n_cpu = max(1, len(rec["settings"]["cpu_targets"]))
            n_base = len(rec["settings"].get("baselines", ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")))
            fixed[f"timing the cpu baselines' missing ops (recorded in round 1 for {n_base} families, scaled)"] = round(
                rec["wall_s"].get("baseline widths cpu", 0.0) / n_cpu * len(BASELINES) / n_base / 60, 1)
    serial = sum(fixed.values())
    totals = {k: round(v["pool with --jobs"] + serial, 1) for k, v in estimate.items()}
    return {
        **provenance(args.smoke),
        "measured_per_network": {k: {n: {m: round(x, 3) for m, x in t.items()} for n, t in v.items()}
                                 for k, v in measured.items()},
        "settings": {k: getattr(args, k) for k in ("epochs", "lr_epochs", "seeds", "finetune_epochs", "proxy_minutes",
                                                   "jobs", "plan_steps", "validate_samples")},
        "steps_per_epoch": spe,
        "estimated_minutes": {"training": estimate, "other phases (estimated)": fixed, "total": totals},
        "note": "measured under load from parallel work; 'CPU time' counts this process's own CPU seconds, "
                "closer to what a quiet core takes; the cpu cell is assumed to cost what the smallest pixel cell does",
    }


def print_plan(p: dict[str, Any]) -> None:
    print(f"steps per epoch {p['steps_per_epoch']}; settings {p['settings']}")
    for cell, nets in p["measured_per_network"].items():
        for name, t in nets.items():
            print(f"  {cell:12} {name:28} {t['step_s']:.3f} s/step wall, {t['step_cpu_s']:.3f} s/step CPU, "
                  f"val eval {t['val_s']:.1f} s")
    est = p["estimated_minutes"]
    for label, parts in est["training"].items():
        print(f"{label}: " + ", ".join(f"{k} {v} min" for k, v in parts.items()))
    for k, v in est["other phases (estimated)"].items():
        print(f"  {k}: {v} min")
    for k, v in est["total"].items():
        print(f"ESTIMATED TOTAL ({k}): {v} min")
    print(p["note"])


# ---------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = out_dir(args.out)
    from nas.arch import Arch
    from nas.io import read_json
    from nas.latency import load_table

    if args.plan:
        p = plan(args)
        save(out, "plan", p)
        print_plan(p)
        return 0

    supernet = args.supernet
    if args.smoke:
        from nas.space import load_space

        supernet = smoke_supernet(out / "supernet", load_space("mobilenetv3"), _data(args.data), args.data)
    elif not (Path(supernet) / "checkpoint.pt").is_file():
        raise SystemExit(f"--supernet {supernet} holds no trained supernet (no checkpoint.pt): pass the directory of "
                         "one trained on --data (`nas supernet train`)")
    supernet = str(Path(supernet).resolve())

    results_path = out / "results.json"
    previous = read_json(results_path, "results") if results_path.exists() else {}
    if previous.get("smoke", args.smoke) != args.smoke:
        previous = {}  # never mix smoke and full-size units
    elif previous and (previous.get("settings", {}).get("data") != args.data
                       or previous.get("recipe") != recipe_record(args)
                       or previous.get("supernet") != supernet
                       or previous.get("settings", {}).get("evaluator") != args.evaluator):
        raise SystemExit(f"{results_path} holds results of another data set, recipe or supernet; rerun with their "
                         "settings (see its settings, recipe and supernet), or choose another --out")
    result: dict[str, Any] = {
        **provenance(args.smoke),
        "round": ROUND,
        "settings": vars(args).copy(),
        "recipe": recipe_record(args),
        "tables": previous.get("tables", {}),
        "cells": previous.get("cells", {}),
        "trainings": previous.get("trainings", {}),
        "invocations": previous.get("invocations", []),
    }
    clock = Stopwatch()
    invocation = {"date": result["date"], "load_average_at_start": result["machine"]["load_average_at_start"]}
    result["invocations"].append(invocation)

    def checkpoint() -> None:
        invocation["wall_s"] = {**clock.phases, "total": clock.total()}
        result["wall_s"] = phase_sums(result)
        save(out, "results", result)

    result["supernet"] = supernet

    # 1. tables (alone on the machine: the cpu table's build and validation time ops here)
    tables: dict[str, tuple[str, Any]] = {}
    for device in args.devices:
        if device == "cpu":
            table = cpu_table(args, out, result["tables"].setdefault("cpu", {}), clock)
            tables[device] = (result["tables"]["cpu"]["path"], table)
            checkpoint()
        else:
            tables[device] = ("pixel", load_table("pixel"))
            result["tables"]["pixel"] = {"kind": tables[device][1].kind}
    todo = cells(args)
    for key, device, target in todo:
        result["cells"].setdefault(key, {"device": device, "target_ms": target, "table_kind": tables[device][1].kind,
                                         "searches": {}, "networks": {}})

    def searches(which: str) -> list[dict[str, Any]]:
        return [
            {"kind": "search", "cell": key, "which": which,
             "config": search_config(args, out, key, tables[device][0], target, which, supernet)}
            for key, device, target in todo
            if result["cells"][key]["searches"].get(which, {}).get("wall_s") is None
        ]

    # 2. the supernet searches (a), which set each cell's latency
    def search_done(job: dict[str, Any], found: dict[str, Any]) -> list[dict[str, Any]]:
        result["cells"][job["cell"]]["searches"][job["which"]] = found
        checkpoint()
        return []

    t0 = time.perf_counter()
    run_jobs(searches("supernet"), args.jobs, search_done)
    clock.add("supernet searches (wall)", time.perf_counter() - t0)

    # 3. the baselines' widths at (a)'s latency (alone: on cpu the missing ops are timed here)
    for key, device, _ in todo:
        cell = result["cells"][key]
        found = cell["searches"]["supernet"]
        if found.get("arch") is None:
            continue
        cell["networks"].setdefault("supernet", {"arch": found["arch"], "latency_ms": found["latency_ms"], "runs": {}})
        cell["networks"].setdefault("scratch", {"arch": found["arch"], "latency_ms": found["latency_ms"]})
        for family in BASELINES:
            if family in cell["networks"]:
                continue
            t0 = time.perf_counter()
            width = width_at_latency(family, found["latency_ms"], tables[device][1], tol=0.2 if args.smoke else 0.01,
                                     allow_busy=args.allow_busy or args.smoke)
            clock.add(f"baseline widths {device}", time.perf_counter() - t0)
            net: dict[str, Any] = {**width, "wall_s": round(time.perf_counter() - t0, 2)}
            if width["reachable"]:
                from nas import zoo

                net["arch"] = zoo.get(family, width=width["width"], resolution=DEPLOY_RESOLUTION,
                                      num_classes=DEPLOY_CLASSES).to_dict()
            cell["networks"][family] = net
            checkpoint()

    # 4. the pool: proxy searches (c), every from-scratch training, the fine-tunes (a)
    data = _data(args.data)
    submitted: set[str] = set()

    def training_jobs(key: str) -> list[dict[str, Any]]:
        jobs = []
        for name, net in result["cells"][key]["networks"].items():
            if name == "supernet" or net.get("arch") is None:
                continue
            arch = Arch.from_dict(net["arch"]).replace(resolution=data.image_size, num_classes=data.num_classes)
            net["training"] = arch.hash  # one training per architecture, whichever cells share it
            if arch.hash in result["trainings"] or arch.hash in submitted:
                continue
            submitted.add(arch.hash)
            jobs.append({"kind": "train", "hash": arch.hash, "arch": arch.to_dict(), "data": args.data,
                         "out": str(out / "trainings" / arch.hash), "epochs": args.epochs, "seeds": args.seeds,
                         "lr_epochs": args.lr_epochs, "recipe": recipe(args)})
        return jobs

    def finetune_jobs(key: str) -> list[dict[str, Any]]:
        net = result["cells"][key]["networks"].get("supernet")
        if net is None:
            return []
        source = result["cells"][key]["searches"]["supernet"]["run_dir"]
        return [{"kind": "finetune", "cell": key, "seed": s, "supernet": supernet, "source": source,
                 "data": args.data, "epochs": args.finetune_epochs, "out": str(out / "finetunes" / key / f"seed-{s}")}
                for s in range(args.seeds) if str(s) not in net["runs"]]

    def pool_done(job: dict[str, Any], done: dict[str, Any]) -> list[dict[str, Any]]:
        new: list[dict[str, Any]] = []
        if job["kind"] == "search":
            search_done(job, done)
            cell = result["cells"][job["cell"]]
            if done.get("arch") is not None:
                cell["networks"]["proxy"] = {"arch": done["arch"], "latency_ms": done["latency_ms"]}
                new = training_jobs(job["cell"])
        elif job["kind"] == "train":
            result["trainings"][job["hash"]] = done
        else:
            result["cells"][job["cell"]]["networks"]["supernet"]["runs"][str(job["seed"])] = done
        for cell in result["cells"].values():
            summarise(cell, result["trainings"])
        checkpoint()
        return new

    jobs = searches("proxy")
    for key, _, _ in todo:  # (a) first: what a user deploys, and the cheapest units
        jobs += finetune_jobs(key)
    for key, _, _ in todo:
        jobs += training_jobs(key)
    t0 = time.perf_counter()
    run_jobs(jobs, args.jobs, pool_done)
    clock.add("pool: proxy searches, trainings, fine-tunes (wall)", time.perf_counter() - t0)

    for cell in result["cells"].values():
        summarise(cell, result["trainings"])
    result["plot"] = str(plot(result, out / "search-vs-baselines.png"))
    invocation["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    checkpoint()
    for key, cell in result["cells"].items():
        for name, m in cell.get("margins", {}).items():
            print(f"{key} {LABELS[name]}: {m['points']:+.2f} ± {m['se_points']:.2f} points over {m['best_baseline']}")
    print(f"wrote {results_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
