"""Export an architecture (and its weights) to the formats other tools read.

Formats: `json` (the canonical spec), `timm` (timm-style block strings of the stages), `pytorch` (a
self-contained `.py` module that needs only torch, plus a `state_dict` `.pt` when there are weights),
`torchscript` and `onnx` (each checked against the torch model on random input before it is kept).

Every format is first written into a hidden temporary directory inside the output directory and checked
there; only when all requested formats succeeded are the files moved into place (each move an atomic
rename), so a failure leaves nothing half-written.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import tempfile
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nas.arch import Arch, BlockSite, SpecError
from nas.block_strings import STYLES, timm_strings
from nas.errors import NasError
from nas.io import atomic_write, import_file, read_state_dict, writable_dir, write_json, write_text
from nas.sources import resolve, resolve_front

FORMATS = ("json", "timm", "pytorch", "torchscript", "onnx")
CHOICES = (*FORMATS, "all")
TOLERANCE = 1e-4  # max abs difference allowed between an exported runtime's output and torch's
# …and relative to the output's scale: freshly initialised logits are far below 1e-4 (docs/zoo.md), where an
# absolute tolerance alone proves nothing.
RELATIVE_TOLERANCE = 1e-3
ONNX_OPSET = 17

def file_stem(arch: Arch) -> str:
    """Base name of the exported files: the arch's name as a Python identifier (the `.py` is imported)."""
    return _identifier(arch.name, fallback=f"arch_{arch.hash}")


def _identifier(text: str, fallback: str) -> str:
    stem = re.sub(r"\W", "_", text, flags=re.ASCII).strip("_")
    if not stem:
        return fallback
    return stem if stem[0].isalpha() else f"arch_{stem}"


def plan(arch: Arch, fmt: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Formats to write for `fmt`, and (format, reason) for those `all` skips because the arch cannot be
    expressed in them (a named format that cannot express it is an error)."""
    if fmt not in CHOICES:
        raise NasError(f"unknown export format {fmt!r} (known: {', '.join(CHOICES)})")
    if fmt == "timm":
        timm_strings(arch)  # SpecError before any directory is made
    if fmt != "all":
        return [fmt], []
    formats, skipped = [], []
    for name in FORMATS:
        if name == "timm":
            try:
                timm_strings(arch)
            except SpecError as err:
                skipped.append((name, str(err)))
                continue
        formats.append(name)
    return formats, skipped


@dataclass(frozen=True)
class ExportReport:
    """What one export wrote: `to_dict()` is the document `nas export --json` prints."""

    arch: Arch
    out: Path
    formats: list[str]
    skipped: list[tuple[str, str]]  # (format, why `all` left it out)
    weights: Path | None
    files: list[Path]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.arch.name,
            "hash": self.arch.hash,
            "formats": self.formats,
            "skipped": [{"format": f, "reason": reason} for f, reason in self.skipped],
            "weights": str(self.weights) if self.weights else None,
            "files": [str(p) for p in self.files],
        }


def export_source(
    source: str,
    fmt: str,
    out: str | Path,
    *,
    weights: str | Path | None = None,
    width: float | None = None,
    resolution: int | None = None,
    trial: int | None = None,
    pareto: bool = False,
) -> list[ExportReport]:
    """`nas export`: SOURCE (a zoo name, an architecture file, a search run or a NetAdapt result, see
    `nas.sources`) written in format `fmt` into `out`; with `pareto`, every point of a search run's Pareto
    front into a folder of its own under `out`. Every check (format, width, resolution, names, weights,
    output directory) is made here, before anything is written."""
    if fmt not in CHOICES:
        raise NasError(f"unknown export format {fmt!r} (known: {', '.join(CHOICES)})")
    if pareto:
        if trial is not None or weights:
            raise NasError("--pareto exports the whole front: give neither --trial nor --weights")
        if width is not None:
            raise NasError("--width applies to zoo names; an architecture holds resolved channel counts")
        archs = resolve_front(source, resolution=resolution)
        return [_export_report(arch, fmt, Path(out) / arch.name, None) for arch in archs]
    arch, source_weights = resolve(source, width=width, resolution=resolution, trial=trial)
    return [_export_report(arch, fmt, Path(out), Path(weights) if weights else source_weights)]


def _export_report(arch: Arch, fmt: str, out: Path, weights: Path | None) -> ExportReport:
    formats, skipped = plan(arch, fmt)
    files = export(arch, fmt, out, weights=weights)
    return ExportReport(arch, out, formats, skipped, weights, files)


def export(arch: Arch, fmt: str, out_dir: str | Path, weights: Any = None) -> list[Path]:
    """Write `arch` (with `weights`: a state_dict file or mapping) in format `fmt` into `out_dir`.

    Returns the paths written. Raises NasError (nothing written) for an unknown format, an unwritable
    directory, weights that do not fit, or an arch the format cannot express."""
    formats, _ = plan(arch, fmt)
    existed = Path(out_dir).exists()
    out = writable_dir(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=".nas-export-", dir=out))
    ok = False
    try:
        needs_model = weights is not None or bool(set(formats) & {"pytorch", "torchscript", "onnx"})
        model = _model(arch, weights) if needs_model else None
        stem = file_stem(arch)
        staged: dict[str, Path] = {}
        for name in formats:
            for path in WRITERS[name](arch, model, staging, stem, weights is not None):
                staged[path.name] = path
        written = []
        for name, path in staged.items():
            os.replace(path, out / name)
            written.append(out / name)
        ok = True
        return written
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not ok and not existed:
            with contextlib.suppress(OSError):
                out.rmdir()  # only when empty: a failed export into a new directory leaves no trace


def _model(arch: Arch, weights: Any) -> Any:
    """The torch model of `arch` in eval mode, with `weights` loaded (NasError when they do not fit)."""

    import nas
    from nas.model import build

    if weights is None:
        return nas.load(arch).eval()
    if isinstance(weights, str | Path):
        weights = read_state_dict(weights)
    net = build(arch)
    try:
        net.load_state_dict(weights)
    except (RuntimeError, TypeError) as err:
        lines = [line.strip() for line in str(err).strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else err
        raise NasError(f"weights do not fit {arch.name or 'the architecture'}: {reason}") from None
    return net.eval()


def _inputs(arch: Arch, batch: int = 2) -> Any:
    import torch

    gen = torch.Generator().manual_seed(0)
    return torch.randn(batch, arch.in_channels, arch.resolution, arch.resolution, generator=gen)


def _check(what: str, got: Any, want: Any) -> None:
    import numpy as np

    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    if got.shape != want.shape:
        raise NasError(f"{what} export check failed: output shape {got.shape}, torch gives {want.shape}")
    diff = float(np.abs(got - want).max())
    allowed = min(TOLERANCE, RELATIVE_TOLERANCE * float(np.abs(want).max()) + 1e-12)
    if not diff <= allowed:
        raise NasError(f"{what} export check failed: max abs diff {diff:.3g} from torch (> {allowed:.3g})")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence torch's deprecation notices for torch.jit and the legacy ONNX exporter (both work in 2.13)."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning, UserWarning):
            warnings.simplefilter("ignore", category)
        yield


# ---------------------------------------------------------------------------------------------- writers


def _write_json(arch: Arch, model: Any, tmp: Path, stem: str, has_weights: bool) -> list[Path]:
    paths = [write_text(tmp / f"{stem}.json", arch.to_json())]
    if has_weights:
        paths.append(_write_state_dict(model, tmp / f"{stem}.pt"))
    return paths


def _write_timm(arch: Arch, model: Any, tmp: Path, stem: str, has_weights: bool) -> list[Path]:
    style, strings = timm_strings(arch)
    spec = arch.to_dict()
    doc = {
        "format": "timm-block-strings",
        "name": arch.name,
        "arch_hash": arch.hash,
        "resolution": arch.resolution,
        "in_channels": arch.in_channels,
        "num_classes": arch.num_classes,
        "stem": spec["stem"],
        "style": {"name": style.lower(), **dataclasses.asdict(STYLES[style])},
        "arch_def": strings,
        "head": spec["head"],
    }
    return [write_json(tmp / f"{stem}.timm.json", doc)]


def _write_state_dict(model: Any, path: Path) -> Path:
    import torch

    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def _write_pytorch(arch: Arch, model: Any, tmp: Path, stem: str, has_weights: bool) -> list[Path]:
    py = write_text(tmp / f"{stem}.py", pytorch_source(arch, stem))
    paths = [py]
    if has_weights:
        paths.append(_write_state_dict(model, tmp / f"{stem}.pt"))
    check_pytorch_module(py, model, arch)
    return paths


def _write_torchscript(arch: Arch, model: Any, tmp: Path, stem: str, has_weights: bool) -> list[Path]:
    import torch

    x = _inputs(arch)
    with _quiet(), torch.no_grad():
        traced = torch.jit.trace(model, x)
        path = atomic_write(tmp / f"{stem}.torchscript.pt", lambda t: torch.jit.save(traced, str(t)))
        _check("torchscript", torch.jit.load(str(path))(x).numpy(), model(x).numpy())
    return [path]


def _write_onnx(arch: Arch, model: Any, tmp: Path, stem: str, has_weights: bool) -> list[Path]:
    import onnxruntime as ort
    import torch

    x = _inputs(arch)

    def write(t: Path) -> None:
        with _quiet():
            torch.onnx.export(
                model, (x,), str(t), dynamo=False, opset_version=ONNX_OPSET, input_names=["input"],
                output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            )

    path = atomic_write(tmp / f"{stem}.onnx", write)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        _check("onnx", session.run(None, {"input": x.numpy()})[0], model(x).numpy())
    return [path]


WRITERS: dict[str, Callable[[Arch, Any, Path, str, bool], list[Path]]] = {
    "json": _write_json,
    "timm": _write_timm,
    "pytorch": _write_pytorch,
    "torchscript": _write_torchscript,
    "onnx": _write_onnx,
}


# ---------------------------------------------------------------------------------------------- pytorch
# The generated module mirrors nas.model's module tree exactly (same child names, same order), so a
# state_dict of `nas.model.build(arch)` loads into it and both compute the same function. The classes take
# plain numbers rather than spec blocks: the file must not need `nas`.

_PRELUDE = '''\
import torch
from torch import nn


def _act(name: str) -> nn.Module:
    if name == "none":
        return nn.Identity()
    return {"relu": nn.ReLU, "relu6": nn.ReLU6, "hswish": nn.Hardswish, "swish": nn.SiLU}[name](inplace=True)


class ConvBNAct(nn.Sequential):
    def __init__(self, cin, cout, k=1, s=1, groups=1, act="relu", bn=True, bias=False, pad=None):
        layers = [nn.Conv2d(cin, cout, k, s, k // 2 if pad is None else pad, groups=groups, bias=bias)]
        if bn:
            layers.append(nn.BatchNorm2d(cout))
        if act != "none":
            layers.append(_act(act))
        super().__init__(*layers)
'''

_CLASSES: dict[str, tuple[tuple[str, ...], str]] = {
    "SqueezeExcite": ((), '''
class SqueezeExcite(nn.Module):
    def __init__(self, ch, rd, act="relu", gate="sigmoid"):
        super().__init__()
        self.reduce = nn.Conv2d(ch, rd, 1, bias=True)
        self.act = _act(act)
        self.expand = nn.Conv2d(rd, ch, 1, bias=True)
        self.gate = nn.Hardsigmoid(inplace=True) if gate == "hsigmoid" else nn.Sigmoid()

    def forward(self, x):
        return x * self.gate(self.expand(self.act(self.reduce(x.mean((2, 3), keepdim=True)))))
'''),
    "ChannelShuffle": ((), '''
class ChannelShuffle(nn.Module):
    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        n, c, h, w = x.shape
        return x.view(n, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(n, c, h, w)
'''),
    "DSConv": (("SqueezeExcite",), '''
class DSConv(nn.Module):
    def __init__(self, cin, cout, k, s, act, pw_act, se_rd, se_act, se_gate, residual):
        super().__init__()
        self.residual = residual
        self.dw = ConvBNAct(cin, cin, k, s, groups=cin, act=act)
        self.se = SqueezeExcite(cin, se_rd, se_act, se_gate) if se_rd else nn.Identity()
        self.pw = ConvBNAct(cin, cout, 1, act=act if pw_act else "none")

    def forward(self, x):
        y = self.pw(self.se(self.dw(x)))
        return x + y if self.residual else y
'''),
    "MBConv": (("SqueezeExcite", "ChannelShuffle"), '''
class MBConv(nn.Module):
    def __init__(self, cin, mid, cout, k, s, act, se_rd, se_act, se_gate, groups, bias, expand, residual):
        super().__init__()
        self.residual = residual
        self.expand = ConvBNAct(cin, mid, 1, groups=groups, act=act, bias=bias) if expand else nn.Identity()
        self.shuffle = ChannelShuffle(groups) if groups > 1 else nn.Identity()
        self.dw = ConvBNAct(mid, mid, k, s, groups=mid, act=act, bias=bias)
        self.se = SqueezeExcite(mid, se_rd, se_act, se_gate) if se_rd else nn.Identity()
        self.project = ConvBNAct(mid, cout, 1, groups=groups, act="none", bias=bias)

    def forward(self, x):
        y = self.project(self.se(self.dw(self.shuffle(self.expand(x)))))
        return x + y if self.residual else y
'''),
    "GhostBottleneck": (("SqueezeExcite",), '''
class GhostModule(nn.Module):
    def __init__(self, cin, cout, act):
        super().__init__()
        self.cout = cout
        init = (cout + 1) // 2
        a = "relu" if act else "none"
        self.primary = ConvBNAct(cin, init, 1, act=a)
        self.cheap = ConvBNAct(init, init, 3, groups=init, act=a)

    def forward(self, x):
        y = self.primary(x)
        return torch.cat([y, self.cheap(y)], 1)[:, : self.cout]


class GhostBottleneck(nn.Module):
    def __init__(self, cin, mid, cout, k, s, se_rd, residual):
        super().__init__()
        self.ghost1 = GhostModule(cin, mid, act=True)
        self.dw = ConvBNAct(mid, mid, k, s, groups=mid, act="none") if s > 1 else nn.Identity()
        self.se = SqueezeExcite(mid, se_rd, "relu", "hsigmoid") if se_rd else nn.Identity()
        self.ghost2 = GhostModule(mid, cout, act=False)
        if residual:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Sequential(
                ConvBNAct(cin, cin, k, s, groups=cin, act="none"), ConvBNAct(cin, cout, 1, act="none")
            )

    def forward(self, x):
        return self.ghost2(self.se(self.dw(self.ghost1(x)))) + self.shortcut(x)
'''),
    "ShuffleV1Unit": (("ChannelShuffle",), '''
class ShuffleV1Unit(nn.Module):
    def __init__(self, cin, mid, branch_out, groups, first_groups, s):
        super().__init__()
        self.stride = s
        self.branch = nn.Sequential(
            ConvBNAct(cin, mid, 1, groups=first_groups),
            ChannelShuffle(groups) if groups > 1 else nn.Identity(),
            ConvBNAct(mid, mid, 3, s, groups=mid, act="none"),
            ConvBNAct(mid, branch_out, 1, groups=groups, act="none"),
        )
        self.pool = nn.AvgPool2d(3, 2, 1) if s > 1 else nn.Identity()

    def forward(self, x):
        y = self.branch(x)
        if self.stride > 1:
            return torch.cat([self.pool(x), torch.relu(y)], 1)
        return torch.relu(x + y)
'''),
    "ShuffleV2Unit": (("ChannelShuffle",), '''
class ShuffleV2Unit(nn.Module):
    def __init__(self, cin, cout, s):
        super().__init__()
        self.stride = s
        half = cout // 2
        if s > 1:
            self.left = nn.Sequential(
                ConvBNAct(cin, cin, 3, s, groups=cin, act="none"), ConvBNAct(cin, half, 1)
            )
        else:
            self.left = nn.Identity()
        self.right = nn.Sequential(
            ConvBNAct(cin if s > 1 else half, half, 1),
            ConvBNAct(half, half, 3, s, groups=half, act="none"),
            ConvBNAct(half, half, 1),
        )
        self.shuffle = ChannelShuffle(2)

    def forward(self, x):
        if self.stride > 1:
            y = torch.cat([self.left(x), self.right(x)], 1)
        else:
            a, b = x.chunk(2, dim=1)
            y = torch.cat([a, self.right(b)], 1)
        return self.shuffle(y)
'''),
    "FireModule": ((), '''
class FireModule(nn.Module):
    def __init__(self, cin, squeeze, e1, e3):
        super().__init__()
        self.squeeze = ConvBNAct(cin, squeeze, 1, bn=False, bias=True)
        self.expand1 = ConvBNAct(squeeze, e1, 1, bn=False, bias=True)
        self.expand3 = ConvBNAct(squeeze, e3, 3, bn=False, bias=True)

    def forward(self, x):
        s = self.squeeze(x)
        return torch.cat([self.expand1(s), self.expand3(s)], 1)
'''),
    "SepConv": ((), '''
class SepConv(nn.Sequential):
    def __init__(self, cin, cout, k=3, s=1, act="relu", act_first=False):
        layers = [nn.ReLU()] if act_first else []
        layers += [
            nn.Conv2d(cin, cin, k, s, k // 2, groups=cin, bias=False),
            nn.Conv2d(cin, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if not act_first and act != "none":
            layers.append(_act(act))
        super().__init__(*layers)
'''),
    "XceptionUnit": (("SepConv",), '''
class XceptionUnit(nn.Module):
    def __init__(self, cin, cout, seps, s, start_relu, residual):
        super().__init__()
        reps = [SepConv(ci, co, act_first=(i > 0 or start_relu)) for i, (ci, co) in enumerate(seps)]
        if s > 1:
            reps.append(nn.MaxPool2d(3, s, 1))
        self.rep = nn.Sequential(*reps)
        self.skip = nn.Identity() if residual else ConvBNAct(cin, cout, 1, s, act="none")

    def forward(self, x):
        return self.rep(x) + self.skip(x)
'''),
}

_NET = '''
class Net(nn.Module):
    def __init__(self, features, width, hidden, dropout, classifier, classifier_bias, num_classes):
        super().__init__()
        self.conv_classifier = classifier == "conv"
        self.features = nn.Sequential(*features)
        layers = []
        for out, act, bias in hidden:
            layers += [nn.Linear(width, out, bias=bias), _act(act)]
            width = out
        self.hidden = nn.Sequential(*layers)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        if self.conv_classifier:
            self.classifier = nn.Sequential(
                nn.Conv2d(width, num_classes, 1, bias=classifier_bias), nn.ReLU(inplace=True)
            )
        else:
            self.classifier = nn.Linear(width, num_classes, bias=classifier_bias)

    def forward(self, x):
        x = self.features(x)
        if self.conv_classifier:
            return self.classifier(self.dropout(x)).mean((2, 3))
        return self.classifier(self.dropout(self.hidden(x.mean((2, 3)))))
'''


def _lit(value: Any) -> str:
    """`value` as a Python literal, for plain data only: nothing a spec holds reaches generated code as text."""
    if isinstance(value, bool | int | float | str) or value is None:
        return repr(value)
    if isinstance(value, list | tuple):
        items = ", ".join(_lit(v) for v in value)
        return f"({items},)" if isinstance(value, tuple) and len(value) == 1 else (
            f"({items})" if isinstance(value, tuple) else f"[{items}]"
        )
    raise SpecError(f"the pytorch export cannot write {type(value).__name__} values")


def _call(cls: str, *args: Any, **kwargs: Any) -> str:
    parts = [_lit(a) for a in args] + [f"{k}={_lit(v)}" for k, v in kwargs.items()]
    return f"{cls}({', '.join(parts)})"


def _constructor(site: BlockSite) -> tuple[str, str | None]:
    """(Python expression building this block's module, the generated class it needs or None)."""
    b, cin = site.block, site.x.c
    t = b.type
    if t == "conv":
        return _call("ConvBNAct", cin, b.out, b.k, b.s, b.groups, b.act, b.bn, b.bias, b.padding), None
    if t == "pool":
        if b.kind == "max":
            return _call("nn.MaxPool2d", b.k, b.s, b.pad, ceil_mode=b.ceil), None
        return _call("nn.AvgPool2d", b.k, b.s, b.pad, ceil_mode=b.ceil, count_include_pad=False), None
    if t == "ds":
        se, res = b.se_channels(cin), b.has_residual(cin)
        return _call("DSConv", cin, b.out, b.k, b.s, b.act, b.pw_act, se, b.se_act, b.se_gate, res), "DSConv"
    if t == "ir":
        args = (
            cin, b.mid, b.out, b.k, b.s, b.act, b.se_channels(cin), b.se_act, b.se_gate,
            b.groups, b.bias, b.has_expand(cin), b.has_residual(cin),
        )
        return _call("MBConv", *args), "MBConv"
    if t == "ghost":
        args = (cin, b.mid, b.out, b.k, b.s, b.se_channels(cin), b.has_residual(cin))
        return _call("GhostBottleneck", *args), "GhostBottleneck"
    if t == "shuffle_v1":
        g1 = b.groups if b.first_group else 1
        return _call("ShuffleV1Unit", cin, b.mid, b.branch_out(cin), b.groups, g1, b.s), "ShuffleV1Unit"
    if t == "shuffle_v2":
        return _call("ShuffleV2Unit", cin, b.out, b.s), "ShuffleV2Unit"
    if t == "fire":
        return _call("FireModule", cin, b.squeeze, b.e1, b.out - b.e1), "FireModule"
    if t == "sep":
        return _call("SepConv", cin, b.out, b.k, b.s, b.act), "SepConv"
    if t == "xception":
        args = (cin, b.out, b.sep_channels(cin), b.s, b.start_relu, b.has_residual(cin))
        return _call("XceptionUnit", *args), "XceptionUnit"
    raise SpecError(f"block {site.index} ({site.path}): the pytorch export does not know block type {t!r}")


def _needed(names: set[str]) -> list[str]:
    """The generated classes `names` use, dependencies first, in a fixed order."""
    order: list[str] = []

    def visit(name: str) -> None:
        for dep in _CLASSES[name][0]:
            visit(dep)
        if name not in order:
            order.append(name)

    for name in _CLASSES:
        if name in names:
            visit(name)
    return order


def pytorch_source(arch: Arch, module_name: str = "model") -> str:
    """Source of a module that needs only torch and whose `build()` makes the network of `arch`, with the
    same state_dict keys and shapes as `nas.model.build(arch)`."""
    sites = arch.sites()
    calls, classes = [], set()
    for site in sites:
        expr, cls = _constructor(site)
        calls.append(f"            {expr},  # {site.index}: {site.path}")
        if cls:
            classes.add(cls)
    h = arch.head
    hidden = [(d.out, d.act, d.bias) for d in h.hidden]
    spec = json.dumps(arch.to_dict(), sort_keys=True, separators=(",", ":"))
    spec_lines = "\n".join(f"    {spec[i:i + 96]!r}" for i in range(0, len(spec), 96))
    size = f"N×{arch.in_channels}×{arch.resolution}×{arch.resolution}"
    module_name = _identifier(module_name, fallback="model")
    # The docstring carries identifiers only; the name itself appears once, as a repr'd literal (NAME).
    header = f'''"""{file_stem(arch)}: generated by `nas export` from nas.arch/1 spec {arch.hash}.

Needs only torch. `build()` makes the network (freshly initialised by torch's defaults); `load(path)` also
loads a state_dict saved beside it, e.g. `{module_name}.pt`:

    from {module_name} import load
    model = load("{module_name}.pt")   # eval mode; input {size}
"""
'''
    body = [header, _PRELUDE]
    body += [_CLASSES[name][1] for name in _needed(classes)]
    body.append(_NET)
    body.append(f'''
NAME = {_lit(arch.name)}
ARCH_HASH = {_lit(arch.hash)}
RESOLUTION = {_lit(arch.resolution)}
IN_CHANNELS = {_lit(arch.in_channels)}
NUM_CLASSES = {_lit(arch.num_classes)}
SPEC_JSON = (
{spec_lines}
)


def build():
    return Net(
        features=[
{chr(10).join(calls)}
        ],
        width={_lit(arch.features.c)},
        hidden={_lit(hidden)},
        dropout={_lit(h.dropout)},
        classifier={_lit(h.classifier)},
        classifier_bias={_lit(h.classifier_bias)},
        num_classes={_lit(arch.num_classes)},
    )


def load(weights=None):
    """The network in eval mode, with the state_dict file `weights` loaded when given."""
    model = build()
    if weights is not None:
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval()
''')
    return "\n".join(part.strip("\n") + "\n" for part in body[:2]) + "\n\n" + "\n\n".join(
        part.strip("\n") + "\n" for part in body[2:]
    )


def import_module_file(path: Path) -> Any:
    """Import a generated module from its file."""
    return import_file(path, "_nas_export")


def _randomised(model: Any) -> Any:
    """A copy of `model` with every float tensor of its state random at unit scale, so that a generated
    module wired differently from nas.model cannot agree with it by accident (fresh logits are tiny)."""
    import copy

    import torch

    gen = torch.Generator().manual_seed(0)
    twin = copy.deepcopy(model)
    with torch.no_grad():
        for name, tensor in twin.state_dict().items():
            if tensor.dtype.is_floating_point:
                noise = torch.rand(tensor.shape, generator=gen) if "running_var" in name else torch.randn(
                    tensor.shape, generator=gen
                )
                tensor.copy_(noise * 0.5 + 0.5 if "running_var" in name else noise * 0.3)
    return twin.eval()


def check_pytorch_module(path: Path, model: Any, arch: Arch) -> None:
    """The generated module must build `model`'s exact state_dict layout and compute the same function."""
    import torch

    net = import_module_file(path).build()
    model = _randomised(model)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    if got != want:
        diff = sorted(set(got.items()) ^ set(want.items()))[:3]
        raise NasError(f"pytorch export check failed: state_dict differs from nas.model's: {diff}")
    net.load_state_dict(model.state_dict())
    net.eval()
    x = _inputs(arch)
    with torch.no_grad():
        _check("pytorch", net(x).numpy(), model(x).numpy())
