"""Issue 13, item 1: how well does each way of scoring a NetAdapt proposal rank the proposals by their accuracy
after a longer fine-tune?

A MobileNetV2 is trained on the first `--limit` training images of the data (its stratified prefix: 80% train,
20% validation), then NetAdapt's first iteration is proposed on it (every unit's widest width that saves
`--step` of the predicted latency on `--device`). Each proposal is pruned from the trained network (L2-norm
filters, weights inherited) and scored on the validation split five ways:

- `stale-bn`: as pruned, BatchNorm statistics of the wider network (what a zero-step score sees);
- `adaptive-bn`: BN statistics re-estimated on `--bn-batches` training batches, no gradient step;
- `fine-tune`: `--short-steps` SGD steps (NetAdapt's short fine-tune, lr 0.02), no recalibration;
- `adaptive-bn+fine-tune`: both, recalibration first;
each by top-1 and by validation loss. The reference is each proposal's test top-1 (all test images) after
`--long-steps` of fine-tuning (lr 0.05, cosine). Reported: Kendall's τ-b of every score against the reference,
and the reference accuracy of the proposal each score would pick (against the best one's).

Resumable: the trained start (start.pt) and every finished proposal (scoring.json) are kept; rerun the same
command to continue. Smoke (a tiny net, a few steps; figures meaningless):

    python bench/netadapt_scoring.py --smoke --out DIR
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from evidence_common import provenance, save  # noqa: E402

from nas import zoo  # noqa: E402
from nas.accuracy.data import load_data  # noqa: E402
from nas.accuracy.train import TrainConfig, fine_tune, train  # noqa: E402
from nas.io import atomic_write, writable_dir  # noqa: E402
from nas.latency import load_table, predict  # noqa: E402
from nas.latency.validate import kendall_tau  # noqa: E402
from nas.model import build  # noqa: E402
from nas.netadapt import find_units, keep_largest, propose, prune  # noqa: E402
from nas.netadapt.scoring import recalibrate_bn, val_metrics  # noqa: E402

RULES = ("stale-bn", "adaptive-bn", "fine-tune", "adaptive-bn+fine-tune")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="npz:/work/shared/data/cifar10.npz")
    p.add_argument("--limit", type=int, default=20000, help="training images used (train + validation)")
    p.add_argument("--model", default="mobilenet_v2")
    p.add_argument("--width", type=float, default=0.5)
    p.add_argument("--device", default="pixel")
    p.add_argument("--pretrain-epochs", type=float, default=15)
    p.add_argument("--pretrain-lr", type=float, default=0.05)
    p.add_argument("--step", type=float, default=0.02, help="the iteration's latency saving, fraction of L0")
    p.add_argument("--bn-batches", type=int, default=20)
    p.add_argument("--short-steps", type=int, default=50)
    p.add_argument("--long-steps", type=int, default=250)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--max-proposals", type=int, default=None, help="score only the first N proposals")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="bench/results/netadapt-scoring")
    p.add_argument("--smoke", action="store_true", help="tiny sizes, seconds; figures meaningless")
    p.add_argument("--markdown", action="store_true", help="print the report in --out as a markdown table, and stop")
    return p


SMOKE = {
    "data": "synthetic",
    "limit": 400,
    "width": 0.35,
    "pretrain_epochs": 1,
    "step": 0.05,
    "bn_batches": 2,
    "short_steps": 2,
    "long_steps": 3,
    "batch_size": 32,
    "max_proposals": 4,
}


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """τ-b of every score (top-1 and −loss) against the reference, and the pick each score makes."""
    ref = [r["reference_test_top1"] for r in records]
    best = max(ref) if ref else float("nan")
    rows = []
    for rule in RULES:
        for by in ("top1", "loss"):
            score = [r[rule][by] if by == "top1" else -r[rule][by] for r in records]
            pick = max(range(len(records)), key=lambda i: score[i]) if records else None
            rows.append(
                {
                    "rule": rule,
                    "by": "top-1" if by == "top1" else "val loss",
                    "kendall_tau": round(kendall_tau(score, ref), 3) if len(records) > 1 else None,
                    "picked_reference_top1": ref[pick] if pick is not None else None,
                    "best_reference_top1": best,
                    "seconds_per_proposal": round(statistics.fmean(r[rule]["seconds"] for r in records), 2)
                    if records
                    else None,
                }
            )
    return {"proposals": len(records), "rows": rows}


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("out", "markdown")}


def markdown(report: dict[str, Any]) -> str:
    """The rank-correlation table of docs/netadapt.md."""
    cfg, summary = report["settings"], report["summary"]
    lines = [
        f"{summary['proposals']} of {report.get('proposals_total', '?')} proposals; {report.get('data', cfg['data'])}; "
        f"{cfg['model']} ×{cfg['width']}, step {cfg['step']} of {report['latency_ms']:.2f} ms ({cfg['device']}); "
        f"reference: test top-1 after {cfg['long_steps']} steps; start: val top-1 {report['start']['val'][0]:.3f}",
        "",
        "| score | by | Kendall τ-b | reference top-1 of its pick | best reference top-1 | s per proposal |",
        "|---|---|---|---|---|---|",
    ]
    for r in summary["rows"]:
        rule = (
            r["rule"]
            .replace("adaptive-bn", f"adaptive-BN ({cfg['bn_batches']} batches)")
            .replace("fine-tune", f"fine-tune ({cfg['short_steps']} steps)")
        )
        lines.append(
            f"| {rule} | {r['by']} | {r['kendall_tau']:+.2f} | {100 * r['picked_reference_top1']:.1f} | "
            f"{100 * r['best_reference_top1']:.1f} | {r['seconds_per_proposal']:.1f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.markdown:
        import json

        print(markdown(json.loads((Path(args.out) / "scoring.json").read_text())))
        return 0
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    torch.set_num_threads(1)
    out = writable_dir(args.out)
    t_start = time.perf_counter()
    report_path = out / "scoring.json"
    settings = _settings(args)
    if report_path.exists():
        import json

        report = json.loads(report_path.read_text())
        if report.get("settings") != settings:
            raise SystemExit(f"{report_path} was made with other settings; use another --out")
    else:
        report = {**provenance(args.smoke), "settings": settings, "records": [], "wall_s": {}}

    data = load_data(args.data, seed=args.seed, limit=args.limit)
    report["data"] = data.summary()
    table = load_table(args.device)
    arch = zoo.get(args.model, width=args.width, num_classes=data.num_classes)
    lat = lambda a: predict(a, table).latency_ms  # noqa: E731

    start_path = out / "start.pt"
    net = build(arch)
    if start_path.exists():
        net.load_state_dict(torch.load(start_path, map_location="cpu", weights_only=True))
    else:
        torch.manual_seed(args.seed)
        net = build(arch)
        t = time.perf_counter()
        cfg = TrainConfig(epochs=args.pretrain_epochs, lr=args.pretrain_lr, batch_size=args.batch_size, seed=args.seed)
        train(net, data, cfg)
        report["wall_s"]["pretrain"] = round(time.perf_counter() - t, 1)
        state = {k: v.detach().clone() for k, v in net.state_dict().items()}
        atomic_write(start_path, lambda tmp: torch.save(state, tmp))
    report["start"] = {"val": val_metrics(net, data.val), "test": val_metrics(net, data.test)}

    l0 = lat(arch)
    units = find_units(arch)
    proposals = propose(arch, lat, l0 * (1 - args.step), units)
    if args.max_proposals:
        proposals = proposals[: args.max_proposals]
    report["latency_ms"] = l0
    report["proposals_total"] = len(proposals)
    done = {(r["unit"], r["width"]) for r in report["records"]}
    short_cfg = TrainConfig(lr=0.02, warmup_fraction=0.0, batch_size=args.batch_size, seed=args.seed + 1)
    long_cfg = TrainConfig(lr=0.05, batch_size=args.batch_size, seed=args.seed + 2)
    for k, prop in enumerate(proposals):
        if (prop.unit.name, prop.width) in done:
            continue
        t_prop = time.perf_counter()
        keep = keep_largest(net, arch, prop.unit, prop.width)
        pruned, _ = prune(net, arch, {prop.unit: keep}, units)
        rec: dict[str, Any] = {"unit": prop.unit.name, "width_before": prop.unit.width, "width": prop.width,
                               "latency_ms": prop.latency_ms}  # fmt: skip
        for rule in RULES:
            t = time.perf_counter()
            cand = copy.deepcopy(pruned)
            if "adaptive-bn" in rule:
                recalibrate_bn(cand, data.train, args.bn_batches, batch_size=args.batch_size, seed=args.seed + 3)
            if "fine-tune" in rule:
                fine_tune(cand, data, args.short_steps, short_cfg)
            top1, loss = val_metrics(cand, data.val)
            rec[rule] = {"top1": top1, "loss": loss, "seconds": round(time.perf_counter() - t, 2)}
        ref = copy.deepcopy(pruned)
        fine_tune(ref, data, args.long_steps, long_cfg)
        rec["reference_test_top1"], rec["reference_test_loss"] = val_metrics(ref, data.test)
        rec["reference_val_top1"] = val_metrics(ref, data.val)[0]
        rec["seconds"] = round(time.perf_counter() - t_prop, 1)
        report["records"].append(rec)
        report["summary"] = summarise(report["records"])
        report["wall_s"]["proposals (sum)"] = round(sum(r["seconds"] for r in report["records"]), 1)
        save(out, "scoring", report)
        print(f"[{k + 1}/{len(proposals)}] {prop.unit.name} {prop.unit.width}->{prop.width}: "
              f"ref {rec['reference_test_top1']:.4f}, " + ", ".join(f"{r} {rec[r]['top1']:.4f}" for r in RULES),
              flush=True)  # fmt: skip
    report["summary"] = summarise(report["records"])
    report["wall_s"]["total (this invocation)"] = round(time.perf_counter() - t_start, 1)
    save(out, "scoring", report)
    for row in report["summary"]["rows"]:
        print(f"{row['rule']:>22} by {row['by']:<8} tau {row['kendall_tau']}  pick {row['picked_reference_top1']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
