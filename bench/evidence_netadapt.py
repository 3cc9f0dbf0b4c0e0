"""Issue 6, item 4 (and NetAdapt's cost, item 5): NetAdapt against the uniform width multiplier at equal
predicted latency, at several targets and seeds, on the CIFAR-10 subset.

Each (fraction, seed) is one `bench/netadapt_vs_width.py` comparison (its `run`): MobileNetV2 1.0 adapted by
NetAdapt down to `fraction` × its predicted latency on the table, against MobileNetV2 at the widest multiplier
predicted within NetAdapt's result, trained from scratch for the same number of SGD steps with the same recipe.
Defaults are that script's documented run A (docs/netadapt.md: step 0.05, 10-step short fine-tunes, 20 epochs
of brief training, 10 of long fine-tune). Resumable: finished comparisons are kept in netadapt.json.

Full size: 28 min measured on the 2-core VM with --jobs 2, beside another 1-thread job (2026-11-26,
docs/results.md): 19 min for fractions 0.8 and 0.6, then 9 min for 0.4; one NetAdapt run 5–7 min:

    MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=1073741824 python bench/evidence_netadapt.py

Smoke (MobileNetV2 0.35, one coarse iteration, a few steps; figures meaningless):
    python bench/evidence_netadapt.py --smoke --out DIR
"""

from __future__ import annotations

import argparse
import statistics
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from evidence_common import Stopwatch, mean_std, out_dir, provenance, pyplot, save, save_figure
from netadapt_vs_width import build_parser, run


def _quiet(*_args: Any, **_kw: Any) -> None:
    pass


def one(settings: dict[str, Any]) -> dict[str, Any]:
    """One comparison (in this process or a worker): netadapt_vs_width's defaults overridden by `settings`."""
    args = build_parser().parse_args([])
    for key, value in settings.items():
        setattr(args, key, value)
    return run(args, log=print if settings.get("verbose") else _quiet)


def summarise(runs: dict[str, Any], fractions: list[float]) -> list[dict[str, Any]]:
    rows = []
    for fraction in fractions:
        reports = [r for r in runs.values() if r["fraction"] == fraction]
        if not reports:
            continue
        na = [r["report"]["netadapt"]["test_top1"] for r in reports]
        wm = [r["report"]["width_multiplier"]["test_top1"] for r in reports]
        rows.append(
            {
                "fraction": fraction,
                "target_ms": reports[0]["report"]["target_ms"],
                "netadapt_latency_ms": statistics.fmean(r["report"]["netadapt"]["latency_ms"] for r in reports),
                "width_latency_ms": statistics.fmean(r["report"]["width_multiplier"]["latency_ms"] for r in reports),
                "widths": sorted({r["report"]["width_multiplier"]["width"] for r in reports}),
                "netadapt_test_top1": mean_std(na),
                "width_test_top1": mean_std(wm),
                "netadapt_minus_width_points": round(100 * (statistics.fmean(na) - statistics.fmean(wm)), 2),
                "netadapt_wall_s_mean": round(statistics.fmean(r["report"]["netadapt"]["wall_s"] for r in reports), 1),
                "width_wall_s_mean": round(
                    statistics.fmean(r["report"]["width_multiplier"]["wall_s"] for r in reports), 1
                ),
            }
        )
    return rows


def plot(result: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    rows = result["summary"]
    for label, lat, acc, marker in (
        ("NetAdapt", "netadapt_latency_ms", "netadapt_test_top1", "o-"),
        ("uniform width multiplier", "width_latency_ms", "width_test_top1", "s--"),
    ):
        ax.errorbar(
            [r[lat] for r in rows],
            [r[acc]["mean"] for r in rows],
            yerr=[r[acc]["std"] or 0.0 for r in rows],
            fmt=marker,
            capsize=3,
            label=label,
        )
    ax.set_xlabel(f"predicted latency on {result['settings']['device']}, 224×224 (ms)")
    ax.set_ylabel("test top-1 (mean ± std over seeds)")
    ax.set_title("MobileNetV2: NetAdapt vs width multiplier" + (" — SMOKE" if result["smoke"] else ""), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench/results/evidence-netadapt")
    p.add_argument("--data", default="npz:../shared/data/cifar10_subset.npz")
    p.add_argument("--device", default="pixel")
    p.add_argument("--fractions", nargs="+", type=float, default=[0.8, 0.6, 0.4])
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    p.add_argument("--step", type=float, default=0.05)
    p.add_argument("--short-steps", type=int, default=10)
    p.add_argument("--pretrain-epochs", type=float, default=20)
    p.add_argument("--long-epochs", type=int, default=10)
    p.add_argument("--jobs", type=int, default=2, help="comparisons in parallel, one thread each")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code path, figures mean nothing")
    args = p.parse_args(argv)
    settings = {
        "data": args.data,
        "device": args.device,
        "width": 1.0,
        "step": args.step,
        "short_steps": args.short_steps,
        "pretrain_epochs": args.pretrain_epochs,
        "long_epochs": args.long_epochs,
    }
    if args.smoke:
        args.fractions, args.seeds, args.jobs = [0.85], [0], 1
        settings.update(width=0.35, step=0.15, short_steps=1, pretrain_epochs=0.05, long_epochs=1)
    out = out_dir(args.out)
    from nas.io import read_json

    previous = read_json(out / "netadapt.json", "results") if (out / "netadapt.json").exists() else {}
    same = previous.get("smoke") == args.smoke and previous.get("comparison_settings") == settings
    result: dict[str, Any] = {
        **provenance(args.smoke),
        "settings": vars(args).copy(),
        "comparison_settings": settings,
        "runs": previous.get("runs", {}) if same else {},
    }
    clock = Stopwatch()
    todo = []
    for fraction in args.fractions:
        for seed in args.seeds:
            key = f"fraction{fraction:g}-seed{seed}"
            if key not in result["runs"]:
                todo.append((key, fraction, {**settings, "fraction": fraction, "seed": seed, "out": str(out / key)}))

    def record(key: str, fraction: float, seed: int, report: dict[str, Any]) -> None:
        result["runs"][key] = {"fraction": fraction, "seed": seed, "report": report}
        clock.add("netadapt runs (sum)", report["netadapt"]["wall_s"])
        clock.add("width baselines (sum)", report["width_multiplier"]["wall_s"])
        save(out, "netadapt", result)

    if args.jobs > 1 and len(todo) > 1:
        import multiprocessing

        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(one, s): (k, f, s["seed"]) for k, f, s in todo}
            for fut in as_completed(futures):
                record(*futures[fut], fut.result())
    else:
        for key, fraction, s in todo:
            record(key, fraction, s["seed"], one(s))
    result["summary"] = summarise(result["runs"], args.fractions)
    result["plot"] = str(plot(result, out / "netadapt-vs-width.png"))
    result["wall_s"] = {**clock.phases, "total (this invocation)": clock.total()}
    save(out, "netadapt", result)
    for row in result["summary"]:
        print(
            f"fraction {row['fraction']:g}: NetAdapt {row['netadapt_test_top1']['mean']:.3f} at "
            f"{row['netadapt_latency_ms']:.1f} ms, width x{row['widths']} {row['width_test_top1']['mean']:.3f} at "
            f"{row['width_latency_ms']:.1f} ms ({row['netadapt_minus_width_points']:+.2f} points)"
        )
    print(f"wrote {out / 'netadapt.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
