"""`nas latency build | predict | validate | export-ops | import | show`: per-op latency tables."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from nas.cli import print_json
from nas.latency.items import DEFAULT_SPACE


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("latency", help="build, check and use per-op latency tables")
    sub = p.add_subparsers(dest="latency_command", metavar="ACTION", required=True)

    b = sub.add_parser("build", help="time every op of a space, the zoo or a network on this machine")
    b.add_argument("--device", required=True, help="name of this machine's table (cpu, or a name of yours)")
    _add_source(b)
    b.add_argument("--runtime", choices=("onnxruntime", "torch"), default="onnxruntime")
    b.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1)")
    b.add_argument("--rounds", type=int, default=2, help="separate worker processes over all ops (default 2)")
    b.add_argument(
        "--passes",
        type=int,
        default=15,
        help="interleaved passes over a chunk of ops per round, --runs runs each (default 15); "
        "0: time one op after another until its repeat medians agree",
    )
    b.add_argument("--runs", type=int, default=10, help="timed runs per pass or repeat (default 10)")
    b.add_argument("--max-repeats", type=int, default=8, help="repeats cap per op and round with --passes 0")
    b.add_argument("--cpu", type=int, help="core to pin the timing worker to (default: the least busy one)")
    b.add_argument(
        "--clock",
        choices=("thread", "wall"),
        help="thread: CPU time of the timing thread (default with 1 thread; robust on a shared machine); "
        "wall: elapsed time (always with more threads)",
    )
    b.add_argument("--out", help="table path (default: latency_tables/DEVICE.json); checked before timing starts")
    b.add_argument("--note", help="a remark stored in the table (e.g. how quiet the machine was)")
    b.add_argument(
        "--add",
        action="store_true",
        help="keep the ops of the existing table (same runtime, protocol, host) and time only the new ones",
    )
    _add_busy(b)
    b.add_argument("--json", action="store_true", help="print one JSON document")
    b.set_defaults(func=run_build)

    pr = sub.add_parser("predict", help="predicted latency of a zoo model, an architecture file or a run")
    pr.add_argument("source", metavar="MODEL", help="zoo name, architecture JSON, runs/<name> or NetAdapt output")
    pr.add_argument("--width", type=float, help="width multiplier of a zoo model")
    pr.add_argument("--resolution", type=int, help="input resolution of a zoo model (default: its own)")
    pr.add_argument("--device", required=True, help="cpu, pixel (pixel1), a device with a table, or a table path")
    pr.add_argument("--runtime", help="require a table of this runtime label (e.g. onnxruntime-cpu-1thread)")
    pr.add_argument("--measure-missing", action="store_true", help="time ops the table lacks here and add them")
    _add_busy(pr)
    pr.add_argument("--json", action="store_true", help="print one JSON document")
    pr.set_defaults(func=run_predict)

    v = sub.add_parser(
        "validate",
        help="measure networks end to end here and compare with the table (changes it only with --save-correction)",
    )
    v.add_argument("--device", required=True, help="a device with a measured table, or a table path")
    v.add_argument("--samples", type=int, default=50, help="random networks of the space (default 50)")
    v.add_argument("--space", default=DEFAULT_SPACE, help=f"space to sample (default {DEFAULT_SPACE})")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--rounds", type=int, default=3, help="separate worker processes (default 3)")
    v.add_argument("--passes", type=int, default=30, help="interleaved passes over all networks per round (default 30)")
    v.add_argument("--no-zoo", action="store_true", help="leave out the zoo models the table covers")
    v.add_argument(
        "--calibration",
        type=float,
        default=0.4,
        help="share of the random networks that fits the scale+offset correction (default 0.4)",
    )
    v.add_argument("--no-correction", action="store_true", help="report the plain sum on all networks")
    v.add_argument(
        "--save-correction",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="write the fitted correction into the named table, so predictions use it (default: report only); "
        "refused when fitted under load or with a scale outside 0.7-1.4",
    )
    v.add_argument("--cpu", type=int, help="core to pin the timing worker to")
    v.add_argument("--out", default="runs/latency-validate", help="where the plot and JSON go")
    _add_busy(v)
    v.add_argument("--json", action="store_true", help="print one JSON document")
    v.set_defaults(func=run_validate)

    c = sub.add_parser(
        "check",
        help="time a few networks end to end here and compare with a measured table (what the first use of a "
        "table from another machine does; the result is cached per machine)",
    )
    c.add_argument("--device", required=True, help="a device with a measured table, or a table path")
    c.add_argument("--networks", type=int, default=8, help="random networks to time (default 8, at most 10)")
    c.add_argument("--json", action="store_true", help="print one JSON document")
    c.set_defaults(func=run_check)

    k = sub.add_parser(
        "calibrate",
        help="a calibrated copy of a measured table for this machine: scale and offset fitted on networks timed "
        "here end to end (a user file; the table named is never changed)",
    )
    k.add_argument("--device", required=True, help="a device with a measured table, or a table path")
    k.add_argument("--out", help="the calibrated table (default: $XDG_CACHE_HOME/nas/tables/DEVICE-calibrated.json)")
    k.add_argument("--networks", type=int, default=10, help="random networks to time (default 10, at most 10)")
    _add_busy(k)
    k.add_argument("--json", action="store_true", help="print one JSON document")
    k.set_defaults(func=run_calibrate)

    e = sub.add_parser("export-ops", help="write every op as a standalone ONNX model, with a manifest")
    _add_source(e)
    e.add_argument("--out", required=True, help="directory for ops/*.onnx and manifest.json")
    e.add_argument("--json", action="store_true", help="print one JSON document")
    e.set_defaults(func=run_export_ops)

    i = sub.add_parser("import", help="turn a CSV of op timings made elsewhere into a measured table")
    i.add_argument("results", metavar="RESULTS.csv")
    i.add_argument("--device", required=True, help="name of the device the timings come from")
    i.add_argument("--manifest", help="manifest.json of export-ops (default: beside RESULTS.csv)")
    i.add_argument("--runtime", default="onnxruntime-mobile-1thread", help="what timed them (a label)")
    i.add_argument("--out", help="table path (default: latency_tables/DEVICE.json)")
    i.add_argument("--json", action="store_true", help="print one JSON document")
    i.set_defaults(func=run_import)

    s = sub.add_parser("show", help="what a table is: device, kind, runtime, protocol, size")
    s.add_argument("--device", required=True)
    s.add_argument("--json", action="store_true", help="print one JSON document")
    s.set_defaults(func=run_show)


def _add_busy(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--allow-busy",
        action="store_true",
        help="time even when other processes use much of the CPU (the result is marked as timed under load)",
    )


def _add_source(p: argparse.ArgumentParser) -> None:
    src = p.add_mutually_exclusive_group()
    src.add_argument("--space", help=f"a search space name or YAML (default {DEFAULT_SPACE})")
    src.add_argument("--zoo", action="store_true", help="every variant of the model zoo")
    src.add_argument("--arch", metavar="FILE", help="one architecture JSON file")
    p.add_argument("--resolution", type=int, help="input resolution (default 224, or the file's)")


def _items(args: argparse.Namespace) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    from nas.latency.items import source_items

    return source_items(space=args.space, zoo=args.zoo, arch=args.arch, resolution=args.resolution)


def _progress() -> bool:
    return sys.stderr.isatty()


def run_build(args: argparse.Namespace) -> int:
    from nas.latency.build import build_table, buildable_device
    from nas.latency.files import check_out_path
    from nas.latency.measure import Protocol
    from nas.latency.table import device_table_path

    device = buildable_device(args.device)
    protocol = Protocol(
        runtime=args.runtime,
        threads=args.threads,
        rounds=args.rounds,
        runs=args.runs,
        max_repeats=args.max_repeats,
        clock=args.clock or "",
        passes=args.passes,
    )
    out = check_out_path(Path(args.out) if args.out else device_table_path(device))
    items, source = _items(args)
    start = time.monotonic()
    table, summary = build_table(
        device=device,
        items=items,
        out=out,
        protocol=protocol,
        source=source,
        cpu=args.cpu,
        note=args.note,
        add=args.add,
        progress=_progress() and not args.json,
        allow_busy=args.allow_busy,
    )
    summary["device"] = device
    summary["runtime"] = table.runtime
    summary["kind"] = table.kind
    summary["resolutions"] = table.resolutions
    summary["wall_s"] = round(time.monotonic() - start, 1)
    if args.json:
        print_json(summary)
    else:
        load = summary["load"]
        print(
            f"{out}: {device} {table.runtime} (measured), {len(table.ops)} ops + {len(table.fixed)} fixed; "
            f"timed {summary['timed']} now, reused {summary['reused']}; wall {summary['wall_s']:.0f} s "
            f"({summary['total_wall_s']:.0f} s over all resumed runs); other processes used "
            f"{load['other_cpu_share']:.0%} of the CPU meanwhile"
            + (" — TIMED UNDER LOAD (--allow-busy)" if load["timed_under_load"] else "")
        )
    return 0


def _load(device: str, runtime: str | None = None, machine_check: bool = True):  # -> LatencyTable
    from nas.latency.table import load_table

    return load_table(device, runtime=runtime, machine_check=machine_check)


def _kind_note(table) -> str:
    return " — ESTIMATED (cost model, not measured)" if table.kind == "estimated" else " — measured"


def run_predict(args: argparse.Namespace) -> int:
    from nas.latency.table import predict
    from nas.sources import resolve

    arch, _ = resolve(args.source, width=args.width, resolution=args.resolution)
    table = _load(args.device, args.runtime)
    measured_now = 0
    if args.measure_missing:
        from nas.latency.build import measure_missing

        measured_now = measure_missing(arch, table, progress=_progress(), allow_busy=args.allow_busy)
    pred = predict(arch, table)
    if args.json:
        print_json(
            {
                **pred.to_dict(),
                "name": arch.name,
                "resolution": arch.resolution,
                "table": table.where,
                "measured_now": measured_now,
                "corrected": table.correction is not None,
                "calibrated": table.calibration is not None,
            }
        )
        return 0
    print(
        f"{arch.name or args.source} at {arch.resolution}: {pred.latency_ms:.2f} ms on {table.device} "
        f"({table.runtime}){_kind_note(table)}"
    )
    for name in ("correction", "calibration"):
        c = getattr(table, name)
        if c:
            print(f"  sum of ops {pred.raw_ms:.2f} ms; {name} ×{c['scale']:.4f} + {c['offset_ms']:.3f} ms")
    for block in pred.blocks:
        print(f"  {block.path:18s} {block.ms:8.3f} ms  {block.key}")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from nas.latency.validate import validate

    table = _load(args.device, machine_check=False)
    result = validate(
        table,
        space=args.space,
        samples=args.samples,
        seed=args.seed,
        with_zoo=not args.no_zoo,
        rounds=args.rounds,
        passes=args.passes,
        calibration=args.calibration,
        correct=not args.no_correction,
        save_correction=args.save_correction,
        out_dir=Path(args.out),
        cpu=args.cpu,
        progress=_progress() and not args.json,
        allow_busy=args.allow_busy,
    )
    if args.json:
        print_json(result)
        return 0
    load = result["load"]
    print(
        f"validate {table.device} ({table.runtime}, {table.kind}) at {result['resolution']}: "
        f"{result['random_networks']} random {result['space']} networks + {len(result['zoo_networks'])} zoo, "
        f"{result['rounds']} rounds, wall {result['wall_s']:.0f} s; other processes used "
        f"{load['other_cpu_share']:.0%} of the CPU" + (" — TIMED UNDER LOAD" if load["timed_under_load"] else "")
    )
    for name in ("raw", "as_predicted", "raw_holdout", "corrected_holdout"):
        if name in result:
            m = result[name]
            print(
                f"  {name:18s} n={m['samples']:3d}  MAPE {m['mape']:.1%}  median APE {m['median_ape']:.1%}  "
                f"±5% {m['within_5pct']:.0%}  ±10% {m['within_10pct']:.0%}  τ {m['kendall_tau']:.3f}  "
                f"bias {m['bias']:+.1%}"
            )
    if "correction" in result:
        c = result["correction"]
        print(f"  correction fitted: ×{c['scale']:.4f} + {c['offset_ms']:.3f} ms (on {c['fitted_on']} networks)")
    if "correction_saved" in result:
        saved = result["correction_saved"]
        before = saved["before"]
        was = f"×{before['scale']:.4f} + {before['offset_ms']:.3f} ms" if before else "none"
        print(f"  changed {saved['path']}: correction {was} → ×{c['scale']:.4f} + {c['offset_ms']:.3f} ms")
    else:
        print(f"  {table.where} unchanged (--save-correction writes the correction into it)")
    print("  worst: " + "; ".join(f"{w['name']} {w['error']:+.1%}" for w in result["worst"]))
    print(f"  plot: {result.get('plot')}")
    return 0


def run_check(args: argparse.Namespace) -> int:
    from nas.latency.machine import advice, check_result

    table = _load(args.device, machine_check=False)
    result = check_result(table, networks=args.networks)
    if args.json:
        print_json(result)
        return 0
    verdict = "OFF" if result["off"] else "fine"
    print(
        f"{table.where} on this machine: {result['networks']} networks run ×{result['median_ratio']:.3f} the "
        f"predicted time; MAPE {result['mape']:.1%}, ±10% {result['within_10pct']:.0%}, "
        f"τ {result['kendall_tau']:.3f} — {verdict}; other processes used "
        f"{result['load']['other_cpu_share']:.0%} of the CPU"
    )
    if result["off"]:
        print(f"  {advice(table)}")
    return 0


def run_calibrate(args: argparse.Namespace) -> int:
    from nas.latency.machine import calibrate

    table = _load(args.device, machine_check=False)
    calibrated, out = calibrate(
        table, out=Path(args.out) if args.out else None, networks=args.networks, allow_busy=args.allow_busy
    )
    cal = calibrated.calibration
    assert cal is not None
    if args.json:
        print_json({"table": str(out), "calibration": cal})
        return 0
    print(
        f"{out}: {table.where} calibrated for this machine: ×{cal['scale']:.4f} + {cal['offset_ms']:.3f} ms "
        f"({cal['method']}, {cal['networks']} networks; fitted MAPE {cal['mape_after_fit']:.1%}, "
        f"τ {cal['kendall_tau']:.3f}); use it with --device {out}"
    )
    return 0


def run_export_ops(args: argparse.Namespace) -> int:
    from nas.latency.exchange import export_ops

    items, source = _items(args)
    manifest = export_ops(items, Path(args.out), source, progress=_progress() and not args.json)
    if args.json:
        print_json({"manifest": str(manifest), "ops": len(items), "source": source})
    else:
        print(f"wrote {len(items)} ops as ONNX to {args.out}/ops, manifest {manifest}")
    return 0


def run_import(args: argparse.Namespace) -> int:
    from nas.latency.exchange import import_results
    from nas.latency.files import check_out_path
    from nas.latency.table import device_name, device_table_path

    device = device_name(args.device)
    out = check_out_path(Path(args.out) if args.out else device_table_path(device))
    results = Path(args.results)
    manifest = Path(args.manifest) if args.manifest else results.parent / "manifest.json"
    table = import_results(results, manifest, device=device, runtime=args.runtime)
    table.save(out)
    if args.json:
        print_json(
            {
                "table": str(out),
                "device": device,
                "kind": table.kind,
                "runtime": table.runtime,
                "ops": len(table.ops),
                "fixed": len(table.fixed),
                "resolutions": table.resolutions,
            }
        )
    else:
        print(f"{out}: {device} {table.runtime} (measured, imported), {len(table.ops)} ops + {len(table.fixed)} fixed")
    return 0


def run_show(args: argparse.Namespace) -> int:
    from nas.latency.machine import fingerprint, table_fingerprint

    table = _load(args.device, machine_check=False)
    doc = {
        "table": table.where,
        "device": table.device,
        "kind": table.kind,
        "runtime": table.runtime,
        "resolutions": table.resolutions,
        "ops": len(table.ops),
        "fixed": len(table.fixed),
        "created": table.meta.get("created"),
        "host": table.meta.get("host"),
        "protocol": table.meta.get("protocol"),
        "correction": table.correction,
        "calibration": table.calibration,
        "load": table.meta.get("load"),
        "note": table.meta.get("note"),
    }
    if table.engine:
        theirs = table_fingerprint(table)
        doc["this_machine"] = theirs == fingerprint(table.engine) if theirs else None
    if table.model:
        doc["model"] = {k: table.model[k] for k in ("coef", "era", "era_factors", "fit_mape") if k in table.model}
        doc["model"]["cv_pooled_mape"] = table.model["cross_validation"]["pooled_mape"]
        doc["model"]["mnasnet_grid_mape"] = (table.model.get("mnasnet_grid") or {}).get("mape")
    if args.json:
        print_json(doc)
        return 0
    print(f"{table.where}: {table.device} {table.runtime}{_kind_note(table)}")
    for k, v in doc.items():
        if k not in ("table", "device", "runtime") and v is not None:
            print(f"  {k}: {v}")
    return 0
