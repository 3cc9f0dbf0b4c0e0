"""NetAdapt against the uniform width multiplier at the same predicted latency (issue 5's closing figure).

Runs `nas.netadapt.netadapt` from MobileNetV2 (width 1.0 by default) down to a fraction of its predicted latency,
then trains MobileNetV2 at the widest uniform width multiplier whose predicted latency is at most NetAdapt's
result, from scratch, for the same number of optimizer steps as the adapted network's own lineage (brief
training + the winning proposals' short fine-tunes + the long fine-tune), with the same recipe. Prints one JSON
document: top-1 on the test split of each, their predicted latencies, and the wall times.

    python bench/netadapt_vs_width.py --data npz:../shared/data/cifar10_subset.npz --fraction 0.6 --out runs/na-bench
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch

from nas import zoo
from nas.accuracy.data import load_data
from nas.accuracy.train import TrainConfig, evaluate, train
from nas.io import write_json
from nas.latency.table import load_table, predict
from nas.model import build
from nas.netadapt import NetAdaptConfig, netadapt
from nas.zoo.widest import widest_width


def widest_multiplier(target_ms: float, table, num_classes: int, resolution: int) -> tuple[float, float]:
    """Widest multiplier in [0.2, 1.4] on a 0.01 grid whose MobileNetV2 is predicted within `target_ms`."""
    found = widest_width(
        "mobilenet_v2", target_ms, table, lo=0.2, hi=1.4, resolution=resolution, num_classes=num_classes
    )
    if found is None:
        raise SystemExit(f"no width multiplier reaches {target_ms} ms")
    return found.width, found.latency_ms


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="npz:../shared/data/cifar10_subset.npz")
    p.add_argument("--device", default="pixel")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--resolution", type=int, default=224, help="deployment resolution of the latency")
    p.add_argument("--fraction", type=float, default=0.6, help="target = fraction × initial predicted latency")
    p.add_argument("--step", type=float, default=0.1)
    p.add_argument("--short-steps", type=int, default=10)
    p.add_argument("--pretrain-epochs", type=float, default=6)
    p.add_argument("--long-epochs", type=int, default=6)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="runs/netadapt-bench")
    return p


def run(args: argparse.Namespace, log: Any = print) -> dict[str, Any]:
    """One comparison at `args.fraction`; writes and returns the report (bench/evidence_netadapt.py calls this
    for several fractions)."""
    torch.set_num_threads(1)

    table = load_table(args.device)
    data = load_data(args.data, seed=args.seed)
    start = zoo.get("mobilenet_v2", width=args.width, resolution=args.resolution, num_classes=data.num_classes)
    l0 = predict(start, table).latency_ms
    target = args.fraction * l0

    t0 = time.perf_counter()
    config = NetAdaptConfig(
        target_ms=target, step=args.step, score="fine-tune", short_steps=args.short_steps,
        long_epochs=args.long_epochs, pretrain_epochs=args.pretrain_epochs, batch_size=args.batch_size, seed=args.seed,
    )  # fmt: skip
    result = netadapt(
        start, config, table=table, data=data, out=Path(args.out) / "netadapt", resume=True,
        log=lambda m: log(m, flush=True),
    )  # fmt: skip
    netadapt_s = time.perf_counter() - t0

    steps_per_epoch = max(1, len(data.train) // args.batch_size)
    lineage_steps = (args.pretrain_epochs + args.long_epochs) * steps_per_epoch + len(
        result.iterations
    ) * args.short_steps
    width, width_ms = widest_multiplier(result.latency_ms, table, data.num_classes, args.resolution)
    base_arch = zoo.get("mobilenet_v2", width=width, resolution=args.resolution, num_classes=data.num_classes)
    torch.manual_seed(args.seed)
    base = build(base_arch)
    t1 = time.perf_counter()
    cfg = TrainConfig(epochs=lineage_steps / steps_per_epoch, batch_size=args.batch_size, seed=args.seed)
    train(base, data, cfg)
    baseline_s = time.perf_counter() - t1
    report = {
        "data": data.name,
        "device": table.label,
        "start": {"name": start.name, "latency_ms": round(l0, 3), "params": start.params},
        "target_ms": round(target, 3),
        "netadapt": {
            "latency_ms": round(result.latency_ms, 3),
            "params": result.arch.params,
            "iterations": len(result.iterations),
            "proposals_trained": sum(len(it["proposals"]) for it in result.iterations),
            "val_top1": result.accuracy,
            "test_top1": result.test_accuracy,
            "wall_s": round(netadapt_s, 1),
            "resumed": result.resumed,
        },
        "width_multiplier": {
            "width": width,
            "latency_ms": round(width_ms, 3),
            "params": base_arch.params,
            "epochs": round(cfg.epochs, 3),
            "val_top1": evaluate(base, data.val),
            "test_top1": evaluate(base, data.test),
            "wall_s": round(baseline_s, 1),
        },
        "budget": {
            "lineage_steps": lineage_steps,
            "steps_per_epoch": steps_per_epoch,
            "batch_size": args.batch_size,
        },
    }
    write_json(Path(args.out) / "report.json", report)
    return report


def main() -> None:
    print(json.dumps(run(build_parser().parse_args()), indent=2))


if __name__ == "__main__":
    main()
