"""Issue 13, item 2: NetAdapt on a measured table. The widths it proposes are ops the table lacks; they are timed
on this machine as they come (one batch per proposal round, the table's own protocol) into a copy of the table in
the run directory. This runs MobileNetV2 to `--fraction` of its predicted latency on `--device` and reports how
much of the run's wall time went into timing.

    python bench/netadapt_measured.py                  # MobileNetV2 1.0 to 50% on cpu (latency_tables/cpu.json)
    python bench/netadapt_measured.py --smoke --out DIR

Resumable: rerun the same command (NetAdapt's own --resume). The table in latency_tables/ is never written.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from evidence_common import provenance, save  # noqa: E402

from nas import zoo  # noqa: E402
from nas.latency import load_table  # noqa: E402
from nas.netadapt import NetAdaptConfig, netadapt  # noqa: E402
from nas.netadapt.pricing import Pricer  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="a measured table (device name or path)")
    p.add_argument("--model", default="mobilenet_v2")
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--resolution", type=int, default=None)
    p.add_argument("--fraction", type=float, default=0.5)
    p.add_argument("--data", default="npz:/work/shared/data/cifar10_subset.npz")
    p.add_argument("--step", type=float, default=0.1)
    p.add_argument("--score", default="fine-tune")
    p.add_argument("--short-steps", type=int, default=20)
    p.add_argument("--pretrain-epochs", type=float, default=1)
    p.add_argument("--long-epochs", type=int, default=1)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--out", default="bench/results/netadapt-measured")
    p.add_argument("--smoke", action="store_true", help="a tiny table and net; figures meaningless")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = Path(args.out)
    device = args.device
    if args.smoke:
        from nas.latency.build import arch_items, build_table
        from nas.latency.measure import Protocol

        args.width, args.resolution, args.fraction, args.data = 0.5, 96, 0.9, "synthetic:40,20"
        args.short_steps, args.pretrain_epochs, args.long_epochs, args.batch_size = 1, 0.1, 0, 16
        device = str(out / "smoke-table.json")
        if not Path(device).exists():
            arch = zoo.get(args.model, width=args.width, resolution=args.resolution, num_classes=10)
            quick = Protocol(warmup=2, runs=3, min_repeats=3, max_repeats=3, rounds=1, warmup_s=0.05, passes=0)
            build_table(device="smoke", items=arch_items([arch]), out=Path(device), protocol=quick, progress=False)
    t0 = time.perf_counter()
    table = load_table(device)
    arch = zoo.get(args.model, width=args.width, resolution=args.resolution, num_classes=10)
    run_dir = out / "run"
    pricer = Pricer(table, measure=True, copy_to=run_dir / "latency-table.json", log=print)
    l0 = pricer(arch)  # the starting network's own missing ops, timed into the run's copy
    start_timing = pricer.timing_s
    config = NetAdaptConfig(
        target_ms=args.fraction * l0, step=args.step, score=args.score, short_steps=args.short_steps,
        pretrain_epochs=args.pretrain_epochs, long_epochs=args.long_epochs, batch_size=args.batch_size,
    )  # fmt: skip
    res = netadapt(arch, config, table=pricer.table, data=args.data, out=run_dir, resume=True, log=print)
    wall = time.perf_counter() - t0
    pricing = res.history["final"].get("pricing", {"timed_ops": 0, "timing_s": 0.0})
    timing = start_timing + pricing["timing_s"]
    report = {
        **provenance(args.smoke),
        "settings": vars(args),
        "initial_latency_ms": l0,
        "target_ms": config.target_ms,
        "final_latency_ms": res.latency_ms,
        "iterations": len(res.iterations),
        "timed_ops": pricing["timed_ops"] + pricer.timed_ops,
        "timing_s": round(timing, 1),
        "netadapt_wall_s": round(res.seconds, 1),
        "wall_s": {"total (this invocation)": round(wall, 1)},
        "timing_share_of_wall": round(timing / wall, 3) if wall else None,
        "resumed": res.resumed,
        "val_top1": res.accuracy,
        "test_top1": res.test_accuracy,
    }
    save(out, "measured", report)
    print(f"{l0:.2f} ms -> {res.latency_ms:.2f} ms (target {config.target_ms:.2f}) in {len(res.iterations)} "
          f"iterations; timing {timing:.0f} s of {wall:.0f} s wall ({100 * timing / wall:.0f}%)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
