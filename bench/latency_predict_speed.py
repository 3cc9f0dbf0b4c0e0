"""Predictions per second of `nas.latency.predict` for a 20-block network of the default space.

    python bench/latency_predict_speed.py [--device pixel] [--seconds 2] [--resolutions 160 192 224]

Reports the hot path (a spec predicted before: dictionary lookups over its cached keys) and the first
prediction of a new spec (walking the spec and computing its keys), each as predictions per second; and, per
resolution, the time to predict architectures never seen before, with a freshly loaded table (an estimated
table prices every op it does not list from its cost model on the spot).
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time

from nas.latency import load_table, predict
from nas.latency.keys import _CACHE
from nas.space import load_space


def twenty_block_archs(n: int, seed: int = 0) -> list:
    space = load_space("mobilenetv3")
    rng = random.Random(seed)
    out = []
    while len(out) < n:
        arch = space.random_arch(rng, resolution=224)
        if len(arch.sites()) == 20:
            out.append(arch)
    return out


def rate(fn, seconds: float) -> float:
    count, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(200):
            fn()
        count += 200
    return count / elapsed


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--device", default="pixel")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--resolutions", type=int, nargs="*", default=[160, 192, 224])
    p.add_argument("--new", type=int, default=200, help="new architectures per resolution")
    args = p.parse_args()
    table = load_table(args.device)
    archs = twenty_block_archs(200)
    for arch in archs:  # price every op once (an estimated table evaluates its model on first use)
        predict(arch, table)
    arch = archs[0]
    hot = rate(lambda: predict(arch, table).latency_ms, args.seconds)
    i = 0

    def cold() -> float:
        nonlocal i
        _CACHE.clear()
        i = (i + 1) % len(archs)
        return predict(archs[i], table).latency_ms

    new_spec = rate(cold, args.seconds)
    per_resolution = {}
    space = load_space("mobilenetv3")
    for resolution in args.resolutions:
        fresh = load_table(args.device)  # nothing priced yet beyond the file's entries
        rng = random.Random(resolution)
        new = [space.random_arch(rng, resolution=resolution) for _ in range(args.new)]
        _CACHE.clear()
        start = time.perf_counter()
        for a in new:
            predict(a, fresh)
        per_resolution[str(resolution)] = round((time.perf_counter() - start) / len(new) * 1e3, 4)
    print(
        json.dumps(
            {
                "device": table.device,
                "kind": table.kind,
                "blocks": len(arch.sites()),
                "predictions_per_s_cached_spec": round(hot),
                "predictions_per_s_new_spec": round(new_spec),
                "ms_per_new_architecture_fresh_table": per_resolution,
                "python": platform.python_version(),
                "date": time.strftime("%Y-%m-%d"),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
