"""How well does each cheap accuracy estimate rank architectures the way training them alone does? (issue 11)

Architectures of the space: `--spread` spread evenly over predicted latency (quantiles of a seeded random pool),
and `--band` more within ±10% of `--target-ms`. For each one, every estimator:

- `supernet`: validation top-1 read from the trained supernet `--supernet DIR` (BN recalibrated);
- `proxy`: the search's default one-epoch proxy training (validation top-1);
- `synflow`, `naswot`: zero-cost scores of the untrained network;
- `flops`: multiply-accumulates at the data's resolution;

and the reference: **stand-alone** training with one fixed recipe (`STANDALONE`, `--epochs`), top-1 on the test
split (read for this final figure only). Kendall τ of each estimator against the reference, over the spread and
within the band, with 95% bootstrap intervals (architectures resampled).

Resumable: every finished (architecture, estimator) goes to `--out`/fidelity.json at once; a rerun skips it.
`--shard K/N` measures every N-th network into fidelity.shard-K-of-N.json, so N one-thread processes can share the
cores (the networks are picked the same way, from the seed, in each); a run without `--shard` merges them.
`--time-standalone N` trains the first architecture for N steps only, and writes the measured seconds per step and
the *estimated* cost of every stand-alone training to cost_estimate.json, without running them.
`--smoke`: tiny sizes on synthetic data with a tiny supernet trained on the spot (seconds; tests run it).

    python bench/supernet_fidelity.py --supernet bench/results/supernet/cifar10-20k \\
        --data 'npz:../shared/data/cifar10.npz#first=20000'
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import evidence_common as ec

from nas.accuracy import TrainConfig, build_evaluator, evaluate, load_data, train
from nas.io import read_json
from nas.latency import load_table, predict
from nas.latency.validate import kendall_tau
from nas.model import build
from nas.space import load_space
from nas.supernet.predictor import PREDICTOR

# The stand-alone reference recipe: the project's training recipe (SGD + Nesterov, warm-up + cosine, label
# smoothing, crop + flip), the same for every architecture.
STANDALONE = TrainConfig(epochs=5, batch_size=128, lr=0.1)
ESTIMATORS = ("flops", "synflow", "naswot", "supernet", "proxy")
# The supernet's accuracy predictor (`nas supernet predictor DIR`), a column of its own where DIR holds one.
OPTIONAL = ("predictor",)
STANDALONE_KEYS = ("standalone_val", "standalone_test")


def pick_archs(space: Any, table: Any, target_ms: float, spread: int, band: int, pool: int, seed: int,
               resolution: int, num_classes: int) -> list[dict[str, Any]]:
    """`spread` architectures at evenly spaced latency quantiles of a random pool, then `band` more within ±10%
    of the target (deployment latency predicted at 224×224; the arch itself at the data's resolution)."""
    rng = random.Random(seed)
    seen, rows = set(), []
    for _ in range(pool):
        choices = space.random_choices(rng)
        deploy = space.arch(choices, resolution=224, num_classes=1000)
        if deploy.hash in seen:
            continue
        seen.add(deploy.hash)
        rows.append((predict(deploy, table).latency_ms, choices))
    rows.sort(key=lambda r: r[0])
    picked: list[dict[str, Any]] = []
    for i in range(spread):
        ms, choices = rows[round(i * (len(rows) - 1) / max(1, spread - 1))]
        picked.append({"group": "spread", "latency_ms": ms, "choices": choices})
    taken = {id(p["choices"]) for p in picked}
    in_band = [r for r in rows if abs(r[0] / target_ms - 1) <= 0.10 and id(r[1]) not in taken]
    rng.shuffle(in_band)
    for ms, choices in in_band[:band]:
        picked.append({"group": "band", "latency_ms": ms, "choices": choices})
    for p in picked:
        arch = space.arch(p["choices"], resolution=resolution, num_classes=num_classes)
        p.update(name=arch.name, macs=arch.macs)
    return picked


def visiting_order(n: int) -> list[int]:
    """0..n-1 in bit-reversed (van der Corput) order: any prefix is spread evenly over the range, so a run stopped
    part-way has measured networks across the whole latency range, not only its fast end."""
    bits = max(1, (n - 1).bit_length())
    return sorted(range(n), key=lambda i: int(format(i, f"0{bits}b")[::-1], 2))


def units_of_shard(units: list[dict[str, Any]], shard: tuple[int, int] | None) -> list[dict[str, Any]]:
    """The units one process measures, in visiting order; `shard` (k, n) takes every n-th from the k-th, so that n
    one-thread processes share the machine's cores."""
    ordered = [units[i] for i in visiting_order(len(units))]
    return ordered if shard is None else ordered[shard[0]::shard[1]]


def merge_shards(out: Path, units: list[dict[str, Any]]) -> None:
    """Copy what sharded processes measured (fidelity.shard-K-of-N.json) into `units`."""
    by_name = {u["name"]: u for u in units}
    for path in sorted(out.glob("fidelity.shard-*-of-*.json")):
        for name, measured in read_json(path).items():
            if name in by_name:
                by_name[name].update(measured)


def parse_shard(text: str) -> tuple[int, int]:
    k, sep, n = text.partition("/")
    if not (sep and k.isdigit() and n.isdigit() and 0 <= int(k) < int(n)):
        raise argparse.ArgumentTypeError(f"expected K/N with 0 <= K < N, got {text!r}")
    return int(k), int(n)


def bootstrap_tau(a: list[float], b: list[float], n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    taus = []
    for _ in range(n):
        idx = [rng.randrange(len(a)) for _ in a]
        xa, xb = [a[i] for i in idx], [b[i] for i in idx]
        if len(set(xa)) > 1 and len(set(xb)) > 1:
            taus.append(kendall_tau(xa, xb))
    taus.sort()
    if not taus:
        return [float("nan"), float("nan")]
    return [round(taus[int(0.025 * (len(taus) - 1))], 4), round(taus[int(0.975 * (len(taus) - 1))], 4)]


def fidelity_table(units: list[dict[str, Any]], boot: int) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for group in ("spread", "band"):
        rows = [u for u in units if u["group"] == group and "standalone_test" in u]
        table[group] = {}
        for est in (*ESTIMATORS, *OPTIONAL):
            pairs = [(u[est], u["standalone_test"]) for u in rows if u.get(est) is not None]
            if len(pairs) < 3:
                continue
            a, b = [p[0] for p in pairs], [p[1] for p in pairs]
            table[group][est] = {"n": len(pairs), "tau": round(kendall_tau(a, b), 4),
                                 "ci95": bootstrap_tau(a, b, boot, seed=len(pairs))}
    return table


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", help="trained supernet directory (nas supernet train)")
    p.add_argument("--data", default="npz:../shared/data/cifar10.npz#first=20000")
    p.add_argument("--space", default="mobilenetv3")
    p.add_argument("--device", default="pixel")
    p.add_argument("--target-ms", type=float, default=80.0)
    p.add_argument("--spread", type=int, default=30)
    p.add_argument("--band", type=int, default=15)
    p.add_argument("--pool", type=int, default=3000, help="random architectures to pick from")
    p.add_argument("--epochs", type=float, default=STANDALONE.epochs, help="stand-alone training epochs")
    p.add_argument("--skip-standalone", action="store_true", help="estimators only")
    p.add_argument("--time-standalone", type=int, default=None, metavar="STEPS",
                   help="time STEPS steps of one stand-alone training and estimate the full cost; train nothing else")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench/results/supernet-fidelity")
    p.add_argument("--shard", type=parse_shard, default=None, metavar="K/N",
                   help="measure only every N-th network from the K-th (run N of these side by side, one per core, "
                        "then once without --shard to merge and report)")
    p.add_argument("--smoke", action="store_true", help="tiny run on synthetic data (seconds)")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    out = ec.out_dir(args.out)
    clock = ec.Stopwatch()
    max_steps = None
    if args.smoke:
        args.data, args.spread, args.band, args.pool, args.bootstrap = "synthetic:120,40", 3, 2, 40, 20
        max_steps = 1
    data = load_data(args.data, seed=args.seed)
    space = load_space(args.space)
    table = load_table(args.device)
    supernet = args.supernet
    if args.smoke and not supernet:
        supernet = ec.smoke_supernet(out / "supernet", space, data, args.data)
        if not (Path(supernet) / PREDICTOR).is_file():
            from nas.supernet.predictor import fit_predictor

            reader = build_evaluator(f"supernet:{supernet}", data, space=space, seed=args.seed)
            fit_predictor(supernet, reader, samples=10, seed=args.seed)
    if not supernet:
        p.error("--supernet DIR is required (train one with `nas supernet train`)")

    path = out / "fidelity.json"
    result: dict[str, Any] = read_json(path) if path.is_file() else {}
    if not result.get("units"):
        t0 = time.perf_counter()
        result = {"units": pick_archs(space, table, args.target_ms, args.spread, args.band, args.pool, args.seed,
                                      data.image_size, data.num_classes)}
        clock.add("pick architectures", time.perf_counter() - t0)
    result.update(ec.provenance(args.smoke))
    result.update(data=data.name, supernet=str(supernet), device=args.device, target_ms=args.target_ms,
                  standalone_recipe={**STANDALONE.__dict__, "epochs": args.epochs, "max_steps": max_steps})
    units = result["units"]
    if not args.shard:
        merge_shards(out, units)

    def arch_of(u: dict[str, Any]) -> Any:
        return space.arch(u["choices"], resolution=data.image_size, num_classes=data.num_classes)

    def save() -> None:
        result["wall_s"] = {**clock.phases, "total (this invocation)": clock.total()}
        ec.save(out, "fidelity", result)

    if args.time_standalone:
        spread_units = [u for u in units if u["group"] == "spread"]
        timed, cpu = {}, {}
        for u in (spread_units[0], spread_units[len(spread_units) // 2], spread_units[-1]):
            torch.manual_seed(args.seed)
            cfg = TrainConfig(**{**STANDALONE.__dict__, "max_steps": args.time_standalone, "seed": args.seed})
            t0, c0 = time.perf_counter(), time.process_time()
            train(build(arch_of(u)), data, cfg)
            timed[u["name"]] = round((time.perf_counter() - t0) / args.time_standalone, 3)
            cpu[u["name"]] = round((time.process_time() - c0) / args.time_standalone, 3)
        steps = len(data.train) // STANDALONE.batch_size * args.epochs
        per_net = statistics.fmean(timed.values()) * steps
        per_net_cpu = statistics.fmean(cpu.values()) * steps
        estimate = {
            "measured_seconds_per_step": timed,
            "measured_cpu_seconds_per_step": cpu,
            "estimated_cpu_hours_all": round(per_net_cpu * len(units) / 3600, 1),
            "timed": "the fastest, median and slowest architecture of the spread, first steps of the recipe",
            "steps_per_network": steps,
            "estimated_hours_per_network": round(per_net / 3600, 2),
            "estimated_hours_all": round(per_net * len(units) / 3600, 1),
            "networks": len(units),
            **ec.provenance(args.smoke),
        }
        save()
        ec.save(out, "cost_estimate", estimate)
        print(estimate)
        return 0

    mine = units_of_shard(units, args.shard)
    shard_path = out / f"fidelity.shard-{args.shard[0]}-of-{args.shard[1]}.json" if args.shard else None
    shard_done: dict[str, Any] = read_json(shard_path) if shard_path and shard_path.is_file() else {}
    for u in mine:
        u.update(shard_done.get(u["name"], {}))

    estimators = {
        "supernet": build_evaluator(f"supernet:{supernet}", data, space=space, seed=args.seed),
        **({"predictor": build_evaluator(f"supernet-predictor:{supernet}", data, space=space, seed=args.seed)}
           if (Path(supernet) / PREDICTOR).is_file() else {}),
        "proxy": build_evaluator("train", data, seed=args.seed, options={"max_steps": max_steps} if max_steps else {}),
        "synflow": build_evaluator("zero-cost", data, seed=args.seed, options={"score": "synflow"}),
        "naswot": build_evaluator("zero-cost", data, seed=args.seed, options={"score": "naswot"}),
    }

    def record(u: dict[str, Any]) -> None:
        if shard_path is None:
            save()
            return
        shard_done[u["name"]] = {k: u[k] for k in (*ESTIMATORS, *OPTIONAL, *STANDALONE_KEYS, "seconds") if k in u}
        ec.save(out, shard_path.stem, shard_done)

    # Unit by unit, every estimator and then the stand-alone training: a run stopped part-way leaves whole rows.
    for u in mine:
        arch = arch_of(u)
        for est in (*ESTIMATORS, *(e for e in OPTIONAL if e in estimators)):
            if est in u:
                continue
            t0 = time.perf_counter()
            if est == "flops":
                u[est] = arch.macs
            else:
                r = estimators[est](arch)
                u[est] = r.extra["score"] if est in ("synflow", "naswot") else r.accuracy
            u.setdefault("seconds", {})[est] = round(time.perf_counter() - t0, 3)
            clock.add(est, time.perf_counter() - t0)
            record(u)
        if args.skip_standalone or "standalone_test" in u:
            continue
        torch.manual_seed(args.seed)
        model = build(arch)
        cfg = TrainConfig(**{**STANDALONE.__dict__, "epochs": args.epochs, "max_steps": max_steps, "seed": args.seed})
        t0 = time.perf_counter()
        res = train(model, data, cfg)
        u["standalone_val"] = res.accuracy
        u["standalone_test"] = evaluate(model, data.test)
        u.setdefault("seconds", {})["standalone"] = round(time.perf_counter() - t0, 1)
        clock.add("standalone", time.perf_counter() - t0)
        record(u)
    if shard_path is not None:
        return 0

    result["kendall_tau"] = fidelity_table(units, args.bootstrap)
    save()
    plot(units, out / "fidelity.png")
    for group, rows in result["kendall_tau"].items():
        print(group, {k: (v["tau"], v["ci95"]) for k, v in rows.items()})
    return 0


def plot(units: list[dict[str, Any]], path: Path) -> None:
    rows = [u for u in units if "standalone_test" in u]
    if not rows:
        return
    plt = ec.pyplot()
    shown = [e for e in (*ESTIMATORS, *OPTIONAL) if any(u.get(e) is not None for u in rows)]
    fig, axes = plt.subplots(1, len(shown), figsize=(4 * len(shown), 3.6))
    for ax, est in zip(axes, shown, strict=True):
        for group, colour in (("spread", "tab:blue"), ("band", "tab:orange")):
            pts = [(u[est], u["standalone_test"]) for u in rows if u["group"] == group and u.get(est) is not None]
            if pts:
                ax.scatter(*zip(*pts, strict=True), s=14, c=colour, label=group)
        ax.set_xlabel(est)
        ax.set_ylabel("stand-alone test top-1")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.tight_layout()
    ec.save_figure(fig, path)


if __name__ == "__main__":
    raise SystemExit(main())
