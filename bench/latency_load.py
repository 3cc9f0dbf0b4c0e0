"""The load experiment: time a few ops here, then again beside CPU-bound processes this script starts, and say
what the busy check does (refusal) and how far the figures moved when timing anyway (--allow-busy).

    python bench/latency_load.py [--ops 12] [--hogs 1] [--out /tmp/latency_load.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from nas.errors import NasError
from nas.latency.items import space_items
from nas.latency.measure import BUSY_SHARE, Protocol, time_items


def medians(timed) -> dict[str, float]:
    return {k: statistics.median(v for p in runs for v in p) for k, runs in timed.runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ops", type=int, default=12)
    ap.add_argument("--hogs", type=int, default=1)
    ap.add_argument("--passes", type=int, default=8)
    ap.add_argument("--out", default="/tmp/latency_load.json")
    args = ap.parse_args()
    items = [{**item, "id": key} for key, item in sorted(space_items("mobilenetv3", 224).items())[: args.ops]]
    protocol = Protocol(passes=args.passes, rounds=1)
    work = Path(tempfile.mkdtemp(prefix="nas-load-"))
    runs = {}
    runs["alone"] = time_items(items, protocol, workdir=work, allow_busy=True)
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    try:
        time.sleep(0.5)
        try:
            time_items(items, protocol, workdir=work)
            refusal = None
        except NasError as err:
            refusal = str(err)
        runs["beside"] = time_items(items, protocol, workdir=work, allow_busy=True)
    finally:
        for h in hogs:
            h.kill()
            h.wait()
    a, b = medians(runs["alone"]), medians(runs["beside"])
    ratios = [b[k] / a[k] for k in a]
    result = {
        "ops": len(items),
        "hogs": args.hogs,
        "busy_limit": BUSY_SHARE,
        "load_alone": runs["alone"].load.to_dict(),
        "load_beside": runs["beside"].load.to_dict(),
        "refusal": refusal,
        "ratio_beside_to_alone_median": round(statistics.median(ratios), 4),
        "ratio_min": round(min(ratios), 4),
        "ratio_max": round(max(ratios), 4),
        "within_10pct": round(sum(abs(r - 1) <= 0.10 for r in ratios) / len(ratios), 4),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
