"""Issue 13, evidence: NetAdapt from a trained model against the uniform width multiplier at equal latency.

1. MobileNetV2 1.0 is trained on the first `--limit` training images of CIFAR-10 (80% train, 20% validation):
   `--start-epochs` at lr `--start-lr` (the start, trained once, shared by every run).
2. For each fraction (default 50% and 25% of its predicted latency on `--device`) and seed, NetAdapt takes the
   start down to the target (its default scoring unless `--score`), then fine-tunes `--long-epochs`.
3. The baseline is MobileNetV2 at the widest uniform multiplier predicted within NetAdapt's result, pruned
   from the same start (every unit to the multiplier's width, L2-norm filters kept, weights inherited) and
   fine-tuned for the same total number of SGD steps as NetAdapt's lineage (its winners' short fine-tunes plus
   its long fine-tune), same recipe (lr 0.05, cosine), same seed.
4. Both are tested on all 10,000 test images; reported per fraction: mean ± standard error over seeds, the
   difference in points, the goal (≥ +1.5 at 25%, ≥ −0.5 at 50%), and wall times.

Resumable: the start (start.pt) and each finished (fraction, seed) are kept in evidence.json, and a killed
NetAdapt run resumes; rerun the same command. Processes may share one `--out` (e.g. one per core, each with its
own `--fractions`/`--seeds`): the start is trained once under a lock, and each finished run is merged into
evidence.json under it. Hours at full size (docs/netadapt.md has the estimate):

    python bench/netadapt_evidence.py
    python bench/netadapt_evidence.py --smoke --out DIR          # tiny sizes, seconds; figures meaningless
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from evidence_common import provenance, save  # noqa: E402
from netadapt_vs_width import widest_multiplier  # noqa: E402

from nas import zoo  # noqa: E402
from nas.accuracy.data import load_data  # noqa: E402
from nas.accuracy.train import TrainConfig, evaluate, train  # noqa: E402
from nas.arch import Arch  # noqa: E402
from nas.io import atomic_write, writable_dir  # noqa: E402
from nas.latency import load_table, predict  # noqa: E402
from nas.model import build  # noqa: E402
from nas.netadapt import NetAdaptConfig, find_units, keep_largest, netadapt, prune  # noqa: E402

GOALS = {0.25: 1.5, 0.5: -0.5}  # points NetAdapt must be ahead (issue 13)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="npz:/work/shared/data/cifar10.npz")
    p.add_argument("--limit", type=int, default=20000)
    p.add_argument("--device", default="pixel")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--resolution", type=int, default=224, help="deployment resolution of the latency")
    p.add_argument("--start-epochs", type=float, default=30)
    p.add_argument("--start-lr", type=float, default=0.05)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.5, 0.25])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--score", default=NetAdaptConfig.score)
    p.add_argument("--step", type=float, default=0.05)
    p.add_argument("--short-steps", type=int, default=None)
    p.add_argument("--bn-batches", type=int, default=20)
    p.add_argument("--long-epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--out", default="bench/results/netadapt-evidence")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds; figures meaningless")
    p.add_argument(
        "--plan",
        action="store_true",
        help="estimate the full run's cost and stop: time a few training steps, a BN recalibration and an "
        "evaluation here, and count each target's iterations and proposals by a dry run of the loop on the table",
    )
    return p


class DryTrainer:
    """No training; a proposal's 'accuracy' is the share of the start's parameters it keeps (for counting only)."""

    def __init__(self, params: int):
        self.params = params

    def pretrain(self, net: Any) -> None: ...

    def recalibrate(self, net: Any, batches: int) -> None: ...

    def short(self, net: Any, steps: int) -> None: ...

    def long(self, net: Any, epochs: int) -> None: ...

    def accuracy(self, net: Any, split: str = "val") -> float:
        return sum(p.numel() for p in net.parameters()) / self.params


def plan(args: argparse.Namespace, data: Any, table: Any, start: Arch, out: Path) -> dict[str, Any]:
    """Measured unit costs here × counted work of the full run = its estimated wall time (one process)."""
    from nas.accuracy.train import fine_tune
    from nas.netadapt import SpecNet, netadapt_loop
    from nas.netadapt.scoring import recalibrate_bn

    torch.manual_seed(0)
    net = build(start)
    fine_tune(net, data, 2, TrainConfig(batch_size=args.batch_size))  # warm-up
    t = time.perf_counter()
    fine_tune(net, data, 20, TrainConfig(batch_size=args.batch_size))
    step_s = (time.perf_counter() - t) / 20
    t = time.perf_counter()
    recalibrate_bn(net, data.train, args.bn_batches, batch_size=args.batch_size)
    recal_s = time.perf_counter() - t
    t = time.perf_counter()
    evaluate(net, data.val)
    eval_s = time.perf_counter() - t
    steps_per_epoch = max(1, len(data.train) // args.batch_size)
    counts = {}
    for fraction in args.fractions:
        l0 = predict(start, table).latency_ms
        config = NetAdaptConfig(target_ms=fraction * l0, step=args.step, score="adaptive-bn", long_epochs=0)
        res = netadapt_loop(SpecNet(start, latency=lambda a: predict(a, table).latency_ms), DryTrainer(start.params),
                            config)  # fmt: skip
        counts[fraction] = {
            "iterations": len(res.iterations),
            "proposals": sum(len(i["proposals"]) for i in res.iterations),
        }
    short = NetAdaptConfig(target_ms=1, score=args.score, short_steps=args.short_steps).resolved().short_steps or 0
    per_proposal = (recal_s if args.score == "adaptive-bn" else 0) + short * step_s + eval_s
    seeds = len(args.seeds)
    start_s = args.start_epochs * steps_per_epoch * step_s
    runs_s = sum(
        seeds * (c["proposals"] * per_proposal + 2 * (args.long_epochs * steps_per_epoch + c["iterations"] * short)
                 * step_s)
        for c in counts.values()
    )  # fmt: skip
    result = {
        **provenance(args.smoke),
        "measured": {"train_step_s": round(step_s, 4), "seconds_per_epoch": round(step_s * steps_per_epoch, 1),
                     "recalibrate_s": round(recal_s, 3), "eval_val_s": round(eval_s, 3)},
        "counted": {f"{f:g}": c for f, c in counts.items()},
        "score": args.score,
        "estimated_hours": {"start": round(start_s / 3600, 2), "runs": round(runs_s / 3600, 2),
                            "total": round((start_s + runs_s) / 3600, 2)},
    }  # fmt: skip
    save(out, "plan", result)
    print(json.dumps(result["measured"]), json.dumps(result["counted"]), json.dumps(result["estimated_hours"]))
    return result


SMOKE = {
    "data": "synthetic:200,100",
    "limit": None,
    "width": 0.35,
    "resolution": 96,
    "start_epochs": 0.5,
    "fractions": [0.9],
    "seeds": [0, 1],
    "step": 0.1,
    "short_steps": 2,
    "bn_batches": 2,
    "long_epochs": 1,
    "batch_size": 32,
}


def uniform_from(start: Arch, net: torch.nn.Module, target: Arch) -> tuple[torch.nn.Module, Arch]:
    """The start pruned to `target`'s widths (the same network at another multiplier), weights inherited."""
    units, blocks = find_units(start), target.blocks
    widths = {u.name: getattr(blocks[u.index], "mid" if u.kind == "mid" else "out") for u in units.units}
    keep = {u: keep_largest(net, start, u, widths[u.name]) for u in units.units if widths[u.name] < u.width}
    pruned, arch = prune(net, start, keep, units)
    if [b.out for b in arch.blocks] != [b.out for b in target.blocks]:
        raise SystemExit(f"pruning the start to {target.name} gave other widths")
    return pruned, arch


def se(values: list[float]) -> float:
    return statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else float("nan")


def summarise(runs: dict[str, Any], fractions: list[float]) -> list[dict[str, Any]]:
    rows = []
    for fraction in fractions:
        done = [r for r in runs.values() if r["fraction"] == fraction]
        if not done:
            continue
        na = [100 * r["netadapt"]["test_top1"] for r in done]
        wm = [100 * r["uniform"]["test_top1"] for r in done]
        diff = [a - b for a, b in zip(na, wm, strict=True)]
        goal = GOALS.get(fraction)
        rows.append(
            {
                "fraction": fraction,
                "seeds": len(done),
                "netadapt_latency_ms": statistics.fmean(r["netadapt"]["latency_ms"] for r in done),
                "uniform_latency_ms": statistics.fmean(r["uniform"]["latency_ms"] for r in done),
                "uniform_widths": sorted({r["uniform"]["width"] for r in done}),
                "netadapt_test_top1": {"mean": statistics.fmean(na), "se": se(na)},
                "uniform_test_top1": {"mean": statistics.fmean(wm), "se": se(wm)},
                "difference_points": {"mean": statistics.fmean(diff), "se": se(diff)},
                "goal_points": goal,
                "goal_met": None if goal is None else statistics.fmean(diff) >= goal,
                "netadapt_wall_s": statistics.fmean(r["netadapt"]["wall_s"] for r in done),
                "uniform_wall_s": statistics.fmean(r["uniform"]["wall_s"] for r in done),
            }
        )
    return rows


@contextlib.contextmanager
def locked(out: Path):
    """Exclusive hold on `out` among processes sharing it (flock: released if the holder dies)."""
    with open(out / ".evidence.lock", "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def read_report(path: Path) -> dict[str, Any] | None:
    return json.loads(path.read_text()) if path.exists() else None


# Which runs a process takes is not a setting of the evidence: processes sharing an --out split them.
SELECTION = ("out", "plan", "fractions", "seeds")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.smoke:  # tiny sizes, except where the command line names a value
        for key, value in SMOKE.items():
            if getattr(args, key) == parser.get_default(key):
                setattr(args, key, value)
    torch.set_num_threads(1)
    out = writable_dir(args.out)
    t0 = time.perf_counter()
    settings = {k: v for k, v in vars(args).items() if k not in SELECTION}
    path = out / "evidence.json"
    report = read_report(path)
    if report is not None and report.get("settings") != settings and not args.plan:
        raise SystemExit(f"{path} was made with other settings; use another --out")
    report = report or {**provenance(args.smoke), "settings": settings, "runs": {}, "wall_s": {}}

    data = load_data(args.data, seed=0, limit=args.limit)
    report["data"] = data.summary()
    table = load_table(args.device)
    start = zoo.get("mobilenet_v2", width=args.width, resolution=args.resolution, num_classes=data.num_classes)
    l0 = predict(start, table).latency_ms
    steps_per_epoch = max(1, len(data.train) // args.batch_size)
    if args.plan:
        plan(args, data, table, start, out)
        return 0

    start_path = out / "start.pt"
    with locked(out):  # one process trains the start; the others wait for it and load it
        report = read_report(path) or report
        net = build(start)
        if start_path.exists():
            net.load_state_dict(torch.load(start_path, map_location="cpu", weights_only=True))
        else:
            torch.manual_seed(0)
            net = build(start)
            t = time.perf_counter()
            train(net, data, TrainConfig(epochs=args.start_epochs, lr=args.start_lr, batch_size=args.batch_size,
                                         seed=0))  # fmt: skip
            seconds = time.perf_counter() - t
            report["start"] = {
                "latency_ms": l0,
                "epochs": args.start_epochs,
                "wall_s": round(seconds, 1),
                "seconds_per_epoch": round(seconds / args.start_epochs, 2),
                "val_top1": evaluate(net, data.val),
                "test_top1": evaluate(net, data.test),
            }
            state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            atomic_write(start_path, lambda tmp: torch.save(state, tmp))
            save(out, "evidence", report)

    def record(key: str, run: dict[str, Any] | None = None, wall_s: float | None = None) -> None:
        """Merge this process's finished run (or its wall time) into what the file holds now: another process
        may have added runs since."""
        nonlocal report
        with locked(out):
            report = read_report(path) or report
            if run is not None:
                report["runs"][key] = run
            if wall_s is not None:
                report["wall_s"][key] = wall_s
            report["summary"] = summarise(report["runs"], sorted({r["fraction"] for r in report["runs"].values()},
                                                                 reverse=True))  # fmt: skip
            save(out, "evidence", report)

    for fraction in args.fractions:
        for seed in args.seeds:
            key = f"fraction{fraction:g}-seed{seed}"
            if key in (read_report(path) or report)["runs"]:
                continue
            config = NetAdaptConfig(
                target_ms=fraction * l0, step=args.step, score=args.score, short_steps=args.short_steps,
                bn_batches=args.bn_batches, long_epochs=args.long_epochs, batch_size=args.batch_size, seed=seed,
            ).resolved()  # fmt: skip
            t = time.perf_counter()
            res = netadapt(start, config, table=table, data=data, weights=start_path, out=out / key, resume=True,
                           log=lambda m, k=key: print(f"[{k}] {m}", flush=True))  # fmt: skip
            na_s = time.perf_counter() - t
            lineage = len(res.iterations) * (config.short_steps or 0) + args.long_epochs * steps_per_epoch
            width, _ = widest_multiplier(res.latency_ms, table, data.num_classes, args.resolution)
            target_arch = zoo.get("mobilenet_v2", width=width, resolution=args.resolution, num_classes=data.num_classes)
            t = time.perf_counter()
            base, base_arch = uniform_from(start, net, target_arch)
            train(base, data, TrainConfig(epochs=lineage / steps_per_epoch, lr=0.05, batch_size=args.batch_size,
                                          seed=seed))  # fmt: skip
            record(key, {
                "fraction": fraction,
                "seed": seed,
                "target_ms": fraction * l0,
                "sgd_steps": lineage,
                "netadapt": {"latency_ms": res.latency_ms, "params": res.final.params, "iters": len(res.iterations),
                             "test_top1": res.test_accuracy, "val_top1": res.accuracy, "wall_s": round(na_s, 1)},
                "uniform": {"width": width, "latency_ms": predict(base_arch, table).latency_ms,
                            "params": base_arch.params,
                            "test_top1": evaluate(base, data.test), "val_top1": evaluate(base, data.val),
                            "wall_s": round(time.perf_counter() - t, 1)},
            })  # fmt: skip
    invocation = f"total (fractions {' '.join(map(str, args.fractions))}, seeds {' '.join(map(str, args.seeds))})"
    record(invocation, wall_s=round(time.perf_counter() - t0, 1))
    for row in report["summary"]:
        d = row["difference_points"]
        print(f"{row['fraction']:.0%}: NetAdapt {row['netadapt_test_top1']['mean']:.1f} vs uniform "
              f"{row['uniform_test_top1']['mean']:.1f} ({d['mean']:+.1f} ± {d['se']:.1f} points)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
