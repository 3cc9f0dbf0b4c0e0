"""Cost and signal of the search's accuracy evaluators on random architectures of a search space.

For N random candidates of the space (seeded) it runs the `train` evaluator (the default proxy recipe unless
overridden) and both zero-cost scores, then reports seconds per candidate, trials per minute, the range of each
raw score (what the zero-cost squash defaults are set from), and Kendall τ between each score and the trained
proxy accuracy. Writes `<out>.json` and a scatter plot `<out>.png`.

    MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=1073741824 \\
    python bench/accuracy_proxy.py --space mobilenetv3 --samples 12 --out bench/results/accuracy_proxy
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from nas.accuracy import PROXY_TRAIN, ZeroCostConfig, load_data, make_evaluator
from nas.io import write_json
from nas.space import load_space


def kendall_tau(a: list[float], b: list[float]) -> float:
    concordant = discordant = 0
    for i in range(len(a)):
        for j in range(i + 1, len(a)):
            s = (a[i] - a[j]) * (b[i] - b[j])
            concordant += s > 0
            discordant += s < 0
    pairs = len(a) * (len(a) - 1) / 2
    return (concordant - discordant) / pairs if pairs else float("nan")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", default="mobilenetv3")
    p.add_argument("--data", default="synthetic")
    p.add_argument("--samples", type=int, default=12)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=float, default=None, help="override the proxy recipe's epochs")
    p.add_argument("--resolution", type=int, default=None, help="override the proxy resolution")
    p.add_argument("--out", default="bench/results/accuracy_proxy")
    args = p.parse_args()
    torch.set_num_threads(1)

    data = load_data(args.data, seed=args.seed)
    space = load_space(args.space)
    rng = random.Random(args.seed)
    archs = [space.random_arch(rng, num_classes=data.num_classes) for _ in range(args.samples)]
    cfg = PROXY_TRAIN
    if args.epochs is not None:
        cfg = replace(cfg, epochs=args.epochs)
    if args.resolution is not None:
        cfg = replace(cfg, resolution=args.resolution)
    evaluators = {
        "train": make_evaluator("train", data, cfg),
        "synflow": make_evaluator("zero-cost", data, ZeroCostConfig(score="synflow")),
        "naswot": make_evaluator("zero-cost", data, ZeroCostConfig(score="naswot")),
    }
    rows = []
    for i, arch in enumerate(archs):
        row: dict = {"index": i, "hash": arch.hash, "macs_M_224": arch.macs / 1e6, "params_M": arch.params / 1e6}
        for name, evaluator in evaluators.items():
            start = time.perf_counter()
            result = evaluator(arch)
            row[name] = {"accuracy": result.accuracy, "seconds": time.perf_counter() - start,
                         "score": result.extra.get("score")}
        rows.append(row)
        print(f"{i:3d} macs {row['macs_M_224']:6.1f}M  train acc {row['train']['accuracy']:.3f} "
              f"({row['train']['seconds']:.1f}s)  synflow {row['synflow']['score']:.1f}  "
              f"naswot {row['naswot']['score']:.1f}", flush=True)

    acc = [r["train"]["accuracy"] for r in rows]
    summary = {
        "command": "python bench/accuracy_proxy.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items() if v is not None),
        "machine": f"{platform.node()} {platform.machine()}, torch {torch.__version__}, 1 thread",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "data": data.summary(),
        "space": args.space,
        "train_config": vars(cfg) if hasattr(cfg, "__dict__") else str(cfg),
        "samples": len(rows),
        "rows": rows,
    }
    for name in evaluators:
        secs = [r[name]["seconds"] for r in rows]
        summary[name] = {"median_seconds": statistics.median(secs), "trials_per_minute": 60 / statistics.mean(secs)}
    for name in ("synflow", "naswot"):
        scores = [r[name]["score"] for r in rows]
        summary[name].update(
            kendall_tau_vs_train=kendall_tau(scores, acc),
            score_min=min(scores),
            score_median=statistics.median(scores),
            score_max=max(scores),
        )
    summary["train"].update(accuracy_min=min(acc), accuracy_median=statistics.median(acc), accuracy_max=max(acc))
    out = Path(args.out)
    write_json(out.with_suffix(".json"), summary)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    for ax, name in zip(axes, ("synflow", "naswot"), strict=True):
        ax.scatter([r[name]["score"] for r in rows], acc, s=14)
        ax.set_xlabel(f"{name} score (log)")
        ax.set_ylabel("proxy-trained val top-1")
        ax.set_title(f"{name}: Kendall τ = {summary[name]['kendall_tau_vs_train']:.2f}")
    fig.suptitle(f"{args.space} on {data.name}, {len(rows)} random archs", fontsize=9)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    for name in evaluators:
        print(f"{name}: {summary[name]}")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
