"""A user's own model: a torch.fx trace turned into a channel-dependency graph, adapted like a spec.

`trace(module, input_shape)` follows every tensor's channels through the traced graph (a networkx DiGraph of
the fx nodes) and gives each one a *layout*: the channel groups it is made of, in order. A conv or linear layer
starts a new group; BatchNorm, activations, pooling, dropout, flatten of a 1×1 map and depthwise convs pass their
input's layout on; an element-wise add or multiply of two tensors ties their groups (residual adds, the SE gate
times its input); a concatenation along channels joins layouts. Whatever else a tensor meets (an unknown op, a
reshape that mixes channels with space, the model's output, its input) fixes its groups: they are never pruned.

The groups that remain, each with at least one producing conv/linear, are the units. `prune_module` removes
channels from a copy of the module (filters of the producers, the slices of every depthwise conv, BN and the
next layer's inputs), `module_latency` prices each conv and linear layer from a latency table as the equivalent
`conv` block of the spec, and `TracedNet` is what NetAdapt's one loop (nas.netadapt.core) adapts.

Limits: element-wise ops, pooling and SE's pooling are not priced (a table holds blocks, not them); a module
called twice, grouped convs other than depthwise, and convs with groups fix their channels. A model traced here
is returned as a pruned module; when it is a `nas.model.Net`, use the spec route (it yields a spec as well).
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import networkx as nx
import torch
import torch.nn.functional as F
from torch import fx, nn
from torch.fx.passes.shape_prop import ShapeProp

from nas.arch import Conv, Shape
from nas.errors import NasError
from nas.io import atomic_write, import_file, write_json
from nas.netadapt.pricing import price
from nas.netadapt.pruning import check_keep, top_channels
from nas.netadapt.units import DIVISOR, OUT, Unit

Layout = tuple[tuple[int, int], ...]  # (group id, width) segments along the channel dimension

ACTIVATIONS: dict[type, str] = {nn.ReLU: "relu", nn.ReLU6: "relu6", nn.Hardswish: "hswish", nn.SiLU: "swish"}
PASS_MODULES = (
    nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid, nn.SiLU, nn.GELU, nn.Tanh,
    nn.Identity, nn.Dropout, nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Flatten,
)  # fmt: skip
PASS_FUNCTIONS = {
    F.relu, F.relu6, F.hardswish, F.hardsigmoid, F.sigmoid, F.silu, F.gelu, F.dropout, F.adaptive_avg_pool2d,
    F.avg_pool2d, F.max_pool2d, torch.relu, torch.sigmoid, torch.tanh, torch.flatten, torch.mean,
}  # fmt: skip
PASS_METHODS = {
    "relu",
    "sigmoid",
    "tanh",
    "flatten",
    "view",
    "reshape",
    "mean",
    "contiguous",
    "clone",
    "relu_",
}
ELEMENTWISE_FUNCTIONS = {
    operator.add,
    operator.sub,
    operator.mul,
    operator.truediv,
    torch.add,
    torch.sub,
    torch.mul,
}
ELEMENTWISE_METHODS = {"add", "sub", "mul", "div", "add_", "mul_"}
NON_TENSOR_METHODS = {"size", "dim"}


@dataclass
class _Use:
    """How a layer reads or writes channels: role "out" (producer rows), "in" (consumer columns), "dw"
    (depthwise conv: rows and groups), "bn"."""

    module: str
    role: str
    layout: Layout


@dataclass
class _Op:
    """A conv or linear layer as the latency table sees it: the equivalent spec `conv` block on its input."""

    module: str
    in_layout: Layout
    out_layout: Layout
    h: int
    w: int
    k: int
    s: int
    pad: int
    depthwise: bool
    bias: bool
    bn: bool
    act: str


@dataclass
class ChannelGraph:
    """The channel-dependency graph of a traced module (see the module docstring)."""

    graph: nx.DiGraph
    widths: dict[int, int]
    parent: dict[int, int]
    fixed: set[int]
    producers: dict[int, list[str]]
    uses: list[_Use]
    ops: list[_Op]
    input_shape: tuple[int, ...]
    units: list[Unit] = field(default_factory=list)

    def root(self, gid: int) -> int:
        while self.parent[gid] != gid:
            self.parent[gid] = self.parent[self.parent[gid]]
            gid = self.parent[gid]
        return gid

    def unit_of(self, gid: int) -> Unit | None:
        root = self.root(gid)
        for unit in self.units:
            if unit.index == root:
                return unit
        return None

    def width(self, layout: Layout, overrides: dict[int, int] | None = None) -> int:
        overrides = overrides or {}
        return sum(overrides.get(self.root(g), w) for g, w in layout)

    def indices(self, layout: Layout, keep: dict[int, torch.Tensor]) -> torch.Tensor | None:
        """Kept positions along a tensor of this layout (None: all)."""
        if not any(self.root(g) in keep for g, _ in layout):
            return None
        parts, offset = [], 0
        for g, w in layout:
            idx = keep.get(self.root(g))
            parts.append((idx if idx is not None else torch.arange(w)) + offset)
            offset += w
        return torch.cat(parts)


# ---------------------------------------------------------------------------------------------- tracing


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    meta = node.meta.get("tensor_meta")
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def trace(module: nn.Module, input_shape: tuple[int, ...] = (1, 3, 224, 224)) -> ChannelGraph:
    """Trace `module` (torch.fx) on an input of `input_shape` and group its channels (see the module docstring)."""
    try:
        gm = fx.symbolic_trace(module)
    except Exception as err:  # fx raises many kinds for code it cannot follow
        raise NasError(f"cannot trace the model with torch.fx: {str(err).splitlines()[0]}") from None
    was_training = module.training
    gm.eval()
    with torch.no_grad():
        ShapeProp(gm).propagate(torch.zeros(input_shape))
    module.train(was_training)
    modules = dict(gm.named_modules())

    widths: dict[int, int] = {}
    parent: dict[int, int] = {}
    fixed: set[int] = set()
    producers: dict[int, list[str]] = {}
    uses: list[_Use] = []
    ops: list[_Op] = []
    layouts: dict[fx.Node, Layout | None] = {}
    calls: dict[str, int] = {}
    g = nx.DiGraph()

    def new_group(width: int, producer: str | None = None, is_fixed: bool = False) -> Layout:
        gid = len(widths)
        widths[gid] = width
        parent[gid] = gid
        producers[gid] = [producer] if producer else []
        if is_fixed:
            fixed.add(gid)
        return ((gid, width),)

    def root(gid: int) -> int:
        while parent[gid] != gid:
            gid = parent[gid]
        return gid

    def union(a: int, b: int) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[rb] = ra
            producers[ra] += producers[rb]
            if rb in fixed:
                fixed.add(ra)

    def fix(layout: Layout | None) -> None:
        for gid, _ in layout or ():
            fixed.add(root(gid))

    def tensor_args(node: fx.Node) -> list[fx.Node]:
        return [a for a in node.all_input_nodes if layouts.get(a) is not None]

    def fresh(node: fx.Node, is_fixed: bool = True) -> Layout | None:
        shape = _shape(node)
        if shape is None or len(shape) < 2:
            return None
        return new_group(shape[1], is_fixed=is_fixed)

    for node in gm.graph.nodes:
        g.add_node(node.name, op=node.op, target=str(node.target), shape=_shape(node))
        for a in node.all_input_nodes:
            g.add_edge(a.name, node.name)
        ins = tensor_args(node)
        shape = _shape(node)
        out: Layout | None = None
        if node.op == "placeholder":
            out = fresh(node)
        elif node.op == "output":
            for a in ins:
                fix(layouts[a])
        elif node.op == "get_attr":
            out = fresh(node)
        elif node.op == "call_module":
            mod = modules[str(node.target)]
            name = str(node.target)
            calls[name] = calls.get(name, 0) + 1
            src = layouts.get(ins[0]) if ins else None
            if isinstance(mod, nn.Conv2d | nn.Linear | nn.BatchNorm2d) and calls[name] > 1:
                raise NasError(f"netadapt: module {name} is called more than once; it cannot be pruned")
            if isinstance(mod, nn.Conv2d) and src is not None:
                in_shape = _shape(ins[0])
                assert in_shape is not None and shape is not None
                depthwise = mod.groups > 1 and mod.groups == mod.in_channels == mod.out_channels
                if depthwise:
                    out = src
                    uses.append(_Use(name, "dw", src))
                elif mod.groups == 1:
                    uses.append(_Use(name, "in", src))
                    out = new_group(mod.out_channels, producer=name)
                    uses.append(_Use(name, "out", out))
                else:
                    fix(src)
                    out = new_group(mod.out_channels, is_fixed=True)
                ops.append(_conv_op(name, mod, src, out, in_shape, node, modules))
            elif isinstance(mod, nn.Linear) and src is not None:
                in_shape = _shape(ins[0])
                if in_shape is None or len(in_shape) != 2:
                    fix(src)
                    out = fresh(node)
                else:
                    uses.append(_Use(name, "in", src))
                    out = new_group(mod.out_features, producer=name)
                    uses.append(_Use(name, "out", out))
                    ops.append(_Op(name, src, out, 1, 1, 1, 1, 0, False, mod.bias is not None, False, "none"))
            elif isinstance(mod, PASS_MODULES) and src is not None:
                out = _passthrough(src, ins[0], shape, fix, fresh, node)
                if isinstance(mod, nn.BatchNorm2d) and out is src:
                    uses.append(_Use(name, "bn", src))
            else:
                for a in ins:
                    fix(layouts[a])
                out = fresh(node)
        elif node.op in ("call_function", "call_method"):
            target = node.target
            if node.op == "call_method" and target in NON_TENSOR_METHODS:
                out = None
            elif target in ELEMENTWISE_FUNCTIONS or target in ELEMENTWISE_METHODS:
                out = _elementwise([layouts[a] for a in ins], [_shape(a) for a in ins], shape, union, fix, fresh, node)
            elif target in (torch.cat, torch.concat):
                dim = node.kwargs.get("dim", node.args[1] if len(node.args) > 1 else 0)
                parts = [layouts.get(a) for a in node.args[0]] if isinstance(node.args[0], list | tuple) else []
                if dim in (1, -3) and shape is not None and len(shape) == 4 and parts and all(parts):
                    out = tuple(seg for part in parts for seg in part)  # type: ignore[union-attr]
                else:
                    for a in ins:
                        fix(layouts[a])
                    out = fresh(node)
            elif (target in PASS_FUNCTIONS or target in PASS_METHODS) and ins:
                out = _passthrough(layouts[ins[0]], ins[0], shape, fix, fresh, node)
                for a in ins[1:]:
                    fix(layouts[a])
            else:
                for a in ins:
                    fix(layouts[a])
                out = fresh(node)
        layouts[node] = out
        if out is not None:
            g.nodes[node.name]["layout"] = [(root(gid), w) for gid, w in out]

    graph = ChannelGraph(g, widths, parent, fixed, producers, uses, ops, tuple(input_shape))
    roots = sorted({graph.root(gid) for gid in widths})
    for r in roots:
        if r in graph.fixed or not graph.producers[r]:
            continue
        graph.units.append(Unit(OUT, r, graph.producers[r][0], (), widths[r]))
    return graph


def _passthrough(src: Layout | None, arg: fx.Node, shape: tuple[int, ...] | None, fix, fresh, node) -> Layout | None:
    """A channel-preserving op (activation, BN, pooling, mean over space, flatten of a 1×1 map) keeps its
    input's layout when dimension 1 still holds the same channels; otherwise the channels are fixed."""
    in_shape = _shape(arg)
    if src is not None and shape is not None and in_shape is not None and len(shape) >= 2 and shape[1] == in_shape[1]:
        return src
    fix(src)
    return fresh(node) if shape is not None and len(shape) >= 2 else None


def _elementwise(srcs, shapes, shape, union, fix, fresh, node) -> Layout | None:
    """Two tensors combined element by element: their channels are tied (a residual add, an SE gate)."""
    tensors = [(s, sh) for s, sh in zip(srcs, shapes, strict=True) if s is not None and sh is not None]
    if not tensors:
        return None
    channels = {sh[1] for _, sh in tensors if len(sh) >= 2}
    base = max(tensors, key=lambda t: math.prod(t[1]))[0]
    if shape is None or len(channels) != 1 or (len(shape) >= 2 and shape[1] not in channels):
        for s, _ in tensors:
            fix(s)
        return fresh(node)
    for s, _ in tensors:
        if s is base:
            continue
        if [w for _, w in s] != [w for _, w in base]:
            fix(s)
            fix(base)
            continue
        for (a, _), (b, _) in zip(base, s, strict=True):
            union(a, b)
    return base


def _conv_op(name, mod: nn.Conv2d, src, out, in_shape, node: fx.Node, modules) -> _Op:
    """The conv with the BN and activation that directly follow it, as the table's `conv` block."""
    bn, act = False, "none"
    nxt = list(node.users)
    if len(nxt) == 1 and nxt[0].op == "call_module" and isinstance(modules[str(nxt[0].target)], nn.BatchNorm2d):
        bn = True
        nxt = list(nxt[0].users)
    if len(nxt) == 1 and nxt[0].op == "call_module":
        act = ACTIVATIONS.get(type(modules[str(nxt[0].target)]), "none")
    pad = mod.padding[0] if isinstance(mod.padding, tuple) else 0
    depthwise = mod.groups > 1 and mod.groups == mod.in_channels
    return _Op(
        name, src, out, in_shape[2], in_shape[3], mod.kernel_size[0], mod.stride[0], int(pad), depthwise,
        mod.bias is not None, bn, act,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- latency


def module_ops(graph: ChannelGraph, overrides: dict[int, int] | None = None) -> tuple[tuple[int, int], list]:
    """The traced module as a table sees it, with some groups at other widths: (input channels, resolution) and
    each conv or linear layer as (name, input shape, the equivalent spec `conv` block)."""
    ops = []
    for op in graph.ops:
        cin = graph.width(op.in_layout, overrides)
        cout = graph.width(op.out_layout, overrides)
        block = Conv(
            out=cout, k=op.k, s=op.s, pad=op.pad, groups=cin if op.depthwise else 1, bn=op.bn, bias=op.bias,
            act=op.act,
        )  # fmt: skip
        ops.append((op.module, Shape(cin, op.h, op.w), block))
    return (graph.input_shape[1], graph.input_shape[2]), ops


def module_latency(graph: ChannelGraph, table: Any, overrides: dict[int, int] | None = None) -> float:
    """Predicted latency of the traced module with some groups at other widths (`nas.netadapt.pricing.price`):
    each conv and linear layer priced as the equivalent spec `conv` block, plus the table's per-inference cost
    and correction. Ops an estimated table lacks come from its cost model; a measured table reports them."""
    return price(table, module_ops(graph, overrides))


# ---------------------------------------------------------------------------------------------- pruning


def _get(module: nn.Module, name: str) -> nn.Module:
    return module.get_submodule(name)


def channel_scores(module: nn.Module, graph: ChannelGraph, unit: Unit) -> torch.Tensor:
    """L2 norm of each channel's filter, summed over every layer that writes the group."""
    with torch.no_grad():
        total = torch.zeros(unit.width)
        for use in graph.uses:
            if use.role == "out" and graph.root(use.layout[0][0]) == unit.index:
                total += _get(module, use.module).weight.detach().flatten(1).norm(dim=1).float().cpu()
        return total


def prune_module(
    module: nn.Module, graph: ChannelGraph, keep: dict[Unit, torch.Tensor]
) -> tuple[nn.Module, ChannelGraph]:
    """A copy of `module` keeping, for each unit, the listed channels; and the copy's graph."""
    by_root = {unit.index: check_keep(unit, idx) for unit, idx in keep.items()}
    new = copy.deepcopy(module)
    with torch.no_grad():
        for use in graph.uses:
            idx = graph.indices(use.layout, by_root)
            if idx is None:
                continue
            mod = _get(new, use.module)
            if use.role == "out":
                mod.weight = nn.Parameter(mod.weight.index_select(0, idx).clone())
                if mod.bias is not None:
                    mod.bias = nn.Parameter(mod.bias.index_select(0, idx).clone())
                if isinstance(mod, nn.Conv2d):
                    mod.out_channels = len(idx)
                else:
                    mod.out_features = len(idx)
            elif use.role == "in":
                mod.weight = nn.Parameter(mod.weight.index_select(1, idx).clone())
                if isinstance(mod, nn.Conv2d):
                    mod.in_channels = len(idx)
                else:
                    mod.in_features = len(idx)
            elif use.role == "dw":
                mod.weight = nn.Parameter(mod.weight.index_select(0, idx).clone())
                if mod.bias is not None:
                    mod.bias = nn.Parameter(mod.bias.index_select(0, idx).clone())
                mod.in_channels = mod.out_channels = mod.groups = len(idx)
            elif use.role == "bn":
                mod.num_features = len(idx)
                for pname in ("weight", "bias"):
                    p = getattr(mod, pname)
                    if p is not None:
                        setattr(mod, pname, nn.Parameter(p.index_select(0, idx).clone()))
                for bname in ("running_mean", "running_var"):
                    b = getattr(mod, bname)
                    if b is not None:
                        setattr(mod, bname, b.index_select(0, idx).clone())
    return new, trace(new, graph.input_shape)


# ---------------------------------------------------------------------------------------------- loading


def load_factory(spec: str) -> Callable[[], nn.Module]:
    """`path/to/file.py:factory` → the factory function (the file is imported: it is the user's own code)."""
    path_text, _, name = spec.rpartition(":")
    path = Path(path_text)
    if not path_text.endswith(".py") or not name:
        raise NasError(f"a user model is given as path/to/file.py:factory, got {spec!r}")
    if not path.is_file():
        raise NasError(f"model file {path} does not exist")
    try:
        py = import_file(path, "nas_user_model")
    except NasError:
        raise
    except Exception as err:
        raise NasError(
            f"importing {path} failed: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
        ) from None
    factory = getattr(py, name, None)
    if not callable(factory):
        raise NasError(f"{path} has no function {name!r}")
    return factory


def is_factory_spec(text: str) -> bool:
    path, sep, name = text.rpartition(":")
    return bool(sep) and path.endswith(".py") and name.isidentifier()


# ---------------------------------------------------------------------------------------------- the adaptable


class TracedNet:
    """A user's module and its channel graph, as NetAdapt's loop sees it (`nas.netadapt.subject.Adaptable`).
    `kept` holds, per unit, the kept channels in the ORIGINAL module's numbering (composed over iterations);
    `origin` is the original structure, from which a checkpoint is rebuilt."""

    def __init__(
        self,
        module: nn.Module,
        graph: ChannelGraph,
        *,
        latency: Callable[[ChannelGraph, dict[int, int] | None], float],
        kept: dict[str, torch.Tensor] | None = None,
        origin: nn.Module | None = None,
    ):
        self.net = module
        self.graph = graph
        self.price = latency
        self.kept = kept if kept is not None else {u.name: torch.arange(u.width) for u in graph.units}
        self.origin = origin if origin is not None else copy.deepcopy(module)
        self.name = type(module).__name__

    @property
    def units(self) -> list[Unit]:
        return self.graph.units

    @property
    def identity(self) -> str:
        text = json.dumps([list(self.graph.input_shape), [(u.name, u.width) for u in self.units],
                           [(op.module, op.k, op.s) for op in self.graph.ops]])  # fmt: skip
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    @property
    def params(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    def latency(self, widths: Mapping[Unit, int] | None = None, *, estimate: bool = False) -> float | None:
        return self.price(self.graph, {u.index: w for u, w in widths.items()} if widths else None)

    def measure(self, assignments: list[dict[Unit, int]]) -> None:
        pass  # a traced module is priced from the table as it is (docs/netadapt.md)

    def floor_widths(self) -> dict[Unit, int]:
        return {u: DIVISOR for u in self.units if u.width > DIVISOR}

    def keep(self, unit: Unit, width: int) -> torch.Tensor:
        return top_channels(channel_scores(self.net, self.graph, unit), unit, width)

    def prune(self, keep: dict[Unit, torch.Tensor]) -> TracedNet:
        module, graph = prune_module(self.net, self.graph, keep)
        kept = dict(self.kept)
        for unit, idx in keep.items():
            kept[unit.name] = kept[unit.name][check_keep(unit, idx)]
        return TracedNet(module, graph, latency=self.price, kept=kept, origin=self.origin)

    def widths(self) -> dict[str, int]:
        return {u.name: u.width for u in self.units}

    def kept_lists(self) -> dict[str, list[int]]:
        return {k: v.tolist() for k, v in self.kept.items()}

    def checkpoint(self) -> dict[str, Any]:
        state = {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()}
        return {"kept": self.kept_lists(), "state_dict": state}

    def restore(self, payload: dict[str, Any]) -> TracedNet:
        kept = {k: torch.tensor(v, dtype=torch.long) for k, v in payload["kept"].items()}
        module = rebuild(copy.deepcopy(self.origin), payload["kept"], self.graph.input_shape)
        module.load_state_dict(payload["state_dict"])
        return TracedNet(module, trace(module, self.graph.input_shape), latency=self.price, kept=kept,
                         origin=self.origin)  # fmt: skip

    def write_result(self, out: Path) -> dict[str, str]:
        state = {k: v.detach().cpu() for k, v in self.net.state_dict().items()}
        atomic_write(out / "weights.pt", lambda tmp: torch.save(state, tmp))
        write_json(out / "channels.json", {"input_shape": list(self.graph.input_shape), "kept": self.kept_lists()})
        return {"weights": str(out / "weights.pt"), "channels": str(out / "channels.json")}


def rebuild(module: nn.Module, kept: dict[str, list[int]], input_shape: tuple[int, ...]) -> nn.Module:
    """Apply a result's kept channels (`TracedNet.kept`, saved as channels.json) to a fresh module from the
    user's factory: the adapted structure, ready for `load_state_dict(weights)`."""
    graph = trace(module, input_shape)
    keep = {}
    for unit in graph.units:
        if unit.name in kept and len(kept[unit.name]) != unit.width:
            keep[unit] = torch.tensor(kept[unit.name])
    unknown = sorted(set(kept) - {u.name for u in graph.units})
    if unknown:
        raise NasError(f"channels.json names layers this model does not have as units: {', '.join(unknown[:3])}")
    return prune_module(module, graph, keep)[0] if keep else module
