"""The MBConv-family zoo against the reference figures, and the built modules against the spec."""

from __future__ import annotations

import pytest
import torch

from nas import zoo
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
