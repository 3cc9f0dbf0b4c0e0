"""`nas export SOURCE --format F --out DIR`: write a network for other tools; lists the files written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from nas import export as exporter
from nas.arch import Arch
from nas.cli import print_json
from nas.errors import NasError
from nas.sources import resolve


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
    p.add_argument("--width", type=float, help="width multiplier (zoo names of scalable families)")
    p.add_argument("--resolution", type=int, help="input resolution (default: the source's own)")
    p.add_argument("--trial", type=int, metavar="N", help="a search run's trial N (SOURCE a run directory)")
    p.add_argument("--pareto", action="store_true", help="a search run's Pareto front (SOURCE a run dir)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.pareto:
        reports = _export_pareto(args)
    else:
        arch, source_weights = resolve(args.source, width=args.width, resolution=args.resolution, trial=args.trial)
        reports = [_export_one(args, arch, args.weights or source_weights, Path(args.out))]
    if args.json:
        print_json(reports if args.pareto else reports[0])
    return 0


def _export_pareto(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every point of a search run's Pareto front, each into a folder of its own under --out."""
    from nas.search.runs import is_run_dir, pareto_archs

    if not is_run_dir(Path(args.source)):
        raise NasError(f"--pareto applies to search run directories, not {args.source!r}")
    if args.trial is not None or args.weights:
        raise NasError("--pareto exports the whole front: give neither --trial nor --weights")
    archs = pareto_archs(args.source)
    if args.resolution:
        archs = [arch.replace(resolution=args.resolution) for arch in archs]
    return [_export_one(args, arch, None, Path(args.out) / arch.name) for arch in archs]


def _export_one(args: argparse.Namespace, arch: Arch, weights: str | Path | None, out: Path) -> dict[str, Any]:
    formats, skipped = exporter.plan(arch, args.format)
    written = exporter.export(arch, args.format, out, weights=weights)
    if not args.json:
        for fmt, reason in skipped:
            print(f"nas: skipped {fmt}: {reason}", file=sys.stderr)
        if not weights and set(formats) & {"pytorch", "torchscript", "onnx"}:
            print("nas: no --weights: the exported networks are freshly initialised", file=sys.stderr)
        print(f"exported {arch.name or arch.hash} ({', '.join(formats)}) to {out}:")
        for path in written:
            print(f"  {path}")
    return {
        "name": arch.name,
        "hash": arch.hash,
        "formats": formats,
        "skipped": [{"format": f, "reason": reason} for f, reason in skipped],
        "weights": str(weights) if weights else None,
        "files": [str(p) for p in written],
    }
