"""The MBConv-family zoo against the reference figures, and the built modules against the spec."""

from __future__ import annotations

import pytest
import torch

from nas import zoo
from nas.arch import InvertedResidual, make_divisible
from nas.model import build, count_macs, count_params

# Copied from ../shared/reference/model_zoo.csv (columns model, variant, input_res, params_exact,
# macs_counted_M; the implementation each row counts is in its params_exact_impl column: timm v1.0.31,
# torchvision v0.29.1, pytorchcv 0.0.74, mobile-vision@bb8465cf). The test does not read the csv.
REFERENCE = [
    # zoo family, width, csv model, csv variant, input_res, params_exact, macs_counted_M
    ("mobilenet_v1", 1.0, "MobileNetV1", "1.0", 224, 4231976, 568.74),
    ("mobilenet_v1", 1.0, "MobileNetV1", "1.0", 192, 4231976, 418.12),
    ("mobilenet_v1", 1.0, "MobileNetV1", "1.0", 160, 4231976, 290.68),
    ("mobilenet_v1", 1.0, "MobileNetV1", "1.0", 128, 4231976, 186.4),
    ("mobilenet_v1", 0.75, "MobileNetV1", "0.75", 224, 2585560, 325.4),
    ("mobilenet_v1", 0.75, "MobileNetV1", "0.75", 192, 2585560, 239.27),
    ("mobilenet_v1", 0.75, "MobileNetV1", "0.75", 160, 2585560, 166.4),
    ("mobilenet_v1", 0.75, "MobileNetV1", "0.75", 128, 2585560, 106.77),
    ("mobilenet_v1", 0.5, "MobileNetV1", "0.5", 224, 1331592, 149.5),
    ("mobilenet_v1", 0.5, "MobileNetV1", "0.5", 192, 1331592, 109.97),
    ("mobilenet_v1", 0.5, "MobileNetV1", "0.5", 160, 1331592, 76.52),
    ("mobilenet_v1", 0.5, "MobileNetV1", "0.5", 128, 1331592, 49.16),
    ("mobilenet_v1", 0.25, "MobileNetV1", "0.25", 224, 470072, 41.03),
    ("mobilenet_v1", 0.25, "MobileNetV1", "0.25", 192, 470072, 30.21),
    ("mobilenet_v1", 0.25, "MobileNetV1", "0.25", 160, 470072, 21.06),
    ("mobilenet_v1", 0.25, "MobileNetV1", "0.25", 128, 470072, 13.57),
    ("mobilenet_v2", 1.0, "MobileNetV2", "1.0", 224, 3504872, 300.77),
    ("mobilenet_v2", 0.75, "MobileNetV2", "0.75", 224, 2636424, 209.07),
    ("mobilenet_v2", 0.5, "MobileNetV2", "0.5", 224, 1968680, 97.13),
    ("mobilenet_v2", 1.4, "MobileNetV2", "1.4", 224, 6108776, 582.2),
    ("mobilenet_v3_large", 1.0, "MobileNetV3-Large", "1.0", 224, 5483032, 216.59),
    ("mobilenet_v3_large", 0.75, "MobileNetV3-Large", "0.75", 224, 3993528, 154.56),
    ("mobilenet_v3_small", 1.0, "MobileNetV3-Small", "1.0", 224, 2542856, 56.51),
    ("mobilenet_v3_small", 0.75, "MobileNetV3-Small", "0.75", 224, 2041872, 43.4),
    ("mnasnet_a1", 1.0, "MnasNet-A1", "1.0", 224, 3887038, 311.58),
    ("mnasnet_b1", 1.0, "MnasNet-B1", "1.0", 224, 4383312, 314.42),
    ("mnasnet_small", 1.0, "MnasNet-small", "1.0", 224, 2030264, 68.34),
    ("proxylessnas_mobile", 1.0, "ProxylessNAS-mobile", "1.0", 224, 4080512, 320.43),
    ("fbnet_a", 1.0, "FBNet", "A", 224, 4321232, 244.45),
    ("fbnet_b", 1.0, "FBNet", "B", 224, 4818216, 291.0),
    ("fbnet_c", 1.0, "FBNet", "C", 224, 5592784, 378.14),
    ("efficientnet_b0", 1.0, "EfficientNet-B0", "-", 224, 5288548, 385.81),
]
FAMILIES = sorted({row[0] for row in REFERENCE})


@pytest.mark.parametrize(("name", "width", "model", "variant", "res", "params", "macs_m"), REFERENCE)
def test_spec_matches_reference(
    name: str, width: float, model: str, variant: str, res: int, params: int, macs_m: float
):
    arch = zoo.get(name, width=width, resolution=res)
    assert arch.params == params
    assert abs(arch.macs / 1e6 - macs_m) <= 0.01 * macs_m
    assert zoo.FAMILIES[name].reference(width) == (model, variant)


def test_every_reference_row_of_a_family_is_a_listed_variant():
    for name, width, *_ in REFERENCE:
        assert width in zoo.FAMILIES[name].widths
    assert zoo.get("mobilenet_v1_025").params == 470072  # the variant name resolves to its width
    assert zoo.FAMILIES["mobilenet_v2"].reference(0.35) is None


@pytest.mark.parametrize("name", FAMILIES)
def test_built_module_agrees_with_spec(name: str):
    """The first variant of each family in torch: same parameters and MACs as the spec, right output shape."""
    torch.set_num_threads(1)
    family = zoo.FAMILIES[name]
    arch = zoo.get(name, width=family.widths[0], num_classes=10)
    net = build(arch)
    assert count_params(net) == arch.params
    assert count_macs(net, arch) == arch.macs
    with torch.no_grad():
        assert net.eval()(torch.zeros(1, 3, 224, 224)).shape == (1, 10)


def test_other_widths_and_resolutions_make_valid_specs():
    """Costs come from the spec alone for any width and resolution; they must grow with both."""
    for name in FAMILIES:
        family = zoo.FAMILIES[name]
        small = (
            zoo.get(name, resolution=160) if not family.scalable else zoo.get(name, width=0.5, resolution=160)
        )
        big = (
            zoo.get(name, resolution=224) if not family.scalable else zoo.get(name, width=1.0, resolution=224)
        )
        assert small.macs < big.macs
        assert small.params <= big.params


# ---------------------------------------------------------------------------------------------- any width

ANY_WIDTH = ["mnasnet_a1", "mnasnet_b1", "mnasnet_small", "proxylessnas_mobile", "fbnet_a", "fbnet_b", "fbnet_c",
             "efficientnet_b0"]
WIDTHS = (0.35, 0.5, 0.75, 1.3, 1.4)


def test_every_mbconv_family_takes_a_width():
    for name in ANY_WIDTH:
        assert zoo.FAMILIES[name].scalable
        assert zoo.get(name).name == name  # the published width keeps the plain name
        arch = zoo.get(name, width=0.75)
        assert arch.name == f"{name}_075" and arch.params < zoo.get(name).params


@pytest.mark.parametrize(("width", "params"), [(0.5, 2_218_512), (0.75, 3_170_208)])
def test_mnasnet_b1_widths_match_torchvision(width: float, params: int):
    """torchvision's mnasnet0_5 / mnasnet0_75 (num_params of MNASNet0_5_Weights / MNASNet0_75_Weights in the
    torchvision docs): its `_round_to_multiple_of(c·α, 8, 0.9)` on stem and blocks, the 1280 conv unscaled."""
    assert zoo.get("mnasnet_b1", width=width).params == params


# The TF reference's published MnasNet-A1 grid at 224 (tensorflow/tpu models/official/mnasnet README, also
# github.com/mingxingtan/mnasnet): depth multiplier → (parameters in millions to 0.1, multiply-adds in millions).
MNASNET_A1_TF = {1.4: (6.1, 591.5), 1.0: (3.9, 315.2), 0.75: (2.9, 226.7), 0.5: (2.1, 105.2), 0.35: (1.7, 63.2)}


@pytest.mark.parametrize("width", sorted(MNASNET_A1_TF))
def test_mnasnet_a1_widths_match_the_tf_grid(width: float):
    params_m, macs_m = MNASNET_A1_TF[width]
    arch = zoo.get("mnasnet_a1", width=width)
    assert round(arch.params / 1e6, 1) == params_m
    assert arch.macs / 1e6 == pytest.approx(macs_m, rel=0.03)  # the README counts 1.2% more at 1.0 (csv)


def _convs(arch) -> tuple[int, int]:
    """(stem output, last 1×1 conv output) of an arch whose head is one conv."""
    return arch.stem[0].out, arch.head.blocks[0].out


@pytest.mark.parametrize("width", WIDTHS)
def test_stem_and_head_follow_each_reference(width: float):
    md = make_divisible
    assert _convs(zoo.get("mnasnet_a1", width=width)) == (md(32 * width), 1280)
    assert _convs(zoo.get("mnasnet_b1", width=width)) == (md(32 * width), 1280)
    assert _convs(zoo.get("mnasnet_small", width=width)) == (md(8 * width), 1280)
    assert _convs(zoo.get("efficientnet_b0", width=width)) == (md(32 * width), md(1280 * width))
    assert _convs(zoo.get("proxylessnas_mobile", width=width)) == (md(32 * width), md(1280 * max(1.0, width)))
    for name, last in (("fbnet_a", 1504), ("fbnet_b", 1984), ("fbnet_c", 1984)):
        assert _convs(zoo.get(name, width=width)) == (md(int(16 * width)), md(int(last * width)))


def _ir_sites(arch) -> list:
    return [site for site in arch.sites() if isinstance(site.block, InvertedResidual)]


@pytest.mark.parametrize("width", WIDTHS)
def test_block_channels_follow_each_reference(width: float):
    """Every block's output is the reference's rounding of its width-1 channels. MobileNetV2 and ProxylessNAS
    take mid = in·e unrounded in their references: the builder's make_divisible(in·e) must equal it."""
    for name in ["mobilenet_v2", *ANY_WIDTH]:
        one = [b for stage in zoo.get(name).stages for b in stage]
        scaled = [b for stage in zoo.get(name, width=width).stages for b in stage]
        assert len(one) == len(scaled)
        fbnet = name.startswith("fbnet")
        for a, b in zip(one, scaled, strict=True):
            assert b.out == make_divisible(int(a.out * width) if fbnet else a.out * width), (name, a, b)
    for name in ("mobilenet_v2", "proxylessnas_mobile"):
        pairs = zip(_ir_sites(zoo.get(name)), _ir_sites(zoo.get(name, width=width)), strict=True)
        for a, b in pairs:
            assert b.block.mid == b.x.c * (a.block.mid // a.x.c), (name, b)
