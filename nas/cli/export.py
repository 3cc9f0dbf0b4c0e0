"""`nas export SOURCE --format F --out DIR`: write a network for other tools; lists the files written."""

from __future__ import annotations

import argparse
import sys

from nas import export as exporter
from nas.arch import MAX_RESOLUTION
from nas.cli import print_json
from nas.zoo import WIDTH_MAX


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export an architecture (and weights) as json, timm strings, pytorch, torchscript or onnx",
        description="Export SOURCE: a zoo name, an architecture JSON file, a search run directory or a NetAdapt "
        "output directory. torchscript and onnx files are checked against torch on random input before they "
        "are kept; on any error nothing is written.",
    )
    p.add_argument(
        "source", metavar="SOURCE", help="zoo name, architecture JSON file, runs/<name>, or NetAdapt output dir"
    )
    p.add_argument("--format", required=True, metavar="FORMAT", help=f"one of {', '.join(exporter.CHOICES)}")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if needed)")
    p.add_argument("--weights", metavar="FILE", help="a state_dict file (torch.save of model.state_dict())")
    p.add_argument(
        "--width", type=float, help=f"width multiplier in (0, {WIDTH_MAX:g}] (zoo names of scalable families)"
    )
    p.add_argument(
        "--resolution", type=int, help=f"input resolution up to {MAX_RESOLUTION} (default: the source's own)"
    )
    p.add_argument("--trial", type=int, metavar="N", help="a search run's trial N (SOURCE a run directory)")
    p.add_argument("--pareto", action="store_true", help="a search run's Pareto front (SOURCE a run dir)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    reports = exporter.export_source(
        args.source,
        args.format,
        args.out,
        weights=args.weights,
        width=args.width,
        resolution=args.resolution,
        trial=args.trial,
        pareto=args.pareto,
    )
    if args.json:
        docs = [report.to_dict() for report in reports]
        print_json(docs if args.pareto else docs[0])
        return 0
    for report in reports:
        for fmt, reason in report.skipped:
            print(f"nas: skipped {fmt}: {reason}", file=sys.stderr)
        if not report.weights and set(report.formats) & {"pytorch", "torchscript", "onnx"}:
            print("nas: no --weights: the exported networks are freshly initialised", file=sys.stderr)
        print(f"exported {report.arch.name or report.arch.hash} ({', '.join(report.formats)}) to {report.out}:")
        for path in report.files:
            print(f"  {path}")
    return 0
