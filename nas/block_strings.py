"""timm-style block strings for the MBConv family of the spec (blocks of types ir, ds and conv).

The notation of timm's `_efficientnet_builder`: a network's stages are lists of strings, each string one block
repeated, `<type>_<option>_<option>…`, e.g. `ir_r3_k5_s2_e3_c40_se0.25_nre`. The grammar, the same for
`decode` and `encode`:

    type    ir (inverted residual), ds (depthwise-separable), dsa (ds with an activation after the pointwise
            conv and no residual, MobileNetV1), cn (conv + BN + activation)
    r<int>  repeats (required)            k<int>  kernel (required)
    s<int>  stride of the first repeat (required; only the first block of a stage may stride, timm's rule)
    c<int>  output channels (required)    e<num>  expansion, mid = make_divisible(in · e) (required for ir)
    se<num> squeeze-excite ratio          g<int>  groups of an ir's 1×1 convs (FBNet's `_g2` ops; nas's)
    n<act>  activation: nre relu, nr6 relu6, nhs hswish, nsw swish (else the style's)
    noskip  no residual                   pw      ds with an activation after the pointwise conv (nas's)

What the strings leave implicit (the default activation and how SE is sized, gated and activated) is a
`BlockStringStyle`, one per family. Two conventions of `nas` differ from timm's builder: an ir whose mid
equals its input has no expansion conv (timm's InvertedResidual keeps a 1×1 conv at e1), and a non-first
string of a stage that strides is an error (timm silently drops the stride). `c` is taken as written unless
`decode` is given a width (then make_divisible(c · width), timm's round_chs_fn).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nas.arch import (
    ACTIVATIONS,
    GATES,
    Arch,
    Block,
    Conv,
    DepthwiseSeparable,
    InvertedResidual,
    SpecError,
    make_divisible,
)
from nas.stages import Row, StageBuilder

_TYPES = ("ir", "ds", "dsa", "cn")
_ACT_CODES = {"re": "relu", "r6": "relu6", "hs": "hswish", "sw": "swish"}
_CODE_OF_ACT = {act: code for code, act in _ACT_CODES.items()}
_INT_KEYS = ("r", "k", "s", "c", "g")
_NUM_KEYS = ("e", "se")
_FLAGS = ("noskip", "pw")
_REQUIRED = ("r", "k", "s", "c")
# Options each type accepts besides the required ones; `e` on ds/cn must be 1 (timm's strings carry `e1`).
_ALLOWED = {
    "ir": {"e", "se", "g", "n", "noskip"},
    "ds": {"e", "se", "n", "noskip", "pw"},
    "dsa": {"e", "se", "n", "noskip", "pw"},
    "cn": {"e", "n"},
}


@dataclass(frozen=True)
class BlockStringStyle:
    """A family's conventions that its strings leave implicit: the activation of blocks without `n…`, and for
    blocks with `se`: whether SE width is a share of the expanded (`mid`, rounded by make_divisible) or the
    input channels (`in`, rounded to nearest), its gate, and its inner activation (None: the block's own)."""

    act: str = "relu"
    se_from: str = "in"
    se_gate: str = "sigmoid"
    se_act: str | None = None

    def __post_init__(self) -> None:
        for name, value, allowed in (
            ("act", self.act, ACTIVATIONS),
            ("se_from", self.se_from, ("in", "mid")),
            ("se_gate", self.se_gate, GATES),
            ("se_act", self.se_act, (*ACTIVATIONS, None)),
        ):
            if value not in allowed:
                raise SpecError(
                    f"BlockStringStyle.{name}: must be one of {', '.join(map(str, allowed))}; got {value!r}"
                )

    def se_fields(self, se: float, act: str) -> dict[str, Any]:
        """SE fields of a decoded block: the style's when it has SE, the block type's defaults when not."""
        if not se:
            return {}
        return {"se": se, "se_from": self.se_from, "se_gate": self.se_gate, "se_act": self.se_act or act}


# timm's families (timm/models/efficientnet.py, mobilenetv3.py).
MNASNET = BlockStringStyle()  # EfficientNet class defaults: ReLU, SE from block input, sigmoid
MOBILENET_V1 = MOBILENET_V2 = BlockStringStyle(act="relu6")
MOBILENET_V3 = BlockStringStyle(act="hswish", se_from="mid", se_gate="hsigmoid", se_act="relu")
EFFICIENTNET = BlockStringStyle(act="swish")
# The styles `timm_strings` tries, by the name it reports.
STYLES = {"MNASNET": MNASNET, "MOBILENET_V2": MOBILENET_V2, "MOBILENET_V3": MOBILENET_V3, "EFFICIENTNET": EFFICIENTNET}


@dataclass(frozen=True)
class _Parsed:
    """One string, parsed: its type, its numeric options, its flags, its activation (None: the style's)."""

    type: str
    numbers: dict[str, str]
    flags: frozenset[str]
    act: str | None

    def integer(self, key: str, default: int | None = None) -> int:
        return int(self.numbers[key]) if key in self.numbers else default  # type: ignore[return-value]

    def number(self, key: str, default: float = 0.0) -> float:
        return float(self.numbers[key]) if key in self.numbers else default


def _parse(text: Any, where: str) -> _Parsed:
    """The one grammar: `type(_option)*`, option = flag | n<act> | key<number>."""
    if not isinstance(text, str) or not text:
        raise SpecError(f"{where}: a block string must be a non-empty string, got {text!r}")
    kind, *tokens = text.split("_")
    if kind not in _TYPES:
        raise SpecError(f"{where}: unknown block type {kind!r} (known: {', '.join(_TYPES)})")
    numbers: dict[str, str] = {}
    flags: set[str] = set()
    act = None
    for token in tokens:
        if token in _FLAGS:
            key = token
            if token in flags:
                raise SpecError(f"{where}: option {token!r} given twice")
            flags.add(token)
        elif token.startswith("n") and token[1:] in _ACT_CODES:
            key = "n"
            if act is not None:
                raise SpecError(f"{where}: two activations")
            act = _ACT_CODES[token[1:]]
        else:
            key = token.rstrip("0123456789.")
            value = token[len(key) :]
            if key not in _INT_KEYS + _NUM_KEYS:
                hint = (
                    f" (activations: {', '.join('n' + c for c in _ACT_CODES)})" if key.startswith("n") else ""
                )
                raise SpecError(f"{where}: unknown option {token!r}{hint}")
            if key in numbers:
                raise SpecError(f"{where}: option {key!r} given twice")
            if not _is_number(value, integer=key in _INT_KEYS):
                kind_of = "a positive integer" if key in _INT_KEYS else "a number"
                raise SpecError(f"{where}: option {token!r}: {key} takes {kind_of}, got {value!r}")
            numbers[key] = value
        if key not in _REQUIRED and key not in _ALLOWED[kind]:
            raise SpecError(f"{where}: option {token!r} does not apply to a {kind!r} block")
    parsed = _Parsed(kind, numbers, frozenset(flags), act)
    missing = [key for key in _REQUIRED + (("e",) if kind == "ir" else ()) if key not in numbers]
    if missing:
        raise SpecError(
            f"{where}: missing option {missing[0]!r} (a {kind!r} string needs {', '.join(_REQUIRED)}"
            f"{', e' if kind == 'ir' else ''})"
        )
    for key in ("r", "k", "s", "c", "g"):
        if key in numbers and parsed.integer(key) < 1:
            raise SpecError(f"{where}: option {key!r} must be at least 1")
    if kind == "ir" and parsed.number("e") <= 0:
        raise SpecError(f"{where}: option 'e' must be positive")
    if kind != "ir" and parsed.number("e", 1.0) != 1.0:
        raise SpecError(f"{where}: a {kind!r} block has no expansion (only e1 is allowed)")
    if not 0 <= parsed.number("se") <= 1:
        raise SpecError(f"{where}: option 'se' must be in [0, 1]")
    return parsed


def _is_number(value: str, integer: bool) -> bool:
    """Plain decimal literals only: no signs, exponents, nan or inf."""
    if integer:
        return value.isdigit() and value.isascii()
    whole, _, frac = value.partition(".")
    return (
        bool(whole)
        and whole.isdigit()
        and whole.isascii()
        and (not frac or (frac.isdigit() and frac.isascii()))
    )


_KIND = {"ir": "ir", "ds": "ds", "dsa": "ds", "cn": "conv"}


def _row(p: _Parsed, style: BlockStringStyle) -> Row:
    """One parsed string as a stage row (channels as written; `decode` scales them)."""
    act = p.act or style.act
    fields: dict[str, Any] = {}
    if p.type == "ir":
        fields = {"skip": "noskip" not in p.flags, "groups": p.integer("g", 1)}
    elif p.type in ("ds", "dsa"):
        dsa = p.type == "dsa"
        fields = {"pw_act": dsa or "pw" in p.flags, "skip": not dsa and "noskip" not in p.flags}
    if p.type != "cn":
        fields |= style.se_fields(p.number("se"), act)
    return Row(
        _KIND[p.type], p.integer("c"), p.integer("r"), p.integer("s"), p.integer("k"), p.number("e", 1.0), act, fields
    )


def _blocks(p: _Parsed, cin: int, style: BlockStringStyle, width: float = 1.0) -> list[Block]:
    """The blocks one parsed string makes from `cin` input channels (`c` as written at width 1)."""
    return StageBuilder(None if width == 1.0 else width).stage([_row(p, style)], cin)


def decode(
    stages: Sequence[Sequence[str]], in_channels: int, style: BlockStringStyle = MNASNET, width: float = 1.0
) -> list[list[Block]]:
    """Stages of block strings → stages of spec blocks, the first reading `in_channels` (the stem's output).

    `width` ≠ 1 scales every `c` through make_divisible, as timm's channel multiplier does."""
    if isinstance(stages, str) or not isinstance(stages, Sequence):
        raise SpecError("block strings: stages must be a list of lists of strings")
    if not width > 0:
        raise SpecError(f"block strings: width must be positive, got {width!r}")
    cin = in_channels
    result: list[list[Block]] = []
    for si, stage in enumerate(stages):
        if isinstance(stage, str) or not isinstance(stage, Sequence) or not stage:
            raise SpecError(f"stages[{si}]: a stage must be a non-empty list of block strings, got {stage!r}")
        blocks: list[Block] = []
        for bi, text in enumerate(stage):
            where = f"stages[{si}][{bi}] {text!r}"
            parsed = _parse(text, where)
            if blocks and parsed.integer("s") > 1:
                raise SpecError(
                    f"{where}: only the first block of a stage may stride (timm would drop the s)"
                )
            for block in _blocks(parsed, cin, style, width):
                try:
                    block.check(cin)
                except Exception as err:  # the field errors of nas.arch carry the field's name
                    if not hasattr(err, "field"):
                        raise
                    raise SpecError(f"{where}: {getattr(err, 'field', '')}: {err}") from None
                blocks.append(block)
                cin = block.out
        result.append(blocks)
    return result


# ---------------------------------------------------------------------------------------------- encode


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _expansion(cin: int, mid: int) -> str | None:
    """The shortest `e` (fewest decimals, then nearest mid/cin) with make_divisible(cin · e) == mid."""
    exact = mid / cin
    for digits in range(5):
        scale = 10**digits
        centre = round(exact * scale)
        for n in sorted(range(max(1, centre - 2), centre + 3), key=lambda n: abs(n / scale - exact)):
            text = f"{n / scale:.{digits}f}"
            if make_divisible(cin * float(text)) == mid:
                return _fmt(float(text))
    return None


def _options(block: Block, cin: int, style: BlockStringStyle, where: str) -> list[str]:
    """Every token of a block's string but `r` and `s`, in timm's order; SpecError where it has no form."""
    if isinstance(block, Conv):
        for name, value, plain in (
            ("groups", block.groups, 1),
            ("pad", block.pad, None),
            ("bn", block.bn, True),
            ("bias", block.bias, False),
        ):
            if value != plain:
                raise SpecError(f"{where}: {name}={value!r}: a cn string is a plain conv + BN + activation")
        head = ["cn", f"k{block.k}", f"c{block.out}"]
    elif isinstance(block, DepthwiseSeparable):
        kind = "dsa" if block.pw_act and not block.skip else "ds"
        head = [kind, f"k{block.k}", f"c{block.out}"]
    elif isinstance(block, InvertedResidual):
        if block.bias:
            raise SpecError(f"{where}: bias=True: block strings have no conv biases")
        e = _expansion(cin, block.mid)
        if e is None:
            raise SpecError(
                f"{where}: mid={block.mid}: no expansion e gives make_divisible({cin} · e) = {block.mid}"
            )
        head = ["ir", f"k{block.k}", f"e{e}", f"c{block.out}"]
    else:
        raise SpecError(f"{where}: a {block.type!r} block has no block-string form (only ir, ds and conv)")
    tail = []
    se = getattr(block, "se", 0.0)
    if se:
        tail.append(f"se{_fmt(se)}")
        expected = style.se_fields(se, block.act)  # type: ignore[attr-defined]
        for name in ("se_from", "se_gate", "se_act"):
            if getattr(block, name) != expected[name]:
                raise SpecError(
                    f"{where}: {name}={getattr(block, name)!r} differs from the style's "
                    f"{expected[name]!r}, and block strings leave it implicit"
                )
    if getattr(block, "groups", 1) > 1 and head[0] == "ir":
        tail.append(f"g{block.groups}")  # type: ignore[attr-defined]
    act = block.act  # type: ignore[attr-defined]
    if act != style.act:
        if act not in _CODE_OF_ACT:
            raise SpecError(f"{where}: act={act!r} has no block-string code (n{', n'.join(_ACT_CODES)})")
        tail.append("n" + _CODE_OF_ACT[act])
    if head[0] in ("ir", "ds") and not block.skip:  # type: ignore[attr-defined]
        tail.append("noskip")
    if head[0] == "ds" and block.pw_act:  # type: ignore[attr-defined]
        tail.append("pw")
    return head + tail


def _string(options: list[str], repeats: int, stride: int) -> str:
    return "_".join([options[0], f"r{repeats}", options[1], f"s{stride}", *options[2:]])


def _diff(got: Block, want: Block) -> str:
    if got.type != want.type:
        return f"type {want.type!r}"
    fields = [f.name for f in dataclasses.fields(want) if getattr(got, f.name) != getattr(want, f.name)]
    return ", ".join(f"{name}={getattr(want, name)!r}" for name in fields)


def encode(
    stages: Sequence[Sequence[Block]], in_channels: int, style: BlockStringStyle = MNASNET
) -> list[list[str]]:
    """Stages of spec blocks → the shortest block strings that `decode` turns back into exactly those blocks.

    Consecutive blocks merge into one string with r > 1 when decoding it gives them back. A block with no
    string form (another type, a mid that no e reproduces, SE conventions other than the style's, a stride
    past the first block of a stage, conv biases) raises SpecError naming it and why."""
    cin = in_channels
    result: list[list[str]] = []
    for si, stage in enumerate(stages):
        strings: list[str] = []
        group: tuple[list[str], int, int, list[Block]] | None = (
            None  # options, stride, input channels, blocks
        )
        for bi, block in enumerate(stage):
            where = f"stages[{si}][{bi}] ({getattr(block, 'type', type(block).__name__)})"
            if not isinstance(block, Block):
                raise SpecError(f"{where}: not a block: {block!r}")
            stride = getattr(block, "s", 1)
            if bi > 0 and stride > 1:
                raise SpecError(
                    f"{where}: s={stride}: only the first block of a stage may stride in block strings"
                )
            options = _options(block, cin, style, where)
            single = _blocks(_parse(_string(options, 1, stride), where), cin, style)
            if single != [block]:
                raise SpecError(f"{where}: {_diff(single[0], block)} cannot be expressed with this style")
            if group is not None and group[0] == options and stride == 1:
                merged = [*group[3], block]
                text = _string(options, len(merged), group[1])
                if _blocks(_parse(text, where), group[2], style) == merged:
                    group = (options, group[1], group[2], merged)
                    strings[-1] = text
                    cin = block.out
                    continue
            group = (options, stride, cin, [block])
            strings.append(_string(options, 1, stride))
            cin = block.out
        result.append(strings)
    return result


def timm_strings(arch: Arch) -> tuple[str, list[list[str]]]:
    """(style name, block strings of the stages): of the timm families' conventions (`STYLES`) that express
    every stage, the one giving the shortest strings. SpecError when none does."""
    sites = arch.sites()
    stem_out = sites[len(arch.stem) - 1].y.c if arch.stem else arch.in_channels
    found: list[tuple[int, str, list[list[str]]]] = []
    errors: list[str] = []
    for name, style in STYLES.items():
        try:
            strings = encode(arch.stages, stem_out, style)
        except SpecError as err:
            errors.append(str(err))
            continue
        found.append((sum(len(s) for stage in strings for s in stage), name, strings))
    if not found:
        raise SpecError(f"no timm block-string form: {errors[0]}")
    _, name, strings = min(found)
    if decode(strings, stem_out, STYLES[name]) != [list(stage) for stage in arch.stages]:
        raise SpecError(f"timm block strings of {arch.name or arch.hash} do not decode back to its stages")
    return name, strings
