"""Issue 6, items 1 and 5: how well the latency tables predict whole networks, and what a table build costs.

1. (`--build`) builds a fresh CPU table of the default space here, into the output directory (never over
   latency_tables/), and records its wall time;
2. validates a CPU table (the fresh one, else `--table`) end to end with `nas.latency.validate` (≥ 100 random
   networks at full size; the correction is fitted on 40% and reported on the rest; it is saved only into a table
   built by this script);
3. the estimated Pixel 1 model's grouped cross-validation and hold-out families (`nas.latency.pixel`), plotted.

Full size: 11 min measured on the 2-core VM with 100 networks (2026-11-26, docs/results.md: build 184 s,
validation 475 s, Pixel refit 3 s); needs a quiet machine, timings are noisy otherwise:

    MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=1073741824 \
        python bench/evidence_latency.py --build --samples 100

Smoke (same code, tiny protocol; figures meaningless): python bench/evidence_latency.py --smoke --out DIR
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from evidence_common import Stopwatch, out_dir, provenance, pyplot, save, save_figure

from nas.latency import load_table


def build_cpu_table(out: Path, smoke: bool, allow_busy: bool = False) -> tuple[Any, dict[str, Any]]:
    """A fresh table of the default space at 224 (smoke: its first 12 ops, one round, one pass of 2 runs)."""
    from nas.latency.build import build_table
    from nas.latency.items import space_items
    from nas.latency.measure import Protocol

    items = space_items("mobilenetv3", 224)
    protocol = Protocol()
    if smoke:
        items = dict(list(items.items())[:12])
        protocol = Protocol(rounds=1, passes=1, runs=2, warmup=1, warmup_s=0.0)
    table, summary = build_table(
        device="cpu",
        items=items,
        out=out,
        protocol=protocol,
        source={"space": "mobilenetv3", "resolution": 224, "by": "bench/evidence_latency.py"},
        progress=not smoke,
        note="smoke build (12 ops, tiny protocol)" if smoke else "bench/evidence_latency.py --build",
        allow_busy=allow_busy or smoke,
    )
    return table, {"path": str(out), "ops": len(items), "summary": summary}


def pixel_cross_validation(out: Path, smoke: bool) -> dict[str, Any]:
    """Refit the Pixel 1 model from its calibration CSV and cross-validate it (~1 min: the features come from
    running every calibration network once). Smoke: the fit stored in the committed pixel1 table instead."""
    from nas.latency.pixel import build_pixel_model

    started = time.perf_counter()
    if smoke:
        model, fitted = load_table("pixel").model, []
    else:
        model, fitted = build_pixel_model()
    cv = model["cross_validation"]
    result = {
        "fit_mape": model["fit_mape"],
        "pooled_cv_mape": cv["pooled_mape"],
        "schemes": cv["schemes"],
        "holdout": model["holdout"],
        "coef": model["coef"],
        "era": model["era"],
        "era_factors": model["era_factors"],
        "rows_used": model["calibration"]["rows_used"],
        "fitted": fitted,
        "source": "committed latency_tables/pixel1.json (smoke)" if smoke else "refitted (build_pixel_model)",
        "wall_s": round(time.perf_counter() - started, 2),
    }
    result["plot"] = str(plot_pixel(result, out / "pixel-cross-validation.png"))
    return result


def plot_pixel(result: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=120)
    values: list[float] = []
    for scheme, marker in zip(result["schemes"], "osD^", strict=False):
        pub = [r["published_ms"] for r in scheme["rows"]]
        pred = [r["predicted_ms"] for r in scheme["rows"]]
        values += pub + pred
        mape = f"{scheme['mape']:.1%}" if scheme["mape"] is not None else "n/a"
        ax.scatter(pub, pred, s=16, marker=marker, label=f"{scheme['scheme']} (MAPE {mape})")
    hold = result["holdout"]["rows"]
    if hold:
        pub = [r["published_ms"] for r in hold]
        pred = [r["predicted_ms"] for r in hold]
        values += pub + pred
        label = f"other families, never fitted (MAPE {result['holdout']['mape']:.1%})"
        ax.scatter(pub, pred, s=30, marker="x", c="k", label=label)
    if values:
        lo, hi = min(values) * 0.9, max(values) * 1.1
        ax.plot([lo, hi], [lo, hi], "k-", lw=1)
        for f in (0.9, 1.1):
            ax.plot([lo, hi], [lo * f, hi * f], "k:", lw=0.8)
    ax.set_xlabel("published Pixel 1 latency (ms)")
    ax.set_ylabel("predicted, fitted without that group (ms)")
    ax.set_title(f"Pixel 1 (estimated) cross-validation: pooled MAPE {result['pooled_cv_mape']:.1%}", fontsize=9)
    ax.legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench/results/evidence-latency")
    p.add_argument("--table", default="cpu", help="CPU table to validate without --build (default: the committed one)")
    p.add_argument("--build", action="store_true", help="build a fresh CPU table into --out first, and validate it")
    p.add_argument("--samples", type=int, default=100, help="random networks to time end to end (≥ 100 for issue 6)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--passes", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code path, figures mean nothing")
    p.add_argument("--allow-busy", action="store_true", help="time even on a busy machine (marked in the results)")
    args = p.parse_args(argv)
    if args.smoke:
        args.samples, args.rounds, args.passes = 5, 2, 2
    out = out_dir(args.out)
    clock = Stopwatch()
    result: dict[str, Any] = {**provenance(args.smoke), "settings": vars(args).copy()}

    table = None
    if args.build:
        t0 = time.perf_counter()
        table, result["build"] = build_cpu_table(out / "cpu-table.json", args.smoke, args.allow_busy)
        clock.add("table_build", time.perf_counter() - t0)
        result["build"]["wall_s"] = round(time.perf_counter() - t0, 2)
        save(out, "latency", result)

    from nas.latency.validate import validate

    # A smoke build holds 12 ops only, too few to validate: the smoke run validates the committed table then.
    if table is None or args.smoke:
        table = load_table(args.table, machine_check=False)  # validate times the networks itself
    own_table = args.build and not args.smoke
    t0 = time.perf_counter()
    result["cpu_validate"] = validate(
        table,
        samples=args.samples,
        seed=args.seed,
        rounds=args.rounds,
        passes=args.passes,
        save_correction=own_table,
        with_zoo=not args.smoke,
        out_dir=out,
        progress=not args.smoke,
        allow_busy=args.allow_busy or args.smoke,
    )
    clock.add("cpu_validate", time.perf_counter() - t0)
    save(out, "latency", result)

    t0 = time.perf_counter()
    result["pixel"] = pixel_cross_validation(out, args.smoke)
    clock.add("pixel_cross_validation", time.perf_counter() - t0)
    result["wall_s"] = {**clock.phases, "total (this invocation)": clock.total()}
    save(out, "latency", result)
    v, px = result["cpu_validate"], result["pixel"]
    print(
        f"cpu validate ({v['samples']} held-out of {v['random_networks']} random): MAPE {v['mape']:.1%}, "
        f"τ {v['kendall_tau']:.3f}, within ±10% {v['within_10pct']:.0%}; pixel CV pooled MAPE "
        f"{px['pooled_cv_mape']:.1%}; wrote {out / 'latency.json'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
