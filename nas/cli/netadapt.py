"""`nas netadapt MODEL --target-latency 40ms --device pixel`: shrink widths to a target (docs/netadapt.md)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nas.cli import print_json
from nas.netadapt.config import PRESETS, SCORES, NetAdaptConfig


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "netadapt",
        help="shrink a model's layer widths until its predicted latency meets a target (NetAdapt)",
        description="NetAdapt (Yang et al. 2018) as MobileNetV3 used it: each iteration asks for less "
        "latency, every unit (expansion widths, residual-tied channel groups, stem and head convs) proposes "
        "its widest multiple of 8 that meets it; each proposal is pruned (L2-norm filters kept), "
        "fine-tuned briefly and scored on held-out training data; the best wins. A long fine-tune ends it.",
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        help="a zoo name, an architecture JSON file, a search run directory (its best.json) "
        "or a NetAdapt output directory; or path/to/file.py:factory, your own nn.Module (traced with torch.fx)",
    )
    p.add_argument("--target-latency", required=True, metavar="T", help="e.g. 40ms, '40 ms', 0.04s, 40 (ms)")
    p.add_argument("--device", default="pixel", help="latency table: a device name or table JSON (default pixel)")
    p.add_argument(
        "--weights",
        metavar="FILE",
        help="starting weights (a state_dict); without them the model is first trained for --pretrain-epochs",
    )
    p.add_argument("--data", default="synthetic", help="synthetic (default), cifar10:DIR, imagefolder:DIR, npz:FILE")
    p.add_argument("--out", metavar="DIR", help="run directory (default runs/netadapt-MODEL-TARGET)")
    p.add_argument("--width", type=float, help="width multiplier of a zoo MODEL")
    p.add_argument("--resolution", type=int, help="deployment resolution the latency is predicted at")
    p.add_argument(
        "--step",
        type=float,
        default=None,
        help="ΔR of the first iteration, as a fraction of the initial latency (default 0.05)",
    )
    p.add_argument("--decay", type=float, default=None, help="ΔR_i = step·L0·decay^(i−1) (default 1.0)")
    p.add_argument("--preset", choices=sorted(PRESETS), help="mobilenetv3: MobileNetV3's constant step 0.01·L0")
    p.add_argument(
        "--score",
        choices=list(SCORES),
        default=NetAdaptConfig.score,
        help="how each proposal is scored before validation: adaptive-bn (BN statistics re-estimated on "
        "--bn-batches training batches, no gradient step) or fine-tune (--short-steps SGD steps); "
        f"default {NetAdaptConfig.score} (docs/netadapt.md has the measurements)",
    )
    p.add_argument("--bn-batches", type=int, default=NetAdaptConfig.bn_batches, help="batches for adaptive-bn")
    p.add_argument(
        "--short-steps",
        type=int,
        default=None,
        help="fine-tune steps per proposal (default 100 with --score fine-tune, 0 with adaptive-bn)",
    )
    p.add_argument("--long-epochs", type=int, default=5, help="epochs of the final fine-tune (default 5)")
    p.add_argument("--pretrain-epochs", type=float, default=3, help="brief training without --weights (default 3)")
    p.add_argument(
        "--metric",
        choices=["slope", "accuracy"],
        default="slope",
        help="winner: largest ΔAcc/|ΔLat| (MobileNetV3, default) or highest accuracy (NetAdapt paper)",
    )
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--train-resolution", type=int, help="training resolution (default: the images' own size)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last iteration")
    p.add_argument("--json", action="store_true", help="print one JSON document (progress goes to stderr)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from nas.latency.table import load_table
    from nas.netadapt.api import default_out, netadapt
    from nas.search.reward import parse_target

    target_ms = parse_target(args.target_latency)
    config = NetAdaptConfig(
        target_ms=target_ms, step=args.step, decay=args.decay, preset=args.preset, score=args.score,
        bn_batches=args.bn_batches, short_steps=args.short_steps, long_epochs=args.long_epochs, metric=args.metric,
        pretrain_epochs=args.pretrain_epochs, batch_size=args.batch_size, train_resolution=args.train_resolution,
        seed=args.seed,
    ).resolved()  # fmt: skip
    table = load_table(args.device)
    out = Path(args.out) if args.out else default_out(args.model, target_ms)
    stream = sys.stderr if args.json else sys.stdout

    def log(message: str) -> None:
        print(message, file=stream, flush=True)

    if table.kind == "estimated":
        log(f"latency: {table.label} — an estimated table (a cost model fitted to published latencies)")
    result = netadapt(
        args.model, config, table=table, data=args.data, weights=args.weights, width=args.width,
        resolution=args.resolution, out=out, resume=args.resume, log=log,
    )  # fmt: skip
    names = ("history.json", "arch.json", "weights.pt", "netadapt.png") if result.arch is not None else (
        "history.json", "weights.pt", "channels.json")  # fmt: skip
    summary: dict[str, Any] = {
        **result.summary(),
        "model": args.model,
        "target_ms": target_ms,
        "device": table.device,
        "table_kind": table.kind,
        "files": {name: str(out / name) for name in names},
    }
    if args.json:
        print_json(summary)
        return 0
    pre = "trained here first (no --weights)" if result.pretrained else "given"
    test = f", test {result.test_accuracy:.4f}" if result.test_accuracy is not None else ""
    print(
        f"\n{result.start.name}: {result.initial_latency_ms:.2f} ms → {result.latency_ms:.2f} ms "
        f"(target {target_ms:g} ms, {table.label}) in {len(result.iterations)} iterations"
    )
    print(
        f"  starting weights: {pre}; val top-1 {result.initial_accuracy:.4f} → {result.accuracy:.4f}{test} "
        f"after a {config.long_epochs}-epoch fine-tune"
    )
    print(f"  params {summary['initial_params']:,} → {summary['params']:,}; {result.seconds:.0f} s")
    for warning in result.warnings:
        print(f"  warning: {warning}")
    if result.arch is not None:
        print(
            f"  result: {out / 'arch.json'} + {out / 'weights.pt'} "
            f"(nas export {out / 'arch.json'} --weights {out / 'weights.pt'}); plot {out / 'netadapt.png'}"
        )
    else:
        print(
            f"  result: {out / 'weights.pt'} (state_dict of the pruned module) + {out / 'channels.json'} "
            "(rebuild it with nas.netadapt.graph.rebuild(factory(), kept, input_shape)); no spec: a traced module"
        )
    return 0
