"""The weight-sharing supernet: one set of weights that holds every architecture of a search space.

The weights live in an ordinary `nas.model.Net` of the space's *widest* architecture (`max_arch`): every
searchable stage at its most layers, widest output, largest expansion, largest kernel and with squeeze-excite.
A subnet (any `Arch` of the space) takes, per block of the same path (`stages[2][1]` …):

- width: the first `out` output channels of a stage; every layer of a stage and the next stage's input slice
  the same channels (they are tied by the residual adds);
- expansion: the first `mid` expanded channels; squeeze-excite: the first `se_channels` reduced channels;
- kernel: the centre k×k of the largest kernel, passed through a learned k²×k² transform (OFA's kernel
  transformation, Cai et al. ICLR 2020, Sec. 3.2; one matrix per layer and kernel size, shared by the channels,
  initialised to the identity);
- depth: the first d layers of a stage; SE on/off, activation and residual on/off have no weights of their own.

A subnet runs by calling an uninitialised `Net` of its arch (built on the meta device) with those slices as its
parameters and buffers (`torch.func.functional_call`), so a subnet inside the supernet and the same subnet
extracted with `extract` are the same module code. `sort_channels` reorders the channels by importance (L1 norm
of the weights that read them), as OFA does before it starts shrinking, so that the first channels are the ones
worth keeping. The spaces that fit are those whose searchable stages choose per stage among MBConv ops with an
expand conv and ungrouped 1×1 convs; `check_space` names the decision of any other space that does not fit.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from torch.func import functional_call

from nas.arch import Arch, Conv, InvertedResidual
from nas.errors import NasError
from nas.model import Net, build
from nas.space import SearchSpace, Stage
from nas.stages import Row, StageBuilder

_DW_WEIGHT = "dw.0.weight"


# ---------------------------------------------------------------------------------------------- space → supernet


def _stage_values(space: SearchSpace, st: Stage) -> dict[str, list[Any]]:
    """Every value each dimension of a searchable stage can take, presets resolved."""
    values: dict[str, list[Any]] = {d: list(st.choices(d)) for d, _ in st.dims}
    for op in st.choices("op"):
        preset = space.ops_presets.get(op)
        for dim, v in preset.fixed if preset else ():
            values[dim].append(v)
    return values


def _op_kind(space: SearchSpace, op: str) -> str:
    preset = space.ops_presets.get(op)
    return preset.kind if preset else op


def check_space(space: SearchSpace) -> None:
    """NasError naming the first decision (or part) of `space` that the elastic MBConv blocks cannot hold."""
    elastic_seen = False
    for st in space.stages:
        if st.fixed:
            if elastic_seen:
                raise NasError(
                    f"space {space.name}: stage{st.index} is a fixed stage after a searchable one; the supernet "
                    "needs fixed input channels for fixed blocks"
                )
            continue
        elastic_seen = True
        where = f"space {space.name}: decision stage{st.index}"
        if st.per_layer:
            dim = st.layer_dims()[0] if st.layer_dims() else "op"
            raise NasError(
                f"{where}.layer0.{dim} does not fit the supernet: it needs one op per stage (choose: stage)"
            )
        kinds = {_op_kind(space, op) for op in st.choices("op")}
        if kinds != {"mbconv"}:
            raise NasError(
                f"{where}.op ({', '.join(map(str, st.choices('op')))}) does not fit the supernet: its elastic "
                "blocks are MBConv only"
            )
        values = _stage_values(space, st)
        if any(g != 1 for g in values["groups"]):
            raise NasError(f"{where}.groups does not fit the supernet: grouped 1×1 convs cannot be sliced")
        if any(e <= 1 for e in values["expansion"]):
            raise NasError(
                f"{where}.expansion includes {min(values['expansion'])}: the supernet needs an expand conv "
                "(expansion > 1) in every MBConv"
            )
    if elastic_seen and (not space.head.blocks or not isinstance(space.head.blocks[0], Conv)):
        raise NasError(
            f"space {space.name}: head must start with a conv block (it reads the elastic channels of the last "
            "stage)"
        )
    if elastic_seen and space.head.blocks[0].groups != 1:
        raise NasError(f"space {space.name}: head.blocks[0] is a grouped conv; the supernet cannot slice its input")
    if space.extras.get("mbconv", {}).get("bias"):
        raise NasError(f"space {space.name}: block.mbconv.bias is set; the supernet's MBConv blocks have no biases")


def _ordered(values: list[Any]) -> list[Any]:
    """Choices from least to most: numbers by value, False before True, other values (activations) as listed."""
    if all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        return sorted(values)
    if all(isinstance(v, bool) for v in values):
        return sorted(values)
    return list(values)


def extreme_choices(space: SearchSpace, largest: bool) -> dict[str, Any]:
    """The choices of the largest (or smallest) subnet: every number at its maximum (minimum); an op preset by
    its (expansion, kernel); an activation or other named choice the last (first) listed."""
    out = {}
    for d in space.decisions:
        dim = d.name.rsplit(".", 1)[1]
        if dim == "op":
            st = space.stages[int(d.name.split(".")[0][len("stage") :])]

            def size(op: str, st: Stage = st) -> tuple:
                preset = space.ops_presets.get(op)
                fixed = dict(preset.fixed) if preset else {}
                return (fixed.get("expansion", max(st.choices("expansion"))), fixed.get("kernel", 0))

            ranked = sorted(d.choices, key=size)
        else:
            ranked = _ordered(list(d.choices))
        out[d.name] = ranked[-1] if largest else ranked[0]
    return out


def max_arch(space: SearchSpace, resolution: int, num_classes: int) -> Arch:
    """The architecture whose weights hold every subnet: each searchable stage at its upper bound in every
    dimension (which no single choice need reach: an op preset may fix one of them)."""
    check_space(space)
    c = space._stem_channels()
    stages: list[list[Any]] = []
    extras = space.extras.get("mbconv", {})
    for st in space.stages:
        if st.fixed:
            stages.append(list(st.blocks))
            c = st.blocks[-1].out
            continue
        v = _stage_values(space, st)
        fields = {"se": float(max(v["se"])), "skip": True, **extras}
        row = Row("ir", st.out, repeats=st.n + max(v["layers"]), stride=st.stride, k=max(v["kernel"]),
                  e=max(v["expansion"]), act=v["act"][-1], fields=fields)
        blocks = StageBuilder(max(v["width"]), space.divisor).stage([row], c)
        c = blocks[-1].out
        stages.append(blocks)
    arch = Arch(
        resolution=resolution,
        num_classes=num_classes,
        stem=space.stem,
        stages=stages,
        head=space.head,
        in_channels=space.in_channels,
    )
    return arch.replace(name=f"{space.name}-supernet")


# ---------------------------------------------------------------------------------------------- the supernet


class Supernet(nn.Module):
    """Shared weights (`net`, a `Net` of `max_arch`) plus the kernel transforms; `forward(x, arch)` runs a subnet."""

    _calibrating = False

    def __init__(self, space: SearchSpace, num_classes: int, resolution: int):
        super().__init__()
        self.space = space
        self.max_arch = max_arch(space, resolution, num_classes)
        self.net = build(self.max_arch)
        self._index = {path: i for i, (path, _) in enumerate(self.max_arch.paths())}
        self._cin = {site.path: site.x.c for site in self.max_arch.sites()}
        self._elastic = {i for path, i in self._index.items() if self._stage_of(path) is not None}
        self.kernels = sorted({k for st in space.stages if not st.fixed for k in _stage_values(space, st)["kernel"]})
        self.transforms = nn.ParameterDict()
        for i in sorted(self._elastic):
            for k in self.kernels:
                if k < self.max_arch.blocks[i].k:
                    self.transforms[f"{i}_{k}"] = nn.Parameter(torch.eye(k * k))
        self._templates: dict[str, Net] = {}

    # -- mapping a subnet onto the shared weights

    def _stage_of(self, path: str) -> Stage | None:
        if not path.startswith("stages["):
            return None
        st = self.space.stages[int(path[len("stages[") : path.index("]")])]
        return None if st.fixed else st

    def check(self, arch: Arch) -> None:
        """NasError (one line) unless `arch` is a subnet of this supernet."""
        big = self.max_arch
        name = arch.name or arch.hash
        if arch.num_classes != big.num_classes or arch.in_channels != big.in_channels:
            raise NasError(
                f"{name}: {arch.num_classes} classes / {arch.in_channels} input channels; the supernet has "
                f"{big.num_classes} / {big.in_channels}"
            )
        if arch.head != big.head:
            raise NasError(f"{name}: its head differs from the supernet's (space {self.space.name})")
        if len(arch.stages) != len(big.stages):
            raise NasError(f"{name}: {len(arch.stages)} stages; the supernet (space {self.space.name}) has "
                           f"{len(big.stages)}")
        for site in arch.sites():
            path, b = site.path, site.block
            if path not in self._index:
                raise NasError(f"{name}: {path} is beyond the supernet's deepest stage")
            ref = big.blocks[self._index[path]]
            if self._index[path] not in self._elastic:
                if b != ref:
                    raise NasError(f"{name}: {path} is a {b.type} block unlike the supernet's fixed one there")
                continue
            if not isinstance(b, InvertedResidual):
                raise NasError(f"{name}: {path} is a {b.type} block; the supernet's stages hold MBConv blocks")
            same = ("s", "se_from", "se_gate", "se_act", "groups", "bias")
            diff = [f for f in same if getattr(b, f) != getattr(ref, f)]
            if diff:
                raise NasError(f"{name}: {path}.{diff[0]} = {getattr(b, diff[0])!r}, the supernet's is "
                               f"{getattr(ref, diff[0])!r}")
            if b.k not in self.kernels or b.k > ref.k:
                raise NasError(f"{name}: {path} has a {b.k}×{b.k} kernel; the supernet holds {self.kernels}")
            if b.out > ref.out or b.mid > ref.mid or b.se_channels(site.x.c) > ref.se_channels(self._cin[path]):
                raise NasError(f"{name}: {path} is wider than the supernet's block there")
            if not b.has_expand(site.x.c):
                raise NasError(f"{name}: {path} has no expand conv (mid = input channels)")
        head_site = [s for s in arch.sites() if s.path.startswith("head.")]
        if head_site and head_site[0].x.c > self._cin[head_site[0].path]:
            raise NasError(f"{name}: the head reads more channels than the supernet's")

    def kernel(self, i: int, k: int) -> torch.Tensor:
        """The depthwise kernel of block `i` at size k: centre crops of the largest, each through its transform."""
        w = self.net.features[i].dw[0].weight
        size = w.shape[-1]
        for kk in sorted((x for x in self.kernels if k <= x < size), reverse=True):
            start = (w.shape[-1] - kk) // 2
            centre = w[:, :, start : start + kk, start : start + kk]
            w = (centre.reshape(centre.shape[0], kk * kk) @ self.transforms[f"{i}_{kk}"]).reshape(centre.shape)
        return w

    def subnet_state(self, arch: Arch) -> dict[str, torch.Tensor]:
        """The parameters and buffers of `nas.model.build(arch)`, as views into (or, for a transformed kernel,
        functions of) the shared weights: load them into a `Net` of `arch`, or run them with `forward`."""
        shared = dict(self.net.named_parameters()) | dict(self.net.named_buffers())
        paths = [path for path, _ in arch.paths()]
        out = {}
        for key, ref in self._template(arch).state_dict(keep_vars=True).items():
            src = key
            if key.startswith("features."):
                _, i, rest = key.split(".", 2)
                j = self._index[paths[int(i)]]
                src = f"features.{j}.{rest}"
                if rest == _DW_WEIGHT and ref.shape[-1] != shared[src].shape[-1]:
                    out[key] = self.kernel(j, ref.shape[-1])[: ref.shape[0]]
                    continue
            t = shared[src]
            out[key] = t[tuple(slice(0, n) for n in ref.shape)] if t.dim() else t
        return out

    def _template(self, arch: Arch) -> Net:
        """A `Net` of `arch` without storage (meta device): the module code a subnet runs with shared weights."""
        key = arch.hash
        if key not in self._templates:
            if len(self._templates) >= 64:
                self._templates.pop(next(iter(self._templates)))
            with torch.device("meta"):
                self._templates[key] = Net(arch)
        return self._templates[key]

    def forward(self, x: torch.Tensor, arch: Arch | None = None) -> torch.Tensor:
        """Logits of subnet `arch` (default: the largest, `max_arch`). BatchNorm and dropout follow this module's
        train/eval mode, or `calibrating`'s."""
        arch = arch or self.max_arch
        template = self._template(arch)
        template.train(self.training)
        if self._calibrating:
            for m in template.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.train()
                    m.momentum = None
        else:
            for m in template.modules():
                if isinstance(m, nn.BatchNorm2d):
                    m.momentum = 0.1
        return functional_call(template, self.subnet_state(arch), (x,))

    @contextmanager
    def calibrating(self) -> Iterator[None]:
        """Reset every BatchNorm statistic; inside, forwards (no dropout) accumulate a plain average of the batch
        statistics, as `nn.BatchNorm2d(momentum=None)` does."""
        for m in self.net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
        was = self.training
        self.eval()
        self._calibrating = True
        try:
            yield
        finally:
            self._calibrating = False
            self.train(was)

    def extract(self, arch: Arch) -> Net:
        """A stand-alone `nas.model.build(arch)` holding a copy of the subnet's shared weights (and BN stats)."""
        self.check(arch)
        net = build(arch)
        with torch.no_grad():
            net.load_state_dict({k: v.detach().clone() for k, v in self.subnet_state(arch).items()})
        net.eval()
        return net

    # -- sampling

    def largest(self) -> Arch:
        return self._decode(extreme_choices(self.space, largest=True))

    def smallest(self) -> Arch:
        return self._decode(extreme_choices(self.space, largest=False))

    def random_subnet(self, rng: random.Random) -> Arch:
        return self._decode(self.space.random_choices(rng))

    def _decode(self, choices: Mapping[str, Any]) -> Arch:
        big = self.max_arch
        return self.space.arch(choices, resolution=big.resolution, num_classes=big.num_classes)

    # -- channel importance

    @torch.no_grad()
    def sort_channels(self, optimizer: torch.optim.Optimizer | None = None) -> None:
        """Reorder every elastic channel group by importance, most important first (OFA): expanded channels by
        the L1 norm of the project conv's weights that read them, squeeze-excite channels by the expand conv's,
        a stage's output channels (tied by the residual adds) by the L1 norm of all its project filters. The
        largest subnet computes the same function before and after; `optimizer`'s momentum follows the weights."""
        feats = self.net.features
        state = optimizer.state if optimizer is not None else {}

        def permute(t: torch.Tensor, dim: int, order: torch.Tensor) -> None:
            t.copy_(t.index_select(dim, order))
            buf = state.get(t, {}).get("momentum_buffer") if isinstance(t, nn.Parameter) else None
            if buf is not None:
                buf.copy_(buf.index_select(dim, order))

        def permute_bn(bn: nn.BatchNorm2d, order: torch.Tensor) -> None:
            for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                permute(t, 0, order)

        for i in sorted(self._elastic):
            m = feats[i]
            if not isinstance(m.se, nn.Identity):
                order = m.se.expand.weight.abs().sum((0, 2, 3)).argsort(descending=True)
                permute(m.se.reduce.weight, 0, order)
                permute(m.se.reduce.bias, 0, order)
                permute(m.se.expand.weight, 1, order)
            order = m.project[0].weight.abs().sum((0, 2, 3)).argsort(descending=True)
            permute(m.expand[0].weight, 0, order)
            permute_bn(m.expand[1], order)
            permute(m.dw[0].weight, 0, order)
            permute_bn(m.dw[1], order)
            if not isinstance(m.se, nn.Identity):
                permute(m.se.reduce.weight, 1, order)
                permute(m.se.expand.weight, 0, order)
                permute(m.se.expand.bias, 0, order)
            permute(m.project[0].weight, 1, order)
        # Stage outputs: producers are the stage's project convs, consumers the next expand convs or head conv.
        by_stage: dict[int, list[int]] = {}
        for path, i in self._index.items():
            if i in self._elastic:
                by_stage.setdefault(int(path[len("stages[") : path.index("]")]), []).append(i)
        for layers in by_stage.values():
            order = sum(feats[i].project[0].weight.abs().sum((1, 2, 3)) for i in layers).argsort(descending=True)
            for i in layers:
                permute(feats[i].project[0].weight, 0, order)
                permute_bn(feats[i].project[1], order)
            for i in [*layers[1:], layers[-1] + 1]:
                consumer = feats[i]
                conv = consumer.expand[0] if i in self._elastic else consumer[0]
                permute(conv.weight, 1, order)

