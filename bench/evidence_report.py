"""Issue 6: the markdown tables of docs/results.md, printed from the evidence scripts' JSON reports.

Every figure on that page comes from this output, so a table can be checked against (and regenerated from) the
runs that made it:

    python bench/evidence_report.py [--results bench/results] [--update docs/results.md]

A report that is missing is named and skipped; smoke reports are refused (their figures mean nothing). With
`--update`, each section's table replaces what stands between its markers in the page, and nothing else.
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from nas.io import read_json, write_text


def pct(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:.{digits}f}%"


def top1(stat: dict[str, Any] | None) -> str:
    """Mean ± std over seeds, in points."""
    if not stat or stat.get("mean") is None:
        return "—"
    std = f" ± {100 * stat['std']:.1f}" if stat.get("std") is not None else ""
    return f"{100 * stat['mean']:.1f}{std}"


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def provenance(report: dict[str, Any]) -> str:
    m = report["machine"]
    load = m.get("load_average_at_start")
    return (
        f"`{report['command']}` · {report['date']} · {m['platform']}, {m['cpu_count']} CPUs"
        f" · load average at start {load}"
    )


def latency(r: dict[str, Any]) -> str:
    v, px = r["cpu_validate"], r["pixel"]
    raw, cor = v["raw"], v.get("corrected_holdout", {})
    rows = [
        ["networks", raw["samples"], cor.get("samples", "—"), sum(s["n"] for s in px["schemes"])],
        ["MAPE", pct(raw["mape"]), pct(cor.get("mape")), pct(px["pooled_cv_mape"])],
        ["median APE", pct(raw["median_ape"]), pct(cor.get("median_ape")), "—"],
        ["within ±10%", pct(raw["within_10pct"], 0), pct(cor.get("within_10pct"), 0), "—"],
        ["Kendall τ", raw["kendall_tau"], cor.get("kendall_tau", "—"), "—"],
        ["median bias (predicted/measured − 1)", pct(raw["bias"]), pct(cor.get("bias")), "—"],
    ]
    out = [table(["figure", "CPU, plain sum (all)", "CPU, corrected (held out)", "Pixel 1 model"], rows)]
    out.append(
        f"\nCPU ground truth: {v['random_networks']} random networks of the space"
        + (f" + {len(v['zoo_networks'])} zoo networks" if v["zoo_networks"] else "")
        + f", {v['rounds']} rounds × {v['passes']} passes; Kendall τ between rounds "
        f"{v['measurement_tau_between_rounds']}, median spread between rounds {pct(v['measurement_spread_median'])}."
    )
    if "correction" in v:
        c = v["correction"]
        out.append(
            f"Correction fitted on {c['fitted_on']} networks: ×{c['scale']} + {c['offset_ms']} ms, "
            f"reported on the other {c['reported_on']}."
        )
    schemes = [[s["scheme"], len(s["groups"]), s["n"], pct(s["mape"]), pct(s["max_abs_error"])] for s in px["schemes"]]
    out.append("\nPixel 1 (estimated) model: fit MAPE " + pct(px["fit_mape"]) + "; cross-validation by scheme:\n")
    out.append(table(["scheme", "groups", "networks", "MAPE", "worst error"], schemes))
    hold = px["holdout"]
    if hold.get("rows"):
        out.append(f"\nFamilies never fitted ({len(hold['rows'])} networks): MAPE {pct(hold['mape'])}.")
    if "build" in r:
        b = r["build"]
        out.append(f"\nFresh CPU table: {b['ops']} ops, built in {b['wall_s']:.0f} s.")
    return "\n".join(out)


def search(r: dict[str, Any]) -> str:
    rows = []
    for cell in r["cells"].values():
        nets = cell["networks"]
        s = cell["search"]
        if s.get("arch") is None:
            rows.append([cell["device"], f"{cell['target_ms']:g} ms", "search found nothing", *[""] * 6])
            continue

        def base(name: str, nets: dict[str, Any] = nets) -> str:
            n = nets.get(name)
            if not n or not n.get("reachable", True) or n.get("arch") is None:
                return "unreachable"
            return f"×{n['width']:.2f}, {n['latency_ms']:.2f} ms, {top1(n.get('test_top1'))}"

        m = cell.get("margin")
        best = m["best_baseline"] if m else ""
        rows.append(
            [
                cell["device"] + (" (estimated)" if cell["table_kind"] != "measured" else ""),
                f"{cell['target_ms']:g} ms",
                f"{s['latency_ms']:.2f} ms ({s['trials']} trials)",
                top1(nets["searched"].get("test_top1")),
                base("mobilenet_v2"),
                base("mobilenet_v3_small"),
                base("mobilenet_v3_large"),
                f"{m['points']:+.1f} ± {margin_se(nets['searched']['test_top1'], nets[best]['test_top1']):.1f} ({best})"
                if m
                else "—",
                ("met" if m["goal_met"] else "**not met**") if m else "—",
            ]
        )
    header = [
        "device",
        "target",
        "searched: predicted",
        "searched top-1",
        "MobileNetV2 (×w, ms, top-1)",
        "MobileNetV3-Small",
        "MobileNetV3-Large",
        "margin over best baseline (points ± standard error)",
        "goal ≥ 2 points",
    ]
    return table(header, rows) + "\n\n" + search_details(r)


def margin_se(a: dict[str, Any], b: dict[str, Any]) -> float:
    """Standard error of the difference of two mean top-1s (mean_std dicts) over seeds, in points (a missing
    std counts as 0)."""
    return 100 * ((a["std"] or 0.0) ** 2 / a["n"] + (b["std"] or 0.0) ** 2 / b["n"]) ** 0.5


def search_details(r: dict[str, Any]) -> str:
    """Per network: size at the deploy resolution, and top-1 of each seed; then the searched architectures."""
    from nas.arch import Arch
    from nas.block_strings import timm_strings

    rows, found = [], []
    for key, cell in r["cells"].items():
        for name, net in cell["networks"].items():
            if net.get("arch") is None:
                continue
            arch = Arch.from_dict(net["arch"])
            seeds = ", ".join(f"{100 * run['test_top1']:.1f}" for _, run in sorted(net["runs"].items()))
            width = f"×{net['width']:.2f}" if "width" in net else "searched"
            rows.append(
                [
                    key,
                    name,
                    width,
                    f"{net['latency_ms']:.2f}",
                    f"{arch.macs / 1e6:.0f}",
                    f"{arch.params / 1e6:.2f}",
                    seeds,
                ]
            )
            if name == "searched":
                style, strings = timm_strings(arch)
                stages = "; ".join(" ".join(stage) for stage in strings)
                found.append(f"- `{key}` ({style.lower()} style): `{stages}`")
    header = ["cell", "network", "width", "predicted ms", "MACs (M, 224)", "params (M)", "test top-1 per seed"]
    return table(header, rows) + "\n\nSearched architectures (timm block strings of the stages):\n\n" + "\n".join(found)


def top1_se(stat: dict[str, Any] | None) -> str:
    """Mean ± standard error over seeds, in points, and the number of seeds."""
    if not stat or stat.get("mean") is None:
        return "—"
    se = f" ± {100 * stat['se']:.1f}" if stat.get("se") is not None else ""
    return f"{100 * stat['mean']:.1f}{se} (n={stat['n']})"


SEARCH2_NAMES = {
    "supernet": "(a) supernet search, extracted + fine-tuned",
    "scratch": "(b) (a)'s architecture from scratch",
    "proxy": "(c) one-epoch-proxy search, from scratch",
    "mobilenet_v2": "MobileNetV2",
    "mobilenet_v3_small": "MobileNetV3-Small",
    "mobilenet_v3_large": "MobileNetV3-Large",
    "mnasnet_a1": "MnasNet-A1",
}


def search2(r: dict[str, Any]) -> str:
    """Issue 15, item 1: one row per cell and network (latency, test top-1 mean ± SE, margin ± SE, goal), then
    the searches, the CPU table, the wall time per phase and the searched architectures."""
    from nas.arch import Arch
    from nas.block_strings import timm_strings

    trainings = r["trainings"]
    rows, searches, found = [], [], []
    for key, cell in r["cells"].items():
        device = cell["device"] + (" (estimated)" if cell["table_kind"] != "measured" else " (built here)")
        margins = cell.get("margins", {})
        if not cell["networks"]:
            rows.append([device, f"{cell['target_ms']:g} ms", "search found nothing", *[""] * 6])
        for name, label in SEARCH2_NAMES.items():
            net = cell["networks"].get(name)
            if net is None:
                continue
            if net.get("arch") is None:
                rows.append([device, f"{cell['target_ms']:g} ms", label, "unreachable", *[""] * 5])
                continue
            width = f"×{net['width']:.2f}" if "width" in net else "searched"
            train = trainings.get(net.get("training"), {})
            lr = f"{train['lr']:g}" if "lr" in train else ("fine-tune" if name == "supernet" else "—")
            m = margins.get(name)
            margin = f"{m['points']:+.1f} ± {m['se_points']:.1f} ({SEARCH2_NAMES[m['best_baseline']]})" if m else ""
            goal = "" if not m or m["goal_met"] is None else ("met" if m["goal_met"] else "**not met**")
            rows.append([device, f"{cell['target_ms']:g} ms", label, width, f"{net['latency_ms']:.2f}", lr,
                         top1_se(net.get("test_top1")), margin, goal])
        for which, s in cell.get("searches", {}).items():
            ms = f"{s['latency_ms']:.2f}" if s.get("latency_ms") is not None else "—"
            wall = f"{s['wall_s']:.0f} s"
            searches.append([key, which, s["evaluator"].split(":")[0], s["trials"], s["stopped"], wall, ms])
        net = cell["networks"].get("supernet")
        if net and net.get("runs"):
            runs = sorted(net["runs"].values(), key=lambda run: run["seed"])
            inherited = runs[0]["inherited_val_top1"]
            tuned = ", ".join(pct(run["finetuned_val_top1"]) for run in runs)
            found.append(f"- `{key}` (a): validation top-1 with inherited weights {pct(inherited)}, "
                         f"after fine-tuning {tuned}")
        for name in ("scratch", "proxy"):
            n = cell["networks"].get(name)
            if n and n.get("arch"):
                style, strings = timm_strings(Arch.from_dict(n["arch"]))
                stages = "; ".join(" ".join(stage) for stage in strings)
                found.append(f"- `{key}` {'(a)/(b)' if name == 'scratch' else '(c)'} ({style.lower()} style): "
                             f"`{stages}`")
    header = ["device", "target", "network", "width", "predicted ms (224)", "peak lr", "test top-1 (mean ± SE)",
              "margin over best baseline (points ± SE)", "goal ≥ 2 points"]
    rec = r["recipe"]
    out = [table(header, rows)]
    out.append(f"\nRecipe: `{rec['trainer']}`, {rec['epochs']} epochs per seed, peak lr chosen from "
               f"{rec['lr_grid']} on the validation split after {rec['lr_epochs']} epoch(s), {rec['seeds']} seeds; "
               f"(a) fine-tuned {rec['finetune']['epochs']} epoch(s) at lr {rec['finetune']['lr']:g} per seed. "
               "Test top-1 on every test image.")
    out.append("\n" + table(["cell", "search", "evaluator", "trials", "stopped by", "wall", "best: predicted ms"],
                            searches))
    cpu = r.get("tables", {}).get("cpu")
    if cpu and "validate" in cpu:
        v = cpu["validate"]
        b = cpu["build"]
        made = (f"copied from {b['copied_from']} (smoke)" if "copied_from" in b
                else f"built here: {b['ops']} ops in {b['wall_s']:.0f} s")
        saved = v.get("correction_saved")
        out.append(f"\nCPU table {made}; validated on {v.get('samples')} networks in {v['wall_s']:.0f} s: MAPE "
                   f"{pct(v.get('mape'))} ({v.get('reported')}), Kendall τ {v.get('kendall_tau')}, within ±10% "
                   f"{pct(v.get('within_10pct'), 0)}; timed under load: {v['load']['timed_under_load']}; correction "
                   f"{'saved into it' if saved else 'not saved (predictions use the plain sum)'}.")
    phases = [[k, f"{v:.0f} s"] for k, v in r["wall_s"].items()]
    loads = [f"{i['load_average_at_start']} → {i.get('load_average_at_end', '(killed)')}" for i in r["invocations"]]
    out.append("\n" + table(["phase (sum: seconds of one core, summed over jobs)", "time"], phases))
    out.append(f"\nInvocations: {len(loads)}; load average (1, 5, 15 min) at start → end: {'; '.join(loads)}.")
    out.append("\nSearched architectures (timm block strings of the stages) and (a)'s accuracy before and after "
               "fine-tuning:\n\n" + "\n".join(found))
    return "\n".join(out)


def recipe(r: dict[str, Any]) -> str:
    lrs = r["settings"]["lrs"]
    rows = [[name, *[pct(by_lr.get(f"{lr:g}")) for lr in lrs]] for name, by_lr in r["test_top1"].items()]
    header = ["network (seed " + str(r["settings"]["seed"]) + ")", *[f"test top-1 at lr {lr:g}" for lr in lrs]]
    return table(header, rows)


# The trial counts shown as columns, where the report has them (it records more: 5, 150, 300 …).
READABLE_CHECKPOINTS = (1, 10, 20, 50, 100, 200, 500, 1000)


def efficiency_checkpoints(r: dict[str, Any]) -> list[str]:
    """The readable trial counts the report's summary holds, and always its last one (the run's length)."""
    present = {int(n) for agg in r["summary"].values() for n in agg["best_after"]}
    shown = {n for n in READABLE_CHECKPOINTS if n in present} | ({max(present)} if present else set())
    return [str(n) for n in sorted(shown)]


def efficiency(r: dict[str, Any]) -> str:
    """Best reward after n evaluated trials per sampler (mean ± std over seeds), at the checkpoints of the report:
    round 1 ran 200 trials, round 2 1,000."""
    checkpoints = efficiency_checkpoints(r)
    rows = []
    for sampler, agg in r["summary"].items():
        at = agg["best_after"]
        rows.append(
            [
                sampler,
                agg["seeds"],
                *[_mean_std(at.get(n)) for n in checkpoints],
                agg["screened_out_mean"],
                agg.get("drawn_mean", "—"),
                f"{agg['wall_s_mean']:.0f} s",
            ]
        )
    header = ["sampler", "seeds", *[f"best after {n}" for n in checkpoints], "screened out (mean)",
              "candidates drawn (mean)", "wall (mean)"]
    return table(header, rows)


def _mean_std(stat: dict[str, Any] | None) -> str:
    if not stat:
        return "—"
    std = f" ± {stat['std']:.4f}" if stat.get("std") is not None else ""
    return f"{stat['mean']:.4f}{std}"


def netadapt(r: dict[str, Any]) -> str:
    def se(row: dict[str, Any]) -> float:
        return margin_se(row["netadapt_test_top1"], row["width_test_top1"])

    rows = [
        [
            f"{row['fraction']:g} ({row['target_ms']:.1f} ms)",
            f"{row['netadapt_latency_ms']:.1f} ms, {top1(row['netadapt_test_top1'])}",
            f"×{', '.join(f'{w:.2f}' for w in row['widths'])}, {row['width_latency_ms']:.1f} ms, "
            f"{top1(row['width_test_top1'])}",
            f"{row['netadapt_minus_width_points']:+.1f} ± {se(row):.1f}",
            row["netadapt_test_top1"]["n"],
            f"{row['netadapt_wall_s_mean']:.0f} s / {row['width_wall_s_mean']:.0f} s",
        ]
        for row in r["summary"]
    ]
    header = [
        "target (fraction, ms)",
        "NetAdapt: ms, top-1",
        "width multiplier: ×w, ms, top-1",
        "NetAdapt − width (points ± standard error)",
        "seeds",
        "wall: NetAdapt / width (mean)",
    ]
    return table(header, rows)


FIDELITY_NAMES = {
    "supernet": "supernet read",
    "predictor": "supernet accuracy predictor",
    "proxy": "one-epoch proxy (the search's default)",
    "naswot": "NASWOT (zero-cost)",
    "synflow": "SynFlow (zero-cost)",
    "flops": "FLOPs (MACs at the data's resolution)",
}


def fidelity(r: dict[str, Any]) -> str:
    """Issue 15, item 2: Kendall τ of each cheap estimator against stand-alone test top-1, over the latency
    spread and within the band around the target, with 95% bootstrap intervals."""
    taus = r["kendall_tau"]
    spread, band = taus.get("spread", {}), taus.get("band", {})
    names = [e for e in FIDELITY_NAMES if e in spread or e in band]
    names += [e for e in dict.fromkeys((*spread, *band)) if e not in FIDELITY_NAMES]

    def tau(stat: dict[str, Any] | None) -> list[str]:
        if not stat:
            return ["—", "—"]
        low, high = stat["ci95"]
        return [f"{stat['tau']:.2f} ({stat['n']})", f"{low:.2f} – {high:.2f}"]

    def median_s(est: str) -> str:
        secs = sorted(u["seconds"][est] for u in r["units"] if est in u.get("seconds", {}))
        if not secs:
            return "—"
        median = secs[len(secs) // 2]
        return f"{median:.1f} s" if median >= 0.05 else "< 0.1 s"

    rows = [[FIDELITY_NAMES.get(e, e), *tau(spread.get(e)), *tau(band.get(e)), median_s(e)] for e in names]
    rec = r["standalone_recipe"]
    groups = {g: [u["latency_ms"] for u in r["units"] if u["group"] == g] for g in ("spread", "band")}
    ranges = {g: f"{min(v):.1f}–{max(v):.1f} ms" if v else "none" for g, v in groups.items()}
    intro = (
        f"Reference: each architecture trained alone, {rec['epochs']} epochs at peak lr {rec['lr']:g}, batch "
        f"{rec['batch_size']}, seed {rec['seed']}, top-1 on the test split of `{r['data']}`; stand-alone training "
        f"took a median of {median_s('standalone')} per architecture. Architectures: {len(groups['spread'])} "
        f"spread over predicted {r['device']} latency ({ranges['spread']}), {len(groups['band'])} within ±10% of "
        f"{r['target_ms']:g} ms ({ranges['band']}). Kendall τ (number of architectures) with 95% bootstrap "
        "intervals.\n"
    )
    header = ["estimator", "τ over the spread (n)", "95% interval", "τ within the band (n)", "95% interval",
              "time per architecture (median)"]
    return intro + "\n" + table(header, rows)


def points(stat: dict[str, Any], signed: bool = False) -> str:
    """Mean ± standard error of a figure already in points (no ± where one seed left no error)."""
    se = stat.get("se")
    mean = f"{stat['mean']:+.1f}" if signed else f"{stat['mean']:.1f}"
    return mean + ("" if se is None or math.isnan(se) else f" ± {se:.1f}")


def netadapt2(r: dict[str, Any]) -> str:
    """Issue 15, item 4 (bench/netadapt_evidence.py): NetAdapt from a trained MobileNetV2 against the uniform width
    multiplier pruned from the same start; the summary's top-1s and differences are in points already."""
    runs = list(r["runs"].values())
    rows = []
    for row in r["summary"]:
        targets = [run["target_ms"] for run in runs if run["fraction"] == row["fraction"]]
        target = f"{row['fraction']:g}" + (f" ({targets[0]:.1f} ms)" if targets else "")
        goal = row.get("goal_points")
        met = "—" if goal is None or row.get("goal_met") is None else (
            f"≥ {goal:+g}: " + ("met" if row["goal_met"] else "**missed**"))
        widths = ", ".join(f"{w:.2f}" for w in row["uniform_widths"])
        rows.append([
            target,
            f"{row['netadapt_latency_ms']:.1f} ms, {points(row['netadapt_test_top1'])}",
            f"×{widths}, {row['uniform_latency_ms']:.1f} ms, {points(row['uniform_test_top1'])}",
            points(row["difference_points"], signed=True),
            met,
            row["seeds"],
            f"{row['netadapt_wall_s']:.0f} s / {row['uniform_wall_s']:.0f} s",
        ])
    start, s = r["start"], r["settings"]
    steps = ", ".join(str(n) for n in sorted({run["sgd_steps"] for run in runs if "sgd_steps" in run}))
    intro = (
        f"Start: MobileNetV2 {s['width']:.1f} trained {start['epochs']} epochs at lr {s['start_lr']:g}: test top-1 "
        f"{pct(start['test_top1'])} (validation {pct(start['val_top1'])}), {start['latency_ms']:.1f} ms predicted on "
        f"{s['device']}, {start['wall_s']:.0f} s. NetAdapt: {s['score']} scoring, step {s['step']:g}, "
        f"{s['long_epochs']}-epoch long fine-tune; the uniform baseline is pruned from the same start and "
        f"fine-tuned for the same number of SGD steps ({steps}). Data: {r['data']}. Test top-1 in points, mean ± "
        "standard error over seeds.\n"
    )
    header = [
        "target (fraction, ms)",
        "NetAdapt: ms, test top-1",
        "uniform: ×w, ms, test top-1",
        "NetAdapt − uniform (points ± SE)",
        "goal (points)",
        "seeds",
        "wall: NetAdapt / uniform (mean)",
    ]
    return intro + "\n" + table(header, rows)


def cost(reports: dict[str, dict[str, Any]]) -> str:
    rows = []
    lat = reports.get("latency")
    if lat:
        if "build" in lat:
            rows.append([f"CPU table build ({lat['build']['ops']} ops)", f"{lat['build']['wall_s']:.0f} s"])
        v = lat["cpu_validate"]
        n = v["random_networks"] + len(v["zoo_networks"])
        rows.append([f"CPU validation ({n} networks)", f"{lat['wall_s']['cpu_validate']:.0f} s"])
        rows.append(["Pixel 1 model refit + cross-validation", f"{lat['pixel']['wall_s']:.0f} s"])
    phases = {"baseline widths cpu": "timing the CPU baselines' missing ops", "trainings (wall)": "all final trainings"}
    for name, s in ((n, reports[n]) for n in ("search", "search-long") if n in reports):
        for key, cell in s["cells"].items():
            budget = f"{s['settings']['search_minutes']:g}-minute budget"
            what = f"search {key}, {budget} ({cell['search'].get('trials')} trials)"
            rows.append([what, f"{cell['search']['wall_s']:.0f} s"])
        for phase, what in phases.items():
            if phase in s["wall_s"]:
                rows.append([f"{what} (`{name}`, --jobs {s['settings']['jobs']})", f"{s['wall_s'][phase]:.0f} s"])
        walls = [
            run["wall_s"] for c in s["cells"].values() for n in c["networks"].values() for run in n["runs"].values()
        ]
        if walls:
            rows.append(
                [
                    f"one final training ({s['recipe']['epochs']:g} epochs, 1 thread), min–median–max of {len(walls)}",
                    f"{min(walls):.0f}–{sorted(walls)[len(walls) // 2]:.0f}–{max(walls):.0f} s",
                ]
            )
    s2 = reports.get("search2")
    if s2:
        for phase, seconds in s2["wall_s"].items():
            rows.append([f"search quality, round 2: {phase}", f"{seconds:.0f} s"])
    fi = reports.get("fidelity")
    if fi:
        spent: dict[str, list[float]] = {}
        for u in fi["units"]:
            for est, seconds in u.get("seconds", {}).items():
                spent.setdefault(est, []).append(seconds)
        for est, secs in sorted(spent.items(), key=lambda kv: -sum(kv[1])):
            what = "stand-alone training" if est == "standalone" else FIDELITY_NAMES.get(est, est)
            total = f"{sum(secs):.0f} s" if sum(secs) >= 0.5 else "< 1 s"
            rows.append([f"estimator fidelity: {what}, summed over {len(secs)} architectures", total])
    for name in ("efficiency", "efficiency2"):
        e = reports.get(name)
        if e:
            evaluator = e["settings"].get("evaluator", "zero-cost").split(":")[0]
            trials = e["settings"]["trials"]
            for sampler, agg in e["summary"].items():
                what = f"{evaluator} search, {trials} evaluated trials, {sampler}"
                rows.append([what, f"{agg['wall_s_mean']:.0f} s"])
    na = reports.get("netadapt")
    if na:
        for row in na["summary"]:
            rows.append([f"NetAdapt run, MobileNetV2 to {row['fraction']:g}", f"{row['netadapt_wall_s_mean']:.0f} s"])
    na2 = reports.get("netadapt2")
    if na2:
        rows.append([f"NetAdapt round 2: training the start ({na2['start']['epochs']} epochs)",
                     f"{na2['start']['wall_s']:.0f} s"])
        for row in na2["summary"]:
            rows.append([f"NetAdapt round 2 to {row['fraction']:g}: NetAdapt / uniform baseline (mean per seed)",
                         f"{row['netadapt_wall_s']:.0f} s / {row['uniform_wall_s']:.0f} s"])
        for key, seconds in na2["wall_s"].items():
            rows.append([f"whole `netadapt2` script: {key.removeprefix('total ').strip('()')}", f"{seconds:.0f} s"])
    for name, rep in reports.items():
        if name == "fidelity":  # its last invocation merges the shards' results: the rows above are its cost
            continue
        if "total (this invocation)" in rep.get("wall_s", {}):
            total = rep["wall_s"]["total (this invocation)"]
            rows.append([f"whole `{name}` script (last invocation)", f"{total:.0f} s"])
    return table(["what", "wall time"], rows)


SECTIONS: dict[str, tuple[str, str, Callable[[dict[str, Any]], str]]] = {
    "latency": ("evidence-latency/latency.json", "1. Latency prediction", latency),
    "search": ("evidence-search/results.json", "2. Search quality at equal latency", search),
    "search-long": ("evidence-search-long/results.json", "2b. The same with a longer search", search),
    "search2": ("evidence2-search/results.json", "2d. Search quality, second round (issue 15)", search2),
    "recipe": ("recipe-sensitivity/recipe.json", "2c. How much the shared learning rate decides", recipe),
    "fidelity": ("supernet-fidelity/fidelity.json", "2e. Estimator fidelity (issue 15, item 2)", fidelity),
    "efficiency": ("evidence-efficiency/efficiency.json", "3. Search efficiency", efficiency),
    "efficiency2": ("evidence2-efficiency/efficiency.json",
                    "3b. Sampler efficiency on the supernet predictor (issue 15, item 3)", efficiency),
    "netadapt": ("evidence-netadapt/netadapt.json", "4. NetAdapt against the width multiplier", netadapt),
    "netadapt2": ("netadapt-evidence/evidence.json",
                  "4b. NetAdapt from a trained start, second round (issue 15, item 4)", netadapt2),
}


def render(results: Path) -> dict[str, str]:
    """The markdown of every section (and of the cost table, under "cost"), keyed by section name."""
    reports: dict[str, dict[str, Any]] = {}
    out: dict[str, str] = {}
    for name, (path, _, render_section) in SECTIONS.items():
        file = results / path
        if not file.exists():
            out[name] = f"_{file} not found: not yet run._"
            continue
        report = read_json(file, "evidence report")
        if report.get("smoke"):
            out[name] = f"_{file} is a smoke run: its figures mean nothing._"
            continue
        try:
            out[name] = provenance(report) + "\n\n" + render_section(report)
        except KeyError as missing:  # the script writes its summary last: still running, or killed
            out[name] = f"_{file} is unfinished (no {missing}): run its command again to complete it._"
            continue
        reports[name] = report
    out["cost"] = cost(reports)
    return out


def update(doc: Path, sections: dict[str, str]) -> Path:
    """Replace what stands between each section's markers in `doc` (`<!-- evidence_report:NAME -->` …
    `<!-- /evidence_report:NAME -->`); the prose around them is left as written."""
    text = doc.read_text()
    any_marker = "<!-- evidence_report:" in text
    for name, body in sections.items():
        begin, end = f"<!-- evidence_report:{name} -->", f"<!-- /evidence_report:{name} -->"
        pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.DOTALL)
        if not pattern.search(text):
            if body.startswith("_") and any_marker:  # a report not yet run needs no place in the page yet
                print(f"{doc} has no markers for {name} (not run): skipped")
                continue
            raise SystemExit(f"{doc} has no {begin} … {end} markers")
        text = pattern.sub(lambda _, b=begin, e=end, body=body: f"{b}\n{body}\n{e}", text)
    return write_text(doc, text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--results", default="bench/results", help="folder holding the evidence-* report folders")
    p.add_argument("--update", metavar="DOC", help="write the tables into DOC's markers instead of printing them")
    args = p.parse_args(argv)
    sections = render(Path(args.results))
    if args.update:
        print(f"updated {update(Path(args.update), sections)}")
        return 0
    titles = {name: title for name, (_, title, _) in SECTIONS.items()} | {"cost": "5. Cost on this machine"}
    for name, body in sections.items():
        print(f"## {titles[name]}\n\n{body}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
