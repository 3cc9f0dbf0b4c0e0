"""The builders agree with the spec: parameters and MACs of every built module equal `Arch.costs()` exactly,
and every block produces the shape its spec promises."""

from __future__ import annotations

import pytest
import torch

from nas import zoo
from nas.arch import (
    BLOCK_TYPES,
    Arch,
    Conv,
    Dense,
    DepthwiseSeparable,
    Fire,
    Ghost,
    Head,
    InvertedResidual,
    Pool,
    SeparableConv,
    ShuffleV1,
    ShuffleV2,
    XceptionBlock,
)
from nas.model import build, count_macs, count_params

torch.set_num_threads(1)

VARIANTS = [v.name for v in zoo.variants()]

# MACs at the reference resolution (and 1000 classes) for a few nets whose layers round sizes differently:
# ceil-mode pools (SqueezeNet), unpadded convs at 299 (Xception), pooled shortcuts (ShuffleNetV1), SE and a
# dense head (GhostNet).
AT_REFERENCE_RESOLUTION = ["squeezenet_1_0", "shufflenet_v1_g3_100", "ghostnet_100", "xception"]


def _check(arch: Arch) -> torch.nn.Module:
    """Build `arch`, compare counts with the spec, and return the module."""
    net = build(arch)
    assert count_params(net) == arch.params
    assert count_macs(net, arch) == arch.macs
    return net


@pytest.mark.parametrize("name", VARIANTS)
def test_zoo_variant_matches_spec(name: str) -> None:
    # Parameters do not depend on the resolution: check them with the real classifier.
    arch = zoo.get(name)
    assert count_params(build(arch)) == arch.params
    # MACs and shapes at a resolution none of the nets was designed for, with a 10-class classifier.
    small = zoo.get(name, resolution=160, num_classes=10)
    net = _check(small)
    with torch.no_grad():
        features = net.forward_features(torch.zeros(2, 3, 160, 160))
        logits = net(torch.zeros(2, 3, 160, 160))
    f = small.features
    assert tuple(features.shape) == (2, f.c, f.h, f.w)
    assert tuple(logits.shape) == (2, 10)


@pytest.mark.parametrize("name", [n for n in AT_REFERENCE_RESOLUTION if n in VARIANTS])
def test_zoo_macs_at_reference_resolution(name: str) -> None:
    arch = zoo.get(name)
    assert count_macs(build(arch), arch) == arch.macs


# ------------------------------------------------------------------------------------------ every block type

# Small hand-made networks that together use every block type and the options that change its cost.
HAND_MADE: dict[str, Arch] = {
    "conv_pool_dense": Arch(
        resolution=39,  # odd and even sizes along the way, so that ceil-mode pools round up
        num_classes=7,
        in_channels=1,
        stem=[Conv(out=16, k=3, s=2)],
        stages=[
            [
                Conv(out=32, k=5, groups=4, bias=True, bn=False, act="hswish"),
                Conv(out=32, k=3, pad=0, act="none", bias=True),
                Pool(out=32, kind="avg", k=3, s=2, pad=1, ceil=True),
                Pool(out=32, kind="max", k=2, s=2),
            ]
        ],
        head=Head(
            hidden=(Dense(out=64, act="relu6", bias=False), Dense(out=48, act="swish")),
            dropout=0.1,
            classifier_bias=False,
        ),
    ),
    "pool_edges": Arch(
        resolution=10,
        num_classes=3,
        stem=[Conv(out=8, k=3, s=2)],
        stages=[
            [
                # ceil mode: PyTorch drops a last window that would start in the padding (5 → 3, not 4)
                Pool(out=8, kind="max", k=2, s=2, pad=1, ceil=True),
                Pool(out=8, kind="avg", k=3, s=2, pad=1, ceil=True),
            ]
        ],
    ),
    "ds": Arch(
        resolution=33,
        num_classes=5,
        stem=[Conv(out=16, k=3, s=2, act="relu6")],
        stages=[
            [
                DepthwiseSeparable(out=16, act="relu6", pw_act=True, se=0.25, se_from="in"),
                DepthwiseSeparable(out=16),
                DepthwiseSeparable(out=16, skip=False),
                DepthwiseSeparable(
                    out=24, k=5, s=2, se=0.5, se_from="mid", se_gate="hsigmoid", se_act="hswish"
                ),
            ]
        ],
    ),
    "ir": Arch(
        resolution=33,
        num_classes=5,
        stem=[Conv(out=16, k=3, s=2)],
        stages=[
            [
                InvertedResidual(out=16, mid=16, se=0.25, se_from="in", se_gate="sigmoid"),
                InvertedResidual(out=16, mid=48, act="hswish"),
                InvertedResidual(out=16, mid=48, skip=False),
                InvertedResidual(out=24, mid=64, k=5, s=2, se=0.25, se_from="mid", act="swish"),
                InvertedResidual(out=24, mid=48, groups=2, bias=True),
                InvertedResidual(out=32, mid=96, groups=4, s=2, bias=True, se=0.25),
            ]
        ],
        head=Head(blocks=(Conv(out=64, k=1, act="hswish"),), hidden=(Dense(out=80),)),
    ),
    "ghost": Arch(
        resolution=33,
        num_classes=5,
        stem=[Conv(out=16, k=3, s=2)],
        stages=[
            [
                Ghost(out=16, mid=16),
                Ghost(out=24, mid=47, se=0.25),  # odd widths: the ghost module makes one channel too many
                Ghost(out=40, mid=72, k=5, s=2, se=0.25),
                Ghost(out=41, mid=64),  # shortcut conv at stride 1
                Ghost(out=41, mid=64, s=2),  # shortcut conv with unchanged channels
            ]
        ],
    ),
    "shuffle": Arch(
        resolution=35,
        num_classes=5,
        stem=[Conv(out=24, k=3, s=2), Pool(out=24, kind="max", k=3, s=2, pad=1)],
        stages=[
            [
                ShuffleV1(out=120, mid=30, groups=3, s=2, first_group=False),
                ShuffleV1(out=120, mid=30, groups=3),
                ShuffleV1(out=240, mid=60, groups=3, s=2),
                ShuffleV1(out=240, mid=64, groups=1),
            ],
            [ShuffleV2(out=64, s=2), ShuffleV2(out=64), ShuffleV2(out=128, s=2)],
        ],
        head=Head(classifier_bias=False),
    ),
    "fire_conv_classifier": Arch(
        resolution=41,
        num_classes=6,
        stem=[
            Conv(out=32, k=3, s=2, pad=0, bn=False, bias=True),
            Pool(out=32, kind="max", k=3, s=2, ceil=True),
        ],
        stages=[[Fire(out=64, squeeze=8, e1=32), Fire(out=48, squeeze=12, e1=16)]],
        head=Head(dropout=0.5, classifier="conv"),
    ),
    "fire_conv_classifier_nobias": Arch(
        resolution=32,
        num_classes=6,
        stem=[Conv(out=16, k=3, s=2, bn=False, bias=True)],
        stages=[[Fire(out=24, squeeze=4, e1=8)]],
        head=Head(classifier="conv", classifier_bias=False),
    ),
    "xception": Arch(
        resolution=41,
        num_classes=5,
        stem=[Conv(out=16, k=3, s=2, pad=0)],
        stages=[
            [
                XceptionBlock(out=32, reps=2, s=2, start_relu=False),
                XceptionBlock(out=32, reps=3),
                XceptionBlock(out=48, reps=2),  # shortcut conv at stride 1
                XceptionBlock(out=64, reps=2, s=2, grow_first=False),
            ]
        ],
        head=Head(blocks=(SeparableConv(out=80, s=2), SeparableConv(out=96, k=5, act="hswish"))),
    ),
}


def test_hand_made_networks_cover_every_block_type() -> None:
    used = {block.type for arch in HAND_MADE.values() for block in arch.blocks}
    assert used == set(BLOCK_TYPES)


@pytest.mark.parametrize("name", sorted(HAND_MADE))
def test_hand_made_network_matches_spec(name: str) -> None:
    arch = HAND_MADE[name]
    net = _check(arch)
    net.eval()
    with torch.no_grad():
        # Block by block, so that a mismatch names the block: parameters and output shape.
        for site, module in zip(arch.sites(), net.features, strict=True):
            assert count_params(module) == site.cost.params, site.path
            y = module(torch.randn(2, site.x.c, site.x.h, site.x.w))
            assert tuple(y.shape) == (2, site.y.c, site.y.h, site.y.w), site.path
        out = net(torch.randn(3, arch.in_channels, arch.resolution, arch.resolution))
    assert tuple(out.shape) == (3, arch.num_classes)
    assert torch.isfinite(out).all()


def test_residual_and_skip_flags_change_the_module() -> None:
    """`skip=False` must really drop the residual: with zero weights in the branch, only the skip passes x."""
    for skip in (True, False):
        arch = Arch(
            resolution=8,
            num_classes=2,
            in_channels=4,
            stem=[],
            stages=[[InvertedResidual(out=4, mid=8, skip=skip)]],
        )
        net = build(arch).eval()
        for p in net.features.parameters():
            torch.nn.init.zeros_(p)
        x = torch.randn(1, 4, 8, 8)
        with torch.no_grad():
            y = net.features(x)
        assert torch.equal(y, x) is skip


def test_load_refuses_a_spec_past_the_limits_before_building(tmp_path, monkeypatch) -> None:
    """A file asking for 10^9 channels is refused from the spec: torch's allocator is never reached."""
    import json

    import nas
    from nas.errors import NasError

    spec = json.loads(zoo.get("mobilenet_v3_small", resolution=32).to_json())
    spec["stages"][0][0]["out"] = 10**9
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(spec))

    def no_torch(*_args, **_kwargs):
        raise AssertionError("a module was built")

    monkeypatch.setattr(torch.nn.Conv2d, "__init__", no_torch)
    with pytest.raises(NasError, match=r"huge\.json: .*stages\[0\]\[0\].*\.out: 1000000000 is above the limit"):
        nas.load(str(path))
