"""Search spaces declared as YAML: a network skeleton plus the decisions a search may make on it.

A space is a fixed stem and head around *stages*. A stage is either a list of fixed blocks, or a searchable
stage: skeleton channels `out`, layer count `n` and `stride`, and per-stage *dimensions*, each a fixed value
or a list of choices:

    op         mbconv | ds | conv | skip, or the name of a preset under `ops:` (which fixes other dimensions)
    kernel     odd kernel size of the depthwise (mbconv, ds) or regular (conv) convolution
    expansion  mbconv only: mid = make_divisible(layer input channels × expansion)
    se         squeeze-excite ratio (mbconv, ds; 0 = none)
    act        activation
    residual   identity residual where the shapes allow one (mbconv, ds)
    groups     mbconv only: groups of both 1×1 convs, with a channel shuffle (FBNet's g2 ops)
    layers     layer count relative to `n` (at least 1 layer must remain)
    width      multiplier of `out`, rounded with `make_divisible`

`choose: stage` (the default; MnasNet's factorized hierarchical space) makes one decision per searched
dimension for the whole stage: every layer of the stage is the same op, the first one strided. `choose: layer`
(FBNet) makes `op`, `kernel`, ... decisions for every layer; `layers` and `width` stay per stage, and such a
stage has a fixed depth (search depth with the `skip` op instead).

`skip` adds no layer where the layer's input and output shapes match; where they do not (a stride or a change
of channels) it is a strided 1×1 conv + BN + activation (with the `block: conv:` fields), as FBNet's reference
code does (its `Identity`).

Every decision always applies: `sample` asks for all of `decisions`, in order. Different choices can give the
same network (a rounded width that equals another, an SE ratio on a plain conv, a residual on a layer whose
shape changes, skips at different positions), so `size` counts distinct architectures exactly, and
`combinations` is the plain product of the choices.

A space file is untrusted input: it is read with `nas.io`'s bounded YAML reader (size and nesting capped, no
aliases), and its numbers are bounded by the limits of `nas.arch` (docs/arch-spec.md, "Limits"), so no file can
make loading it allocate or enumerate without bound.

YAML schema (search_spaces/*.yaml; every field is checked on load, errors name the file, line and field)::

    name: str                      # default: the file's stem
    description: str
    reference: str                 # the papers it follows
    skeleton: str                  # the zoo model the space is built around (shown next to its nearest arch)
    divisor: 8                     # of make_divisible
    in_channels: 3
    stem: [block, ...]             # fixed blocks, as in the nas.arch/1 JSON spec
    ops: {NAME: {op: KIND, DIM: value, ...}}          # op presets (FBNet's k3_e1_g2, MnasNet's mbconv6)
    block: {mbconv|ds|conv: {FIELD: value}}           # block fields the dimensions do not set (se_gate, ...)
    stages:
      - blocks: [block, ...]       # a fixed stage, or:
      - out: 24                    # skeleton output channels
        n: 2                       # skeleton layer count
        stride: 2                  # of the first layer
        choose: stage | layer
        DIM: value | [choices]     # the dimensions above
        skeleton: {DIM: value}     # the skeleton's choices (layers 0 and width 1.0 are implied)
    head: {blocks: [block, ...], hidden: [{out, act, bias}], dropout, classifier, classifier_bias}
"""

from __future__ import annotations

import contextlib
import difflib
import itertools
import math
import numbers
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from nas.arch import (
    ACTIVATIONS,
    GATES,
    MAX_CHANNELS,
    MAX_KERNEL,
    MAX_LAYERS,
    MAX_SPACE_WORK,
    MAX_STAGES,
    MAX_STRIDE,
    Arch,
    Block,
    Dense,
    Head,
    Shape,
    SpecError,
    block_from_dict,
    check_resolution,
)
from nas.errors import NasError
from nas.io import MAX_YAML_BYTES, parse_yaml, read_text
from nas.stages import Row, StageBuilder

# The repository's search_spaces/ (a source checkout or an editable install); a wheel shipping the YAML files
# as package data would hold them in nas/search_spaces/ instead.
_SPACE_DIRS = (
    Path(__file__).resolve().parent.parent / "search_spaces",
    Path(__file__).resolve().parent / "search_spaces",
)
SPACES_DIR = next((d for d in _SPACE_DIRS if d.is_dir()), _SPACE_DIRS[0])
DEFAULT_SPACE = "mobilenetv3"

OP_KINDS = ("mbconv", "ds", "conv", "skip")
# Order of the dimensions, and so of a stage's decisions. `layers` and `width` are always per stage.
DIMS = ("layers", "width", "op", "kernel", "expansion", "se", "act", "residual", "groups")
STAGE_DIMS = ("layers", "width")
DEFAULTS: dict[str, Any] = {
    "layers": 0,
    "width": 1.0,
    "op": "mbconv",
    "kernel": 3,
    "expansion": 6,
    "se": 0.0,
    "act": "relu",
    "residual": True,
    "groups": 1,
}
# Block fields that `block:` may set for every block of a kind (the others come from the dimensions).
EXTRA_FIELDS = {
    "mbconv": {"se_from": ("in", "mid"), "se_gate": GATES, "se_act": ACTIVATIONS, "bias": bool},
    "ds": {"pw_act": bool, "se_from": ("in", "mid"), "se_gate": GATES, "se_act": ACTIVATIONS},
    "conv": {"bn": bool, "bias": bool},
}


@dataclass(frozen=True)
class Decision:
    """One categorical choice: `name` (e.g. `stage2.kernel`, `stage3.layer1.op`) and its options."""

    name: str
    choices: tuple


# ---------------------------------------------------------------------------------------------- YAML + errors


class _Source:
    """A parsed YAML file that can name the line of any field path in its messages."""

    def __init__(self, label: str, text: str):
        self.label = label
        self.node, self.data = parse_yaml(text, label)  # bounded: no aliases, nesting and size capped
        self._no_duplicate_keys(self.node)

    def _no_duplicate_keys(self, node: yaml.Node | None) -> None:
        """yaml keeps the last of two equal keys without a word; a space file that repeats one is a mistake."""
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key, value in node.value:
                if key.value in seen:
                    raise NasError(f"{self.label}:{key.start_mark.line + 1}: {key.value}: repeated key")
                seen.add(key.value)
                self._no_duplicate_keys(value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                self._no_duplicate_keys(item)

    def line(self, path: tuple) -> int | None:
        node = self.node
        line = node.start_mark.line + 1 if node is not None else None
        for key in path:
            if isinstance(node, yaml.MappingNode):
                for k, v in node.value:
                    if k.value == key:
                        node = v
                        break
                else:
                    return line
            elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
                node = node.value[key]
            else:
                return line
            line = node.start_mark.line + 1
        return line

    def error(self, path: tuple, message: str) -> NasError:
        line = self.line(path)
        where = f"{self.label}:{line}" if line else self.label
        return NasError(f"{where}: {_dotted(path)}: {message}" if path else f"{where}: {message}")


def _dotted(path: Iterable) -> str:
    out = ""
    for key in path:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "kernel": (
        lambda v: _is_int(v) and 1 <= v <= MAX_KERNEL and v % 2 == 1,
        f"odd positive integer up to {MAX_KERNEL} (MAX_KERNEL)",
    ),
    "expansion": (
        lambda v: _is_num(v) and 0 < v <= MAX_CHANNELS,
        f"positive number up to {MAX_CHANNELS} (MAX_CHANNELS)",
    ),
    "se": (lambda v: _is_num(v) and 0 <= v < 1, "number in [0, 1)"),
    "act": (lambda v: v in ACTIVATIONS, f"activation ({', '.join(ACTIVATIONS)})"),
    "residual": (lambda v: isinstance(v, bool), "true/false"),
    "groups": (
        lambda v: _is_int(v) and 1 <= v <= MAX_CHANNELS,
        f"positive integer up to {MAX_CHANNELS} (MAX_CHANNELS)",
    ),
    "layers": (
        lambda v: _is_int(v) and abs(v) <= MAX_LAYERS,
        f"integer (layers relative to n) within ±{MAX_LAYERS} (MAX_LAYERS)",
    ),
    "width": (
        lambda v: _is_num(v) and 0 < v <= MAX_CHANNELS,
        f"positive number up to {MAX_CHANNELS} (MAX_CHANNELS)",
    ),
}
# The limits of a searchable stage's skeleton numbers.
_STAGE_LIMITS = {
    "out": (MAX_CHANNELS, "MAX_CHANNELS"),
    "n": (MAX_LAYERS, "MAX_LAYERS"),
    "stride": (MAX_STRIDE, "MAX_STRIDE"),
}


# ---------------------------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class _Op:
    """An op choice resolved: its kind and the dimensions a preset fixes."""

    kind: str
    fixed: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Stage:
    """One stage of the space. `blocks` is set for a fixed stage; otherwise `dims` maps every dimension to its
    choices (one choice = fixed)."""

    index: int
    blocks: tuple[Block, ...] = ()
    out: int = 0
    n: int = 0
    stride: int = 1
    per_layer: bool = False
    dims: tuple[tuple[str, tuple], ...] = ()
    skeleton: tuple[tuple[str, Any], ...] = ()

    @property
    def fixed(self) -> bool:
        return not self.dims

    def choices(self, dim: str) -> tuple:
        return dict(self.dims)[dim]

    def stage_dims(self) -> list[str]:
        """Dimensions decided once for the stage (searched or not)."""
        return [d for d, _ in self.dims if d in STAGE_DIMS or not self.per_layer]

    def layer_dims(self) -> list[str]:
        return [d for d, _ in self.dims if self.per_layer and d not in STAGE_DIMS]


@dataclass
class SearchSpace:
    """A declared search space. Build one with `load_space`."""

    name: str
    stem: tuple[Block, ...]
    stages: tuple[Stage, ...]
    head: Head
    ops_presets: dict[str, _Op]
    extras: dict[str, dict[str, Any]]
    divisor: int = 8
    in_channels: int = 3
    description: str = ""
    reference: str = ""
    skeleton_name: str = ""
    source: str = ""
    _ops_cache: dict[int, dict[tuple[Shape, Block], dict[str, Any]]] = field(default_factory=dict, repr=False)
    _layer_cache: dict[tuple, Block | None] = field(default_factory=dict, repr=False)

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to Ray workers) without the caches, which rebuild on demand."""
        state = dict(self.__dict__)
        state["_ops_cache"] = {}
        state["_layer_cache"] = {}
        for cached in ("decisions", "_decision_index", "size"):
            state.pop(cached, None)
        return state

    # -- decisions

    @cached_property
    def decisions(self) -> list[Decision]:
        out = []
        for st in self.stages:
            for dim in st.stage_dims():
                if len(st.choices(dim)) > 1:
                    out.append(Decision(f"stage{st.index}.{dim}", st.choices(dim)))
            for j in range(st.n if st.layer_dims() else 0):
                for dim in st.layer_dims():
                    if len(st.choices(dim)) > 1:
                        out.append(Decision(f"stage{st.index}.layer{j}.{dim}", st.choices(dim)))
        return out

    @cached_property
    def _decision_index(self) -> dict[str, Decision]:
        return {d.name: d for d in self.decisions}

    @property
    def combinations(self) -> int:
        """The product of the decisions' choice counts (a network may be counted several times)."""
        return math.prod(len(d.choices) for d in self.decisions)

    @cached_property
    def size(self) -> int:
        """The number of distinct architectures of the space (exact; see the module docstring)."""
        return sum(self._count_distinct().values())

    # -- decoding

    def arch(self, choices: Mapping[str, Any], resolution: int = 224, num_classes: int = 1000) -> Arch:
        """The architecture of one choice per decision (all of `decisions`, nothing else)."""
        self._check_resolution(resolution)
        index = self._decision_index
        unknown = [k for k in choices if k not in index]
        if unknown:
            close = difflib.get_close_matches(unknown[0], list(index), n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise NasError(f"space {self.name}: unknown decision {unknown[0]!r}{hint}")
        missing = [d.name for d in self.decisions if d.name not in choices]
        if missing:
            raise NasError(f"space {self.name}: no choice for {missing[0]!r} ({len(missing)} missing)")
        canonical = {}
        for d in self.decisions:
            value = choices[d.name]
            match = [c for c in d.choices if (value == c and type(value) is type(c)) or _same_number(value, c)]
            if not match:
                raise NasError(f"space {self.name}: {d.name} = {value!r} is not one of {list(d.choices)}")
            canonical[d.name] = match[0]  # the choice itself (a numpy number or 1 for 1.0 decodes the same)
        choices = canonical
        stages = []
        c = self._stem_channels()
        for st in self.stages:
            blocks = self._decode_stage(st, c, choices)
            stages.append(blocks)
            if blocks:
                c = blocks[-1].out
        try:
            arch = Arch(
                resolution=resolution,
                num_classes=num_classes,
                stem=self.stem,
                stages=stages,
                head=self.head,
                in_channels=self.in_channels,
            )
        except SpecError as err:
            raise NasError(f"space {self.name}: {err}") from None
        return arch.replace(name=f"{self.name}-{arch.hash[:8]}")

    def sample(self, suggest: Callable[[str, tuple], Any], resolution: int = 224, num_classes: int = 1000) -> Arch:
        """Ask `suggest(name, choices)` (e.g. Optuna's `trial.suggest_categorical`) once per decision, in the
        order of `decisions`, and decode the answers."""
        return self.arch({d.name: suggest(d.name, d.choices) for d in self.decisions}, resolution, num_classes)

    def random_choices(self, rng: random.Random) -> dict[str, Any]:
        return {d.name: rng.choice(d.choices) for d in self.decisions}

    def random_arch(self, rng: random.Random, resolution: int = 224, num_classes: int = 1000) -> Arch:
        return self.arch(self.random_choices(rng), resolution, num_classes)

    def skeleton_choices(self) -> dict[str, Any] | None:
        """The choices nearest to the skeleton network, from each stage's `skeleton:`; None if undeclared."""
        out: dict[str, Any] = {}
        for st in self.stages:
            if st.fixed:
                continue
            marks = dict(st.skeleton)
            for dim in st.stage_dims():
                if len(st.choices(dim)) > 1:
                    if dim not in marks:
                        return None
                    out[f"stage{st.index}.{dim}"] = marks[dim]
            for dim in st.layer_dims():
                if len(st.choices(dim)) > 1:
                    if dim not in marks:
                        return None
                    values = marks[dim] if isinstance(marks[dim], list) else [marks[dim]] * st.n
                    for j in range(st.n):
                        out[f"stage{st.index}.layer{j}.{dim}"] = values[j]
        return out

    # -- ops

    def ops(self, resolution: int = 224) -> list[tuple[Shape, Block]]:
        """Every distinct (input shape, block) that some architecture of the space holds at `resolution`,
        stem and head blocks included, in a fixed order. Exact: computed over the reachable input shapes."""
        return list(self.op_witnesses(resolution))

    def op_witnesses(self, resolution: int = 224) -> dict[tuple[Shape, Block], dict[str, Any]]:
        """`ops()` with, for each op, the (complete) choices of one architecture that holds it."""
        self._check_resolution(resolution)
        if resolution not in self._ops_cache:
            self._ops_cache[resolution] = self._enumerate_ops(resolution)
        return dict(self._ops_cache[resolution])

    def _enumerate_ops(self, resolution: int) -> dict[tuple[Shape, Block], dict[str, Any]]:
        found: dict[tuple[Shape, Block], dict[str, Any]] = {}
        first = {d.name: d.choices[0] for d in self.decisions}

        def place(x: Shape, block: Block, where: str, chosen: dict[str, Any]) -> Shape:
            try:
                block.check(x.c)
            except Exception as err:  # _FieldError: a block the space declares but cannot build
                raise NasError(f"space {self.name}: {where}: {block.type} block cannot take {x}: {err}") from None
            y = block.out_shape(x)
            if y.h < 1 or y.w < 1:
                raise NasError(f"space {self.name}: resolution {resolution} is too small ({where} gets {x})")
            found.setdefault((x, block), first | chosen)
            return y

        x = Shape(self.in_channels, resolution, resolution)
        for i, block in enumerate(self.stem):
            x = place(x, block, f"stem[{i}]", {})
        # reachable stage input shape -> the choices of one way to reach it
        shapes: dict[Shape, dict[str, Any]] = {x: {}}
        for st in self.stages:
            nxt: dict[Shape, dict[str, Any]] = {}
            for x, chosen in shapes.items():
                for combo in self._stage_combos(st):
                    cur = {x: chosen | self._combo_names(st, combo)}
                    for j in range(self._layer_count(st, combo)):
                        new: dict[Shape, dict[str, Any]] = {}
                        for vals in self._layer_values(st, combo):
                            for c, ch in cur.items():
                                ch = ch | self._layer_names(st, j, vals)
                                block = self._layer(st, j, c.c, vals)
                                y = place(c, block, f"stage{st.index} layer {j}", ch) if block else c
                                new.setdefault(y, ch)
                        cur = new
                    for y, ch in cur.items():
                        nxt.setdefault(y, ch)
            shapes = nxt
        for x, chosen in shapes.items():
            for i, block in enumerate(self.head.blocks):
                x = place(x, block, f"head.blocks[{i}]", chosen)
        return found

    # -- costs

    def cost_range(self, resolution: int = 224, num_classes: int = 1000) -> dict[str, tuple[Arch, Arch]]:
        """The architectures of least and most MACs, and of least and most parameters (exact, by dynamic
        programming over the stages): {"macs": (min_arch, max_arch), "params": (min_arch, max_arch)}."""
        self._check_resolution(resolution)
        out = {}
        for metric in ("macs", "params"):

            def block_cost(x: Shape, block: Block, metric: str = metric) -> int:
                return getattr(block.cost(x), metric)

            pair = []
            for sign in (1, -1):
                ends = self._extreme_states(block_cost, sign, resolution)
                archs = [self.arch(ch, resolution, num_classes) for _, ch in ends.values()]
                pair.append(min(archs, key=lambda a, m=metric, sg=sign: sg * getattr(a, m)))
            out[metric] = (pair[0], pair[1])
        return out

    def extreme(
        self, block_cost: Callable[[Shape, Block], float], maximize: bool = False, resolution: int = 224
    ) -> tuple[float, dict[str, Any]]:
        """The least (or most) total of `block_cost(input shape, block)` over every block of an architecture
        (stem, stages, head blocks), and the choices that reach it. Exact for any per-block cost (MACs, a
        latency table's per-op entries), by dynamic programming over the reachable shapes."""
        self._check_resolution(resolution)
        sign = -1 if maximize else 1
        best: tuple[float, dict[str, Any]] | None = None
        x0 = Shape(self.in_channels, resolution, resolution)
        base = 0.0
        for block in self.stem:
            base += block_cost(x0, block)
            x0 = block.out_shape(x0)
        for x, (cost, chosen) in self._extreme_states(block_cost, sign, resolution).items():
            total = base + sign * cost
            for block in self.head.blocks:
                total += block_cost(x, block)
                x = block.out_shape(x)
            if best is None or sign * total < sign * best[0]:
                best = (total, chosen)
        assert best is not None
        first = {d.name: d.choices[0] for d in self.decisions}
        return best[0], first | best[1]

    def _extreme_states(
        self, block_cost: Callable[[Shape, Block], float], sign: int, resolution: int
    ) -> dict[Shape, tuple[float, dict[str, Any]]]:
        """Per shape the last stage can output: the least signed stage-block cost reaching it, and how."""
        x = Shape(self.in_channels, resolution, resolution)
        for block in self.stem:
            x = block.out_shape(x)
        first = {d.name: d.choices[0] for d in self.decisions}
        states: dict[Shape, tuple[float, dict[str, Any]]] = {x: (0, first)}
        for st in self.stages:
            nxt: dict[Shape, tuple[float, dict[str, Any]]] = {}
            for x, (base, chosen) in states.items():
                for combo in self._stage_combos(st):
                    # per-layer DP: shape -> (signed cost, choices)
                    cur = {x: (base, chosen | self._combo_names(st, combo))}
                    for j in range(self._layer_count(st, combo)):
                        new: dict[Shape, tuple[float, dict[str, Any]]] = {}
                        for vals in self._layer_values(st, combo):
                            for c, (cost, ch) in cur.items():
                                block = self._layer(st, j, c.c, vals)
                                y, add = (block.out_shape(c), block_cost(c, block)) if block else (c, 0)
                                total = cost + sign * add
                                if y not in new or total < new[y][0]:
                                    new[y] = (total, ch | self._layer_names(st, j, vals))
                        cur = new
                    for y, (cost, ch) in cur.items():
                        if y not in nxt or cost < nxt[y][0]:
                            nxt[y] = (cost, ch)
            states = nxt
        return states

    # -- internals

    def _check_resolution(self, resolution: Any) -> None:
        try:
            check_resolution(resolution)
        except SpecError as err:
            raise NasError(f"space {self.name}: {err}") from None

    def _stem_channels(self) -> int:
        x = Shape(self.in_channels, 224, 224)
        for block in self.stem:
            x = block.out_shape(x)
        return x.c

    def _stage_combos(self, st: Stage) -> list[dict[str, Any]]:
        """Every combination of a stage's per-stage dimensions (fixed ones included), one per effect."""
        if st.fixed:
            return [{}]
        dims = st.stage_dims()
        combos, seen = [], set()
        for values in itertools.product(*(st.choices(d) for d in dims)):
            combo = dict(zip(dims, values, strict=True))
            key = (self._out(st, combo), *sorted((k, repr(v)) for k, v in combo.items() if k != "width"))
            if key not in seen:
                seen.add(key)
                combos.append(combo)
        return combos

    def _layer_values(self, st: Stage, combo: dict[str, Any]) -> list[dict[str, Any]]:
        dims = st.layer_dims()
        return [
            combo | dict(zip(dims, values, strict=True)) for values in itertools.product(*(st.choices(d) for d in dims))
        ]

    @staticmethod
    def _combo_names(st: Stage, combo: dict[str, Any]) -> dict[str, Any]:
        return {f"stage{st.index}.{d}": v for d, v in combo.items() if len(st.choices(d)) > 1}

    @staticmethod
    def _layer_names(st: Stage, j: int, vals: dict[str, Any]) -> dict[str, Any]:
        return {f"stage{st.index}.layer{j}.{d}": vals[d] for d in st.layer_dims() if len(st.choices(d)) > 1}

    def _out(self, st: Stage, vals: Mapping[str, Any]) -> int:
        return StageBuilder(vals["width"], self.divisor).channels(st.out)

    @staticmethod
    def _layer_count(st: Stage, vals: Mapping[str, Any]) -> int:
        return len(st.blocks) if st.fixed else st.n + vals["layers"]

    def _decode_stage(self, st: Stage, cin: int, choices: Mapping[str, Any]) -> list[Block]:
        if st.fixed:
            return list(st.blocks)
        base = {d: choices.get(f"stage{st.index}.{d}", st.choices(d)[0]) for d in st.stage_dims()}
        blocks: list[Block] = []
        c = cin
        for j in range(self._layer_count(st, base)):
            vals = base | {d: choices.get(f"stage{st.index}.layer{j}.{d}", st.choices(d)[0]) for d in st.layer_dims()}
            block = self._layer(st, j, c, vals)
            if block is not None:
                blocks.append(block)
                c = block.out
        return blocks

    def _layer(self, st: Stage, j: int, cin: int, vals: Mapping[str, Any]) -> Block | None:
        """The block of layer `j` of a searchable stage on `cin` input channels; None for a vanishing skip.
        A residual that the shapes rule out is written as the default (True), as the zoo writes it, so that one
        network has one spec."""
        if st.fixed:
            return st.blocks[j]
        key = (st.index, j == 0, cin, *vals.items())
        if key not in self._layer_cache:
            self._layer_cache[key] = self._build_layer(st, j == 0, cin, vals)
        return self._layer_cache[key]

    def _build_layer(self, st: Stage, first: bool, cin: int, vals: Mapping[str, Any]) -> Block | None:
        op = self.ops_presets.get(vals["op"]) or _Op(vals["op"])
        v = dict(vals) | dict(op.fixed)
        fields = dict(self.extras.get("conv" if op.kind == "skip" else op.kind, {}))
        if op.kind in ("ds", "mbconv"):
            fields |= {"se": float(v["se"]), "skip": v["residual"]}
        if op.kind == "mbconv":
            fields["groups"] = v["groups"]
        kind = "ir" if op.kind == "mbconv" else op.kind
        row = Row(kind, st.out, stride=st.stride, k=v["kernel"], e=v["expansion"], act=v["act"], fields=fields)
        return StageBuilder(v["width"], self.divisor, canonical=True).block(row, cin, first=first)

    def _count_distinct(self) -> dict[int, int]:
        """Distinct architectures per final channel count. Per stage, the layer choices form a
        nondeterministic automaton over blocks (a vanishing skip is an empty move); counting the paths of
        its subset construction counts distinct block sequences exactly."""
        counts = {self._stem_channels(): 1}
        for st in self.stages:
            nxt: dict[int, int] = {}
            for c, n in counts.items():
                for c2, m in self._stage_sequences(st, c).items():
                    nxt[c2] = nxt.get(c2, 0) + n * m
            counts = nxt
        return counts

    def _stage_sequences(self, st: Stage, cin: int) -> dict[int, int]:
        if st.fixed:
            return {st.blocks[-1].out if st.blocks else cin: 1}
        combos = self._stage_combos(st)
        layer_vals = [self._layer_values(st, combo) for combo in combos]
        counts = [self._layer_count(st, combo) for combo in combos]
        moves: dict[tuple[int, int, int], tuple[dict[Block, int], bool]] = {}

        def outcomes(state: tuple[int, int, int]) -> tuple[dict[Block, int], bool]:
            if state not in moves:
                k, j, c = state
                blocks: dict[Block, int] = {}
                vanish = False
                for vals in layer_vals[k]:
                    b = self._layer(st, j, c, vals)
                    if b is None:
                        vanish = True
                    else:
                        blocks[b] = b.out
                moves[state] = (blocks, vanish)
            return moves[state]

        def closure(states: Iterable[tuple[int, int, int]]) -> frozenset:
            todo, seen = list(states), set()
            while todo:
                s = todo.pop()
                if s in seen:
                    continue
                seen.add(s)
                k, j, c = s
                if j < counts[k] and outcomes(s)[1]:
                    todo.append((k, j + 1, c))
            return frozenset(seen)

        memo: dict[frozenset, dict[int, int]] = {}

        def paths(subset: frozenset) -> dict[int, int]:
            if subset in memo:
                return memo[subset]
            total: dict[int, int] = {}
            ends = {c for k, j, c in subset if j == counts[k]}
            for c in ends:  # the block sequence read so far ends here (its last channel count is fixed)
                total[c] = total.get(c, 0) + 1
            step: dict[Block, list[tuple[int, int, int]]] = {}
            for k, j, c in subset:
                if j < counts[k]:
                    for b, c2 in outcomes((k, j, c))[0].items():
                        step.setdefault(b, []).append((k, j + 1, c2))
            for targets in step.values():
                for c2, m in paths(closure(targets)).items():
                    total[c2] = total.get(c2, 0) + m
            memo[subset] = total
            return total

        return paths(closure((k, 0, cin) for k in range(len(combos))))


def _same_number(a: Any, b: Any) -> bool:
    def number(v: Any) -> bool:
        return isinstance(v, numbers.Real) and not isinstance(v, bool)

    return number(a) and number(b) and a == b


# ---------------------------------------------------------------------------------------------- loading


def space_names() -> list[str]:
    """The names of the spaces shipped in search_spaces/."""
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml")) if SPACES_DIR.is_dir() else []


def _resolve(name: str | Path) -> Path:
    path = Path(name)
    name = str(name)
    if path.suffix in (".yaml", ".yml") or "/" in name or path.exists():
        if not path.exists():
            raise NasError(f"search space file {name} does not exist")
        return path  # read_text refuses a directory, FIFO or device with its own message
    candidate = SPACES_DIR / f"{name}.yaml"
    if candidate.is_file():
        return candidate
    names = space_names()
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise NasError(f"unknown search space {name!r}{hint} (known: {', '.join(names) or 'none'}; or give a YAML path)")


_CACHE: dict[tuple[str, float], SearchSpace] = {}


def load_space(name: str | Path = DEFAULT_SPACE) -> SearchSpace:
    """A shipped space by name (`mobilenetv3`, `mnasnet`, `fbnet`) or a YAML file; NasError naming the file,
    line and field of any mistake."""
    path = _resolve(name)
    key = (str(path.resolve()), path.stat().st_mtime)
    if key not in _CACHE:
        text = read_text(path, "search space", MAX_YAML_BYTES)
        label = str(path)
        with contextlib.suppress(ValueError):
            label = str(path.resolve().relative_to(Path.cwd()))
        space = parse_space(text, label, default_name=path.stem)
        space.ops()  # every block the space can hold is checked once here, at the default resolution
        _CACHE[key] = space
    return _CACHE[key]


_TOP = {
    "name",
    "description",
    "reference",
    "skeleton",
    "divisor",
    "in_channels",
    "stem",
    "stages",
    "head",
    "ops",
    "block",
}
_STAGE = {"out", "n", "stride", "choose", "skeleton", "blocks", *DIMS}
_HEAD = {"blocks", "hidden", "dropout", "classifier", "classifier_bias"}


def parse_space(text: str, label: str = "<space>", default_name: str = "space") -> SearchSpace:
    src = _Source(label, text)
    data = src.data
    if not isinstance(data, dict):
        raise src.error((), "a search space must be a YAML mapping")
    _known(src, data, _TOP, ())
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise src.error(("name",), "must be a non-empty string")
    for key in ("description", "reference", "skeleton"):
        if not isinstance(data.get(key, ""), str):
            raise src.error((key,), "must be a string")
    for key, default in (("divisor", 8), ("in_channels", 3)):
        value = data.get(key, default)
        if not _is_int(value) or value < 1:
            raise src.error((key,), f"must be a positive integer, got {value!r}")
        if value > MAX_CHANNELS:
            raise src.error((key,), f"{value} is above the limit of {MAX_CHANNELS} (MAX_CHANNELS)")
    divisor, in_channels = data.get("divisor", 8), data.get("in_channels", 3)

    presets = _parse_presets(src, data.get("ops", {}))
    extras = _parse_extras(src, data.get("block", {}))
    stem = _parse_blocks(src, data.get("stem"), ("stem",))
    if "stages" not in data:
        raise src.error(("stages",), "missing")
    if not isinstance(data["stages"], list) or not data["stages"]:
        raise src.error(("stages",), "must be a non-empty list of stages")
    if len(data["stages"]) > MAX_STAGES:
        raise src.error(("stages",), f"{len(data['stages'])} stages, above the limit of {MAX_STAGES} (MAX_STAGES)")
    stages = tuple(_parse_stage(src, i, raw, presets) for i, raw in enumerate(data["stages"]))
    work = sum(_stage_work(st) for st in stages)
    if work > MAX_SPACE_WORK:
        raise src.error(
            ("stages",),
            f"{work:,} layer choices (per stage: combinations × deepest layer count), above the limit of "
            f"{MAX_SPACE_WORK:,} (MAX_SPACE_WORK)",
        )
    head = _parse_head(src, data.get("head", {}))
    return SearchSpace(
        name=name,
        stem=stem,
        stages=stages,
        head=head,
        ops_presets=presets,
        extras=extras,
        divisor=divisor,
        in_channels=in_channels,
        description=data.get("description", ""),
        reference=data.get("reference", ""),
        skeleton_name=data.get("skeleton", ""),
        source=label,
    )


def _known(src: _Source, data: dict, known: set[str], path: tuple) -> None:
    for key in data:
        if key not in known:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else f" (known: {', '.join(sorted(known))})"
            raise src.error((*path, key), f"unknown field{hint}")


def _parse_blocks(src: _Source, raw: Any, path: tuple) -> tuple[Block, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise src.error(path, "must be a list of blocks")
    if len(raw) > MAX_LAYERS:
        raise src.error(path, f"{len(raw)} blocks, above the limit of {MAX_LAYERS} (MAX_LAYERS)")
    blocks = []
    for i, item in enumerate(raw):
        where = f"{_dotted(path)}[{i}]"
        try:
            blocks.append(block_from_dict(item, where))
        except (SpecError, TypeError) as err:
            message = str(err)
            if not message.startswith(where):
                message = f"{where}: {message}"
            field_name = message[len(where) + 1 :].split(":", 1)[0] if message[len(where)] == "." else None
            line = src.line((*path, i, field_name) if field_name else (*path, i))
            raise NasError(f"{src.label}:{line}: {message}") from None
    return tuple(blocks)


def _check_dim(src: _Source, dim: str, value: Any, path: tuple, presets: dict[str, _Op]) -> None:
    if dim == "op":
        if value not in OP_KINDS and value not in presets:
            allowed = ", ".join([*OP_KINDS, *presets])
            raise src.error(path, f"unknown op {value!r} (allowed: {allowed})")
        return
    check, what = _CHECKS[dim]
    if not check(value):
        raise src.error(path, f"must be a {what} or a list of them, got {value!r}")


def _parse_presets(src: _Source, raw: Any) -> dict[str, _Op]:
    if not isinstance(raw, dict):
        raise src.error(("ops",), "must map op names to {op: KIND, kernel: ..., expansion: ...}")
    presets = {}
    for name, spec in raw.items():
        path = ("ops", name)
        if name in OP_KINDS:
            raise src.error(path, f"{name!r} is a built-in op kind; choose another name")
        if not isinstance(spec, dict) or "op" not in spec:
            raise src.error(path, "must be a mapping with `op` (one of mbconv, ds, conv, skip)")
        _known(src, spec, set(DIMS) - set(STAGE_DIMS), path)
        if spec["op"] not in OP_KINDS:
            raise src.error((*path, "op"), f"must be one of {', '.join(OP_KINDS)}, got {spec['op']!r}")
        for dim, value in spec.items():
            if dim != "op":
                _check_dim(src, dim, value, (*path, dim), {})
        presets[name] = _Op(spec["op"], tuple((d, v) for d, v in spec.items() if d != "op"))
    return presets


def _parse_extras(src: _Source, raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise src.error(("block",), "must map an op kind (mbconv, ds, conv) to block fields")
    _known(src, raw, set(EXTRA_FIELDS), ("block",))
    out = {}
    for kind, fields in raw.items():
        path = ("block", kind)
        if not isinstance(fields, dict):
            raise src.error(path, "must be a mapping of block fields")
        _known(src, fields, set(EXTRA_FIELDS[kind]), path)
        for key, value in fields.items():
            allowed = EXTRA_FIELDS[kind][key]
            ok = isinstance(value, bool) if allowed is bool else value in allowed
            what = "true or false" if allowed is bool else f"one of {', '.join(allowed)}"
            if not ok:
                raise src.error((*path, key), f"must be {what}, got {value!r}")
        out[kind] = dict(fields)
    return out


def _parse_stage(src: _Source, i: int, raw: Any, presets: dict[str, _Op]) -> Stage:
    path: tuple = ("stages", i)
    if not isinstance(raw, dict):
        raise src.error(path, "a stage must be a mapping")
    _known(src, raw, _STAGE, path)
    if "blocks" in raw:
        others = sorted(set(raw) - {"blocks"})
        if others:
            raise src.error((*path, others[0]), "a stage of fixed `blocks` takes no other field")
        blocks = _parse_blocks(src, raw["blocks"], (*path, "blocks"))
        if not blocks:
            raise src.error((*path, "blocks"), "must hold at least one block")
        return Stage(index=i, blocks=blocks)
    for key, (limit, label) in _STAGE_LIMITS.items():
        if key not in raw:
            raise src.error((*path, key), "missing (a searchable stage needs out, n and stride)")
        if not _is_int(raw[key]) or raw[key] < 1:
            raise src.error((*path, key), f"must be a positive integer, got {raw[key]!r}")
        if raw[key] > limit:
            raise src.error((*path, key), f"{raw[key]} is above the limit of {limit} ({label})")
    choose = raw.get("choose", "stage")
    if choose not in ("stage", "layer"):
        raise src.error((*path, "choose"), f"must be 'stage' or 'layer', got {choose!r}")
    per_layer = choose == "layer"
    dims: dict[str, tuple] = {}
    for dim in DIMS:
        value = raw.get(dim, DEFAULTS[dim])
        values = value if isinstance(value, list) else [value]
        if not values:
            raise src.error((*path, dim), "an empty list of choices")
        for k, v in enumerate(values):
            _check_dim(src, dim, v, (*path, dim, k) if isinstance(value, list) else (*path, dim), presets)
        dupes = [v for k, v in enumerate(values) if any(_equal(v, w) for w in values[:k])]
        if dupes:
            raise src.error((*path, dim), f"repeats the choice {dupes[0]!r}")
        dims[dim] = tuple(values)
    for delta in dims["layers"]:
        if raw["n"] + delta < 1:
            raise src.error((*path, "layers"), f"n + {delta} = {raw['n'] + delta} layers; a stage keeps at least 1")
        if raw["n"] + delta > MAX_LAYERS:
            raise src.error(
                (*path, "layers"),
                f"n + {delta} = {raw['n'] + delta} layers, above the limit of {MAX_LAYERS} (MAX_LAYERS)",
            )
    widest = raw["out"] * max(dims["width"])
    if widest > MAX_CHANNELS:
        raise src.error(
            (*path, "width"), f"out × width = {widest:g} channels, above the limit of {MAX_CHANNELS} (MAX_CHANNELS)"
        )
    if per_layer and len(dims["layers"]) > 1:
        raise src.error(
            (*path, "layers"), "a stage that chooses per layer has a fixed depth (search it with a skip op)"
        )
    for op in dims["op"]:
        for dim, _ in presets.get(op, _Op(op)).fixed:
            if dim in raw:
                raise src.error((*path, dim), f"set here and by the op preset {op!r}; set it in one place")
    skeleton = raw.get("skeleton", {})
    if not isinstance(skeleton, dict):
        raise src.error((*path, "skeleton"), "must map dimensions to the skeleton's choice")
    _known(src, skeleton, set(DIMS), (*path, "skeleton"))
    marks = dict(skeleton)
    for dim, default in (("layers", 0), ("width", 1.0)):
        if dim not in marks and default in dims[dim]:
            marks[dim] = default
    for dim, mark in marks.items():
        values = mark if isinstance(mark, list) and per_layer and dim not in STAGE_DIMS else [mark]
        if per_layer and dim not in STAGE_DIMS and isinstance(mark, list) and len(mark) != raw["n"]:
            raise src.error((*path, "skeleton", dim), f"a per-layer skeleton needs {raw['n']} values")
        for v in values:
            if not any(_equal(v, c) for c in dims[dim]):
                raise src.error((*path, "skeleton", dim), f"{v!r} is not one of the choices {list(dims[dim])}")
    return Stage(
        index=i,
        out=raw["out"],
        n=raw["n"],
        stride=raw["stride"],
        per_layer=per_layer,
        dims=tuple(dims.items()),
        skeleton=tuple((k, v) for k, v in marks.items()),
    )


def _stage_work(st: Stage) -> int:
    """What enumerating a stage's ops costs: its combinations of choices times its deepest layer count."""
    if st.fixed:
        return len(st.blocks)
    return math.prod(len(v) for _, v in st.dims) * (st.n + max(st.choices("layers")))


def _equal(a: Any, b: Any) -> bool:
    return a == b and (isinstance(a, bool) == isinstance(b, bool))


def _parse_head(src: _Source, raw: Any) -> Head:
    path = ("head",)
    if not isinstance(raw, dict):
        raise src.error(path, "must be a mapping")
    _known(src, raw, _HEAD, path)
    blocks = _parse_blocks(src, raw.get("blocks"), (*path, "blocks"))
    hidden = []
    raw_hidden = raw.get("hidden") or []
    if not isinstance(raw_hidden, list) or len(raw_hidden) > MAX_LAYERS:
        raise src.error((*path, "hidden"), f"must be a list of at most {MAX_LAYERS} layers (MAX_LAYERS)")
    for i, d in enumerate(raw_hidden):
        if not isinstance(d, dict):
            raise src.error((*path, "hidden", i), "must be a mapping {out, act, bias}")
        _known(src, d, {"out", "act", "bias"}, (*path, "hidden", i))
        if not _is_int(d.get("out")) or not 1 <= d["out"] <= MAX_CHANNELS:
            raise src.error(
                (*path, "hidden", i, "out"), f"must be a positive integer up to {MAX_CHANNELS}, got {d.get('out')!r}"
            )
        if d.get("act", "hswish") not in ACTIVATIONS:
            raise src.error((*path, "hidden", i, "act"), f"must be one of {', '.join(ACTIVATIONS)}")
        hidden.append(Dense(**d))
    dropout = raw.get("dropout", 0.0)
    if not _is_num(dropout) or not 0 <= dropout < 1:
        raise src.error((*path, "dropout"), f"must be a number in [0, 1), got {dropout!r}")
    classifier = raw.get("classifier", "linear")
    if classifier not in ("linear", "conv"):
        raise src.error((*path, "classifier"), f"must be 'linear' or 'conv', got {classifier!r}")
    return Head(
        blocks=blocks,
        hidden=tuple(hidden),
        dropout=float(dropout),
        classifier=classifier,
        classifier_bias=bool(raw.get("classifier_bias", True)),
    )
