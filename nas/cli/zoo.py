"""`nas zoo list` and `nas zoo show NAME`: the published lightweight nets and their per-block costs."""

from __future__ import annotations

import argparse
from typing import Any

from nas import zoo
from nas.arch import MAX_RESOLUTION, Arch
from nas.cli import print_json


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("zoo", help="list the model zoo, or show one model block by block")
    sub = p.add_subparsers(dest="zoo_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="every zoo variant with its parameters and MACs")
    ls.add_argument("--json", action="store_true", help="print one JSON document")
    ls.set_defaults(func=run_list)

    show = sub.add_parser("show", help="one model block by block: shapes, parameters, MACs")
    show.add_argument("name", metavar="NAME", help="a family (mobilenet_v2) or variant (mobilenet_v2_075)")
    show.add_argument(
        "--width", type=float, help=f"width multiplier in (0, {zoo.WIDTH_MAX:g}], by the family's reference rule "
        "(MBConv families, and those published at several widths)"
    )
    show.add_argument(
        "--resolution", type=int,
        help=f"input resolution, {zoo.RESOLUTION_MIN} to {MAX_RESOLUTION} (default: the model's own)",
    )
    show.add_argument("--num-classes", type=int, default=1000, help="classifier outputs (default 1000)")
    show.add_argument("--json", action="store_true", help="print one JSON document")
    show.set_defaults(func=run_show)


def list_rows() -> list[dict[str, Any]]:
    rows = []
    for variant in zoo.variants():
        arch = zoo.get(variant.name)
        cost = arch.costs()
        ref = variant.reference
        rows.append({
            "name": variant.name,
            "params": cost.params,
            "macs": cost.macs,
            "resolution": arch.resolution,
            "reference": {"model": ref[0], "variant": ref[1]} if ref else None,
        })
    return rows


def show_document(arch: Arch) -> dict[str, Any]:
    """The arch's spec, its totals and one row per block and head layer (what `zoo show --json` prints)."""
    blocks = [
        {
            "index": site.index,
            "path": site.path,
            "type": site.block.type,
            "in": [site.x.c, site.x.h, site.x.w],
            "out": [site.y.c, site.y.h, site.y.w],
            "params": site.cost.params,
            "macs": site.cost.macs,
        }
        for site in arch.sites()
    ]
    head = [{"path": path, "params": cost.params, "macs": cost.macs} for path, cost in arch.head_costs()]
    total = arch.costs()
    return {
        "name": arch.name,
        "hash": arch.hash,
        "params": total.params,
        "macs": total.macs,
        "arch": arch.to_dict(),
        "blocks": blocks,
        "head": head,
    }


def _console() -> Any:
    """A rich console on stdout; wide enough when piped that names and shapes are never cut."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def _m(n: int) -> str:
    return f"{n / 1e6:.3f}M"


def _reference(ref: dict[str, str] | None) -> str:
    """`MobileNetV2 1.0`; a model published in one form has no variant to show (the csv writes "-")."""
    if ref is None:
        return "—"
    return ref["model"] if ref["variant"] == "-" else f"{ref['model']} {ref['variant']}"


def run_list(args: argparse.Namespace) -> int:
    rows = list_rows()
    if args.json:
        print_json(rows)
        return 0
    from rich.table import Table

    table = Table(title=f"nas zoo: {len(rows)} models")
    for col in ("name", "params", "MACs", "resolution", "reference"):
        table.add_column(col, justify="right" if col in ("params", "MACs", "resolution") else "left")
    for row in rows:
        ref = row["reference"]
        table.add_row(
            row["name"], _m(row["params"]), _m(row["macs"]), str(row["resolution"]),
            _reference(ref),
        )
    _console().print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    arch = zoo.get(args.name, width=args.width, resolution=args.resolution, num_classes=args.num_classes)
    doc = show_document(arch)
    if args.json:
        print_json(doc)
        return 0
    from rich.table import Table

    table = Table(title=f"{arch.name} at {arch.resolution}×{arch.resolution}, {arch.num_classes} classes")
    for col in ("#", "path", "type", "in → out", "params", "MACs"):
        table.add_column(col, justify="right" if col in ("#", "params", "MACs") else "left")
    for row in doc["blocks"]:
        shape = "{}×{}×{} → {}×{}×{}".format(*row["in"], *row["out"])
        cost = (f"{row['params']:,}", f"{row['macs']:,}")
        table.add_row(str(row["index"]), row["path"], row["type"], shape, *cost)
    for row in doc["head"]:
        kind = "linear" if "hidden" in row["path"] else f"{arch.head.classifier} classifier"
        table.add_row("", row["path"], kind, "", f"{row['params']:,}", f"{row['macs']:,}")
    table.add_section()
    table.add_row("", "total", "", "", f"{doc['params']:,}", f"{doc['macs']:,}")
    _console().print(table)
    print(f"hash {doc['hash']}  ·  {_m(doc['params'])} params  ·  {_m(doc['macs'])} MACs")
    return 0
