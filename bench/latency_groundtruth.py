"""How steady is an end-to-end ground truth? Time the same networks in several worker processes, each way, and
compare the ranks between processes (Kendall τ) and the spread per statistic.

    MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=1073741824 \\
        python bench/latency_groundtruth.py --nets 20 --procs 3 --passes 20
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

from nas.latency.measure import Protocol, run_worker
from nas.latency.metrics import kendall_tau


def sample(space: str, n: int, seed: int, resolution: int):
    from nas.space import load_space

    sp = load_space(space)
    rng = random.Random(seed)
    archs, seen = [], set()
    while len(archs) < n:
        a = sp.random_arch(rng, resolution=resolution)
        if a.hash not in seen:
            seen.add(a.hash)
            archs.append(a)
    return archs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nets", type=int, default=20)
    ap.add_argument("--procs", type=int, default=3)
    ap.add_argument("--passes", type=int, default=20)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cpu", type=int)
    ap.add_argument("--seq", action="store_true", help="also the sequential per-network protocol")
    ap.add_argument("--out", default="/tmp/groundtruth.json")
    args = ap.parse_args()
    archs = sample("mobilenetv3", args.nets, 0, 224)
    items = [{"kind": "net", "arch": a.to_dict(), "id": i} for i, a in enumerate(archs)]
    work = Path(tempfile.mkdtemp())
    cache = work / "onnx"
    cache.mkdir()
    results: dict[str, list[dict[int, float]]] = {}
    proto = Protocol(runs=args.runs)
    for p in range(args.procs):
        t0 = time.monotonic()
        passes = []
        for msg in run_worker(
            items,
            protocol=proto,
            workdir=work,
            cpu=args.cpu,
            onnx_cache=cache,
            interleave={"passes": args.passes, "seed": p},
        ):
            if "pass" in msg:
                passes.append(msg)
        for clock in ("thread", "wall"):
            per = [[ps[clock][str(i)] for ps in passes] for i in range(len(archs))]
            for name, f in (
                ("med", statistics.median),
                ("min", min),
                ("q25", lambda v: statistics.quantiles(v, n=4)[0]),
            ):
                results.setdefault(f"inter-{clock}-{name}", []).append({i: f(v) for i, v in enumerate(per)})
            half = len(passes) // 2
            per1 = [[ps[clock][str(i)] for ps in passes[:half]] for i in range(len(archs))]
            per2 = [[ps[clock][str(i)] for ps in passes[half:]] for i in range(len(archs))]
            results.setdefault(f"inter-{clock}-med-halfA", []).append(
                {i: statistics.median(v) for i, v in enumerate(per1)}
            )
            results.setdefault(f"inter-{clock}-med-halfB", []).append(
                {i: statistics.median(v) for i, v in enumerate(per2)}
            )
        print(f"interleaved proc {p}: {time.monotonic() - t0:.1f} s", flush=True)
        if args.seq:
            t0 = time.monotonic()
            for clock in ("thread",):
                pr = Protocol(clock=clock)
                order = list(range(len(archs)))
                random.Random(p).shuffle(order)
                med, rmin = {}, {}
                for msg in run_worker(
                    [items[i] for i in order],
                    protocol=pr,
                    workdir=work,
                    cpu=args.cpu,
                    onnx_cache=cache,
                ):
                    reps = msg["repeats"]
                    med[msg["id"]] = statistics.median(s for r in reps for s in r)
                    rmin[msg["id"]] = min(statistics.median(r) for r in reps)
                results.setdefault(f"seq-{clock}-med", []).append(med)
                results.setdefault(f"seq-{clock}-rmin", []).append(rmin)
            print(f"sequential proc {p}: {time.monotonic() - t0:.1f} s", flush=True)
    n = len(archs)
    print(f"{'statistic':28s} τ between procs (mean, min)   spread median")
    for name, procs in results.items():
        taus = [
            kendall_tau([a[i] for i in range(n)], [b[i] for i in range(n)])
            for k, a in enumerate(procs)
            for b in procs[k + 1 :]
        ]
        spread = statistics.median(
            (max(pr[i] for pr in procs) - min(pr[i] for pr in procs)) / statistics.median(pr[i] for pr in procs)
            for i in range(n)
        )
        mean_tau, min_tau = (statistics.fmean(taus), min(taus)) if taus else (float("nan"), float("nan"))
        print(f"{name:28s} {mean_tau:.3f} {min_tau:.3f}   {spread:.3%}")
    Path(args.out).write_text(
        json.dumps({k: [{str(i): v for i, v in d.items()} for d in procs] for k, procs in results.items()})
    )


if __name__ == "__main__":
    main()
