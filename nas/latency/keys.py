"""Op keys: the canonical name of one op of a network, computed from the spec alone.

A key is `TYPE:CxHxW:{fields}`: the block type, its input shape and its fields as sorted compact JSON, after
the fields that cannot change the built op are resolved. A residual is stored as whether it happens (a strided
`skip=True` block builds the same op as `skip=False`), squeeze-excite as its resolved width (`se_ch`, with its
gate and activation; nothing when there is none), a conv's padding as its value. Two ops share a key exactly
when they build the same module on the same input; any other change of a field changes the key.

The part of a network after its last block (global pool, hidden dense layers, classifier) is one op keyed
`head:CxHxW:{...}` by the shape it pools and the layers it holds; the cost a network pays once per inference
(feeding its input to the runtime) is `input:CxHxW:{}`. Both are the table's fixed costs.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from nas.arch import Arch, Block, Shape

HEAD = "head"
INPUT = "input"


def _compact(fields: dict[str, Any]) -> str:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"))


def canonical_fields(x: Shape, block: Block) -> dict[str, Any]:
    """The block's fields with every choice that does not change the built op resolved."""
    fields = block.to_dict()
    del fields["type"]
    if "skip" in fields:
        fields["skip"] = bool(block.has_residual(x.c))  # type: ignore[attr-defined]
    if "se" in fields:
        se_ch = block.se_channels(x.c) if fields["se"] else 0  # type: ignore[attr-defined]
        for name in ("se", "se_from", "se_gate", "se_act"):
            fields.pop(name, None)
        if se_ch:
            fields["se_ch"] = se_ch
            if "se_gate" in block.to_dict():
                fields["se_gate"] = block.se_gate  # type: ignore[attr-defined]
                fields["se_act"] = block.se_act  # type: ignore[attr-defined]
    if "pad" in fields and fields["pad"] is None:
        fields["pad"] = block.padding  # type: ignore[attr-defined]
    return fields


@functools.lru_cache(maxsize=1 << 16)
def op_key(x: Shape, block: Block) -> str:
    """Key of `block` applied to an input of shape `x` (memoised: a search meets the same ops again and again)."""
    return f"{block.type}:{x.c}x{x.h}x{x.w}:{_compact(canonical_fields(x, block))}"


def head_key(arch: Arch, features: Shape | None = None) -> str:
    """Key of everything after the last block: global pool, hidden dense layers, classifier."""
    feat = features or arch.features
    head = arch.head
    fields = {
        "hidden": [[d.out, d.act, d.bias] for d in head.hidden],
        "classifier": head.classifier,
        "bias": head.classifier_bias,
        "classes": arch.num_classes,
    }
    return f"{HEAD}:{feat.c}x{feat.h}x{feat.w}:{_compact(fields)}"


def input_key(channels: int, resolution: int) -> str:
    """Key of the per-inference cost a network pays once (feeding the input, starting the runtime)."""
    return f"{INPUT}:{channels}x{resolution}x{resolution}:{{}}"


def head_arch(key: str) -> Arch:
    """The head op of `key` as a network of its own (no blocks: input = the pooled features)."""
    from nas.arch import Dense, Head

    kind, shape, body = key.split(":", 2)
    if kind != HEAD:
        raise ValueError(f"not a head key: {key}")
    c, h, w = (int(v) for v in shape.split("x"))
    fields = json.loads(body)
    head = Head(
        hidden=tuple(Dense(out=o, act=a, bias=b) for o, a, b in fields["hidden"]),
        classifier=fields["classifier"],
        classifier_bias=fields["bias"],
    )
    if h != w:
        raise ValueError(f"head keys need square features, got {shape}")
    return Arch(resolution=h, in_channels=c, num_classes=fields["classes"], stem=(), stages=(), head=head)


class ArchOps:
    """The ops of one network in order: block paths, their keys, and the head key (computed once per spec)."""

    __slots__ = ("head", "input", "keys", "paths", "sites")

    def __init__(self, arch: Arch):
        sites = arch.sites()
        self.sites = sites
        self.paths = tuple(s.path for s in sites)
        self.keys = tuple(op_key(s.x, s.block) for s in sites)
        self.head = head_key(arch, sites[-1].y if sites else None)
        self.input = input_key(arch.in_channels, arch.resolution)


_CACHE: dict[Arch, ArchOps] = {}
_CACHE_MAX = 65536


def arch_ops(arch: Arch) -> ArchOps:
    """`ArchOps` of `arch`, cached by the spec's value: a search asks for the same network many times."""
    ops = _CACHE.get(arch)
    if ops is None:
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        ops = _CACHE[arch] = ArchOps(arch)
    return ops
