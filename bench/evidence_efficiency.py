"""Issue 6, item 3: search efficiency — best reward against the number of trials for TPE, NSGA-II, the
policy-gradient controller (MnasNet's method) and random sampling, over several seeds.

Every run is a real `nas.search.search` (soft reward, latency window ±10%, the default space) with the
zero-cost evaluator (SynFlow on a batch of the data, squashed into (0, 1)): cheap enough for many trials and
seeds, but its "accuracy" is a proxy score, so the curves compare how fast each sampler climbs one fixed,
deterministic objective — not accuracies. The x axis is the number of evaluated trials (what training would
cost); candidates screened out on predicted latency are free and counted separately.

Full size: 13 min measured on the 2-core VM beside another 1-thread job (2026-11-26, docs/results.md;
4 samplers × 5 seeds × 200 evaluated trials, 36–41 s per run):

    MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=1073741824 python bench/evidence_efficiency.py

Issue 15, item 3 (round 2): the same on the supernet's accuracy predictor, five samplers, 1,000 trials:

    python bench/evidence_efficiency.py --evaluator supernet-predictor:bench/results/supernet/cifar10-20k \\
        --data 'npz:../shared/data/cifar10.npz#first=20000' --trials 1000 \\
        --samplers tpe random pg evolution nsga2 --seeds 5 --out bench/results/evidence2-efficiency

(NSGA-II last: on this cheap evaluator each of its runs takes 11-15 min; `--summary-only` summarises what has
finished without starting a run.)

Smoke (3 trials, 2 seeds; figures meaningless): python bench/evidence_efficiency.py --smoke --out DIR
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

from evidence_common import Stopwatch, mean_std, out_dir, provenance, pyplot, save, save_figure

SAMPLERS = ("tpe", "nsga2", "pg", "random")
EVALUATOR_NOTE = {"zero-cost": "zero-cost (SynFlow, squashed): a proxy score, not an accuracy"}


def curve(records: list[Any]) -> dict[str, list[float]]:
    """Best reward after each evaluated trial (trial order), and how many candidates had been drawn by then.
    Candidates screened out on latency and those reusing an earlier evaluation of the same architecture are
    drawn but not evaluated: a sampler that keeps proposing what it has seen pays for it on the second axis."""
    best, out_best, out_drawn = 0.0, [], []
    for drawn, rec in enumerate(sorted(records, key=lambda r: r.number), start=1):
        if not rec.counts:
            continue
        if rec.status == "complete" and rec.reward is not None:
            best = max(best, float(rec.reward))
        out_best.append(round(best, 6))
        out_drawn.append(drawn)
    return {"best_reward": out_best, "candidates_drawn": out_drawn}


def run_one(args: argparse.Namespace, sampler: str, seed: int, out: Path) -> dict[str, Any]:
    from nas.search import SearchConfig, runs, search

    name = f"{sampler}-seed{seed}"
    run_dir = out / "runs" / name
    if run_dir.exists():  # unfinished (a finished run is in results.json and skipped): start it again
        shutil.rmtree(run_dir)
    config = SearchConfig(
        target_latency=args.target,
        device=args.device,
        data=args.data,
        evaluator=args.evaluator,
        sampler=sampler,
        trials=args.trials,
        time_budget_s=None,
        seed=seed,
        out_dir=str(out / "runs"),
        name=name,
    )
    result = search(config)
    records = runs.load_records(run_dir)
    c = curve(records)
    best = result.best.to_dict() if result.best is not None else {}
    return {
        "sampler": sampler,
        "seed": seed,
        "evaluated": result.trials,
        "screened_out": result.screened_out,
        "stopped": result.stopped,
        "best_reward": best.get("reward"),
        "best_latency_ms": best.get("latency_ms"),
        "wall_s": round(result.wall_s, 2),
        **c,
    }


def aggregate(runs_of: list[dict[str, Any]], checkpoints: list[int]) -> dict[str, Any]:
    """Mean ± std over seeds of the best reward after n evaluated trials, for each n in `checkpoints`."""
    at: dict[str, Any] = {}
    for n in checkpoints:
        values = [r["best_reward"][n - 1] for r in runs_of if len(r["best_reward"]) >= n]
        if values:
            at[str(n)] = mean_std(values)
    final = [r["best_reward"][-1] for r in runs_of if r["best_reward"]]
    return {
        "seeds": len(runs_of),
        "best_after": at,
        "final": mean_std(final),
        "screened_out_mean": round(statistics.fmean(r["screened_out"] for r in runs_of), 1),
        "drawn_mean": round(statistics.fmean(r["candidates_drawn"][-1] for r in runs_of if r["candidates_drawn"]), 1),
        "wall_s_mean": round(statistics.fmean(r["wall_s"] for r in runs_of), 2),
    }


def plot(result: dict[str, Any], path: Path) -> Path:
    import numpy as np

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5), dpi=120)
    for sampler in result["samplers"]:
        curves = [r["best_reward"] for r in result["runs"].values() if r["sampler"] == sampler and r["best_reward"]]
        if not curves:
            continue
        n = min(len(c) for c in curves)
        arr = np.array([c[:n] for c in curves])
        mean, std = arr.mean(axis=0), arr.std(axis=0)
        x = np.arange(1, n + 1)
        ax.plot(x, mean, label=f"{sampler} ({len(curves)} seeds)")
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("evaluated trials")
    score = "zero-cost score" if result["settings"].get("evaluator", "zero-cost") == "zero-cost" else "accuracy"
    ax.set_ylabel(f"best reward so far ({score} · latency term)")
    title = f"search efficiency, {result['settings']['device']} {result['settings']['target']}, mean ± std"
    ax.set_title(title + (" — SMOKE" if result["smoke"] else ""), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench/results/evidence-efficiency")
    p.add_argument("--data", default="npz:../shared/data/cifar10_subset.npz")
    p.add_argument("--device", default="pixel")
    p.add_argument("--target", default="80ms")
    p.add_argument("--samplers", nargs="+", default=list(SAMPLERS), choices=(*SAMPLERS, "evolution"))
    p.add_argument("--seeds", type=int, default=5, help="seeds 0..N-1 per sampler (≥ 5 for issue 6)")
    p.add_argument("--trials", type=int, default=200, help="evaluated trials per run")
    p.add_argument("--evaluator", default="zero-cost",
                   help="the search's evaluator (default zero-cost; e.g. supernet-predictor:DIR, with --data the "
                        "supernet's)")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code path, figures mean nothing")
    p.add_argument("--summary-only", action="store_true",
                   help="start no run: summarise the finished ones (a partial result, named as such by its seeds)")
    args = p.parse_args(argv)
    if args.smoke:
        args.seeds, args.trials = 2, 3
    out = out_dir(args.out)
    from nas.io import read_json

    previous = read_json(out / "efficiency.json", "results") if (out / "efficiency.json").exists() else {}
    settings = previous.get("settings", {})
    same = (previous.get("smoke") == args.smoke and settings.get("trials") == args.trials
            and settings.get("evaluator", "zero-cost") == args.evaluator)
    result: dict[str, Any] = {
        **provenance(args.smoke),
        "settings": vars(args).copy(),
        "evaluator": EVALUATOR_NOTE.get(args.evaluator, args.evaluator),
        "samplers": args.samplers,
        "runs": previous.get("runs", {}) if same else {},
    }
    clock = Stopwatch()
    for sampler in args.samplers:
        for seed in range(args.seeds):
            key = f"{sampler}-seed{seed}"
            if key in result["runs"] or args.summary_only:
                continue
            t0 = time.perf_counter()
            result["runs"][key] = run_one(args, sampler, seed, out)
            clock.add(f"runs {sampler}", time.perf_counter() - t0)
            save(out, "efficiency", result)
    marks = (1, 5, 10, 20, 50, 100, 150, 200, 300, 500, 1000)
    checkpoints = sorted({n for n in marks if n <= args.trials} | {args.trials})
    result["summary"] = {
        s: aggregate([r for r in result["runs"].values() if r["sampler"] == s], checkpoints)
        for s in args.samplers
        if any(r["sampler"] == s for r in result["runs"].values())
    }
    result["plot"] = str(plot(result, out / "efficiency.png"))
    result["wall_s"] = {**clock.phases, "total (this invocation)": clock.total()}
    save(out, "efficiency", result)
    for s, agg in result["summary"].items():
        f = agg["final"]
        std = f"{f['std']:.4f}" if f["std"] is not None else "n/a"
        print(f"{s}: best reward after {args.trials} evaluated trials {f['mean']:.4f} ± {std} ({agg['seeds']} seeds)")
    print(f"wrote {out / 'efficiency.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
