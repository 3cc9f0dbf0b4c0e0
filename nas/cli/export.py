"""`nas export SOURCE --format F --out DIR`: write a network for other tools; lists the files written."""

from __future__ import annotations

import argparse
import sys

from nas import export as exporter
from nas.cli import print_json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "export",
        help="export an architecture (and weights) as json, timm strings, pytorch, torchscript or onnx",
        description="Export SOURCE, a zoo name or an architecture JSON file. torchscript and onnx files are "
        "checked against torch on random input before they are kept; on any error nothing is written.",
    )
    p.add_argument("source", metavar="SOURCE", help="a zoo name or an architecture JSON file")
    p.add_argument("--format", required=True, metavar="FORMAT", help=f"one of {', '.join(exporter.CHOICES)}")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if needed)")
    p.add_argument("--weights", metavar="FILE", help="a state_dict file (torch.save of model.state_dict())")
    p.add_argument("--width", type=float, help="width multiplier (zoo names of scalable families)")
    p.add_argument("--resolution", type=int, help="input resolution (default: the source's own)")
    p.add_argument("--trial", type=int, metavar="N", help="a search run's trial N (SOURCE a run directory)")
    p.add_argument("--pareto", action="store_true", help="a search run's Pareto front (SOURCE a run dir)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    arch, source_weights = exporter.resolve_source(
        args.source, width=args.width, resolution=args.resolution, trial=args.trial, pareto=args.pareto
    )
    weights = args.weights or source_weights
    formats, skipped = exporter.plan(arch, args.format)
    written = exporter.export(arch, args.format, args.out, weights=weights)
    if args.json:
        print_json({
            "name": arch.name,
            "hash": arch.hash,
            "formats": formats,
            "skipped": [{"format": f, "reason": reason} for f, reason in skipped],
            "weights": str(weights) if weights else None,
            "files": [str(p) for p in written],
        })
        return 0
    for fmt, reason in skipped:
        print(f"nas: skipped {fmt}: {reason}", file=sys.stderr)
    if not weights and set(formats) & {"pytorch", "torchscript", "onnx"}:
        print("nas: no --weights: the exported networks are freshly initialised", file=sys.stderr)
    print(f"exported {arch.name or arch.hash} ({', '.join(formats)}) to {args.out}:")
    for path in written:
        print(f"  {path}")
    return 0
