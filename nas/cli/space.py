"""`nas space list` and `nas space show NAME`: the shipped search spaces, their decisions and their size."""

from __future__ import annotations

import argparse
import math
from typing import Any

from nas.cli import print_json
from nas.space import DEFAULT_SPACE, DIMS, SearchSpace, load_space, space_names


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("space", help="list the search spaces, or show one: decisions, size, cost range")
    sub = p.add_subparsers(dest="space_command", metavar="ACTION", required=True)

    ls = sub.add_parser("list", help="the shipped search spaces with their sizes")
    ls.add_argument("--json", action="store_true", help="print one JSON document")
    ls.set_defaults(func=run_list)

    show = sub.add_parser("show", help="one space: its decisions and choices, size, skeleton, MACs and params range")
    show.add_argument(
        "name",
        metavar="NAME",
        nargs="?",
        default=DEFAULT_SPACE,
        help=f"a space name ({', '.join(space_names())}) or a YAML file (default {DEFAULT_SPACE})",
    )
    show.add_argument("--resolution", type=int, default=224, help="input resolution for costs and ops (default 224)")
    show.add_argument("--json", action="store_true", help="print one JSON document")
    show.set_defaults(func=run_show)


def _log10(n: int) -> float:
    return round(math.log10(n), 2) if n > 0 else 0.0


def _zoo_costs(name: str, resolution: int) -> dict[str, int] | None:
    """The skeleton's own costs when the zoo has it (for comparison with the nearest arch of the space)."""
    from nas import zoo
    from nas.errors import NasError

    try:
        arch = zoo.get(name, resolution=resolution)
    except (NasError, KeyError):
        return None
    return {"macs": arch.macs, "params": arch.params}


def show_document(space: SearchSpace, resolution: int = 224) -> dict[str, Any]:
    costs = space.cost_range(resolution)
    skeleton_choices = space.skeleton_choices()
    skeleton: dict[str, Any] | None = None
    if space.skeleton_name or skeleton_choices:
        skeleton = {"name": space.skeleton_name or None, "choices": skeleton_choices}
        if skeleton_choices:
            nearest = space.arch(skeleton_choices, resolution)
            skeleton["nearest"] = {"macs": nearest.macs, "params": nearest.params, "arch": nearest.name}
        if space.skeleton_name:
            skeleton["zoo"] = _zoo_costs(space.skeleton_name, resolution)
    stages = []
    for st in space.stages:
        if st.fixed:
            stages.append({"index": st.index, "fixed": [b.to_dict() for b in st.blocks]})
        else:
            stages.append(
                {
                    "index": st.index,
                    "out": st.out,
                    "n": st.n,
                    "stride": st.stride,
                    "choose": "layer" if st.per_layer else "stage",
                    "dims": {d: list(c) for d, c in st.dims},
                }
            )
    return {
        "name": space.name,
        "description": space.description,
        "reference": space.reference,
        "source": space.source,
        "resolution": resolution,
        "decisions": [{"name": d.name, "choices": list(d.choices)} for d in space.decisions],
        "size": space.size,
        "size_log10": _log10(space.size),
        "combinations": space.combinations,
        "stages": stages,
        "skeleton": skeleton,
        "macs": {"min": costs["macs"][0].macs, "max": costs["macs"][1].macs},
        "params": {"min": costs["params"][0].params, "max": costs["params"][1].params},
        "ops": len(space.ops(resolution)),
    }


def run_list(args: argparse.Namespace) -> int:
    rows = []
    for name in space_names():
        space = load_space(name)
        rows.append(
            {
                "name": name,
                "description": space.description,
                "decisions": len(space.decisions),
                "size": space.size,
                "size_log10": _log10(space.size),
            }
        )
    if args.json:
        print_json(rows)
        return 0
    from rich.table import Table

    table = Table(title="search spaces (nas space show NAME)")
    for col in ("name", "decisions", "size", "description"):
        table.add_column(col, justify="right" if col in ("decisions", "size") else "left")
    for r in rows:
        table.add_row(r["name"], str(r["decisions"]), f"10^{r['size_log10']:.1f}", r["description"])
    _console().print(table)
    return 0


def _fmt(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_show(args: argparse.Namespace) -> int:
    space = load_space(args.name)
    doc = show_document(space, args.resolution)
    if args.json:
        print_json(doc)
        return 0
    from rich.table import Table

    console = _console()
    console.print(f"[bold]{space.name}[/bold] — {space.description}  ({space.source})")
    if space.reference:
        console.print(f"reference: {space.reference}")
    shown = [d for d in DIMS if any(not st.fixed and len(st.choices(d)) > 1 for st in space.stages)]
    table = Table(title=f"decisions per stage (searched dimensions; {len(space.decisions)} decisions in all)")
    skeleton = dict(doc["skeleton"]["choices"] or {}) if doc["skeleton"] else {}
    # per-layer decisions are marked in a column of their own: the skeleton's choice for each layer
    layer_marks = skeleton and any(st.per_layer and st.layer_dims() for st in space.stages)
    for col in ("stage", "out", "n", "stride", "decided per", *shown, *(["skeleton layers"] if layer_marks else [])):
        table.add_column(col)
    for st in space.stages:
        if st.fixed:
            fixed = ", ".join(f"{b.type} {b.out}" for b in st.blocks)
            table.add_row(str(st.index), "", "", "", f"fixed: {fixed}", *[""] * (len(shown) + bool(layer_marks)))
            continue
        cells = []
        for d in shown:
            choices = st.choices(d)
            if len(choices) == 1:
                cells.append(f"[dim]{_fmt(choices[0])}[/dim]")
                continue
            mark = skeleton.get(f"stage{st.index}.{d}")
            cells.append(" ".join(f"{_fmt(c)}*" if mark is not None and c == mark else _fmt(c) for c in choices))
        if layer_marks:
            searched = [d for d in st.layer_dims() if len(st.choices(d)) > 1]
            layers = [
                "/".join(_fmt(skeleton[f"stage{st.index}.layer{j}.{d}"]) for d in searched)
                for j in range(st.n)
                if searched and all(f"stage{st.index}.layer{j}.{d}" in skeleton for d in searched)
            ]
            cells.append(" ".join(layers))
        per = "layer" if st.per_layer else "stage"
        table.add_row(str(st.index), str(st.out), str(st.n), str(st.stride), per, *cells)
    console.print(table)
    console.print(
        f"size: {doc['size']:,} distinct architectures (10^{doc['size_log10']}); "
        f"{doc['combinations']:,} choice combinations (10^{_log10(doc['combinations'])})"
    )
    r = args.resolution
    macs, params = doc["macs"], doc["params"]
    console.print(
        f"over the space at {r}×{r} (exact): MACs {macs['min'] / 1e6:.1f}M – {macs['max'] / 1e6:.1f}M, "
        f"params {params['min'] / 1e6:.2f}M – {params['max'] / 1e6:.2f}M; {doc['ops']} distinct ops"
    )
    sk = doc["skeleton"]
    if sk:
        line = f"skeleton: {sk['name'] or '-'}"
        if sk.get("nearest"):
            n = sk["nearest"]
            line += f"; nearest arch of the space (the marked choices) {_costs(n)}"
        if sk.get("zoo"):
            line += f"; the zoo model {_costs(sk['zoo'])}"
        console.print(line)
    else:
        console.print("skeleton: none declared")
    return 0


def _costs(doc: dict[str, Any]) -> str:
    return f"{doc['macs'] / 1e6:.1f}M MACs, {doc['params'] / 1e6:.2f}M params"


def _console() -> Any:
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)
