"""The classic nets of the zoo reproduce their reference implementations' parameter and MAC counts."""

from __future__ import annotations

import pytest

from nas import zoo
from nas.arch import Ghost, ShuffleV1
from nas.errors import NasError

# Figures copied from shared/reference/model_zoo.csv (columns model, variant, input_res, params_exact,
# macs_counted_M). The implementations counted there: megvii-model/ShuffleNet-Series ShuffleNetV1
# (network.py@d8e4db13), torchvision v0.29.1 (shufflenetv2.py, squeezenet.py), timm v1.0.31 (ghostnet.py,
# xception.py legacy_xception).
REFERENCE = {
    # zoo variant: (csv model, csv variant, input_res, params_exact, macs_counted_M)
    "shufflenet_v1_g3_050": ("ShuffleNetV1", "0.5x g=3", 224, 717_324, 37.59),
    "shufflenet_v1_g3_100": ("ShuffleNetV1", "1.0x g=3", 224, 1_864_728, 137.46),
    "shufflenet_v1_g3_150": ("ShuffleNetV1", "1.5x g=3", 224, 3_441_168, 292.44),
    "shufflenet_v1_g3_200": ("ShuffleNetV1", "2.0x g=3", 224, 5_449_776, 524.05),
    "shufflenet_v1_g8": ("ShuffleNetV1", "1.0x g=8", 224, 2_433_768, 138.37),
    "shufflenet_v2_050": ("ShuffleNetV2", "0.5x", 224, 1_366_792, 40.48),
    "shufflenet_v2_100": ("ShuffleNetV2", "1.0x", 224, 2_278_604, 144.91),
    "shufflenet_v2_150": ("ShuffleNetV2", "1.5x", 224, 3_503_624, 295.76),
    "shufflenet_v2_200": ("ShuffleNetV2", "2.0x", 224, 7_393_996, 583.25),
    "ghostnet_050": ("GhostNet", "0.5x", 224, 2_587_292, 42.33),
    "ghostnet_100": ("GhostNet", "1.0x", 224, 5_182_508, 141.15),
    "ghostnet_130": ("GhostNet", "1.3x", 224, 7_358_820, 227.0),
    "squeezenet_1_0": ("SqueezeNet", "1.0", 224, 1_248_424, 818.92),
    "squeezenet_1_1": ("SqueezeNet", "1.1", 224, 1_235_496, 349.15),
    "xception": ("Xception", "-", 299, 22_855_952, 8357.4),
}

CLASSIC = (
    "shufflenet_v1_g3",
    "shufflenet_v1_g8",
    "shufflenet_v2",
    "ghostnet",
    "squeezenet_1_0",
    "squeezenet_1_1",
    "xception",
)


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_matches_reference(name: str) -> None:
    model, variant, res, params, macs_m = REFERENCE[name]
    arch = zoo.get(name, resolution=res)
    assert arch.params == params
    assert arch.macs / 1e6 == pytest.approx(macs_m, rel=0.01)
    assert zoo.resolve(name).reference == (model, variant)


def test_every_classic_variant_has_reference_figures() -> None:
    """A variant added to these families without its csv figures would go untested."""
    names = {v.name for v in zoo.variants() if v.family.name in CLASSIC}
    assert names == set(REFERENCE)


def test_family_defaults() -> None:
    assert zoo.get("xception").resolution == 299
    assert zoo.get("ghostnet").name == "ghostnet_100"
    assert zoo.get("shufflenet_v1_g3", width=0.5).params == REFERENCE["shufflenet_v1_g3_050"][3]
    with pytest.raises(NasError):
        zoo.get("squeezenet_1_1", width=0.5)


def test_shufflenet_v1_first_unit_ungrouped() -> None:
    units = [b for b in zoo.get("shufflenet_v1_g8").blocks if isinstance(b, ShuffleV1)]
    assert [u.first_group for u in units[:2]] == [False, True]
    assert all(u.mid == u.out // 4 and u.groups == 8 for u in units)


def test_ghostnet_channels_rounded_to_four() -> None:
    arch = zoo.get("ghostnet", width=1.3)
    ghosts = [b for b in arch.blocks if isinstance(b, Ghost)]
    assert all(b.out % 4 == 0 and b.mid % 4 == 0 for b in ghosts)
    assert arch.head.hidden[0].out == 1280  # not scaled by the width


@pytest.mark.parametrize(
    ("name", "width"), [("shufflenet_v1_g3", 0.75), ("shufflenet_v2", 0.75), ("ghostnet", 0.75)]
)
def test_unpublished_widths_are_valid_and_between_neighbours(name: str, width: float) -> None:
    """Widths off the reference tables are rounded so that every group still divides (Arch validates it)."""
    smaller, larger = zoo.get(name, width=0.5), zoo.get(name, width=1.0)
    arch = zoo.get(name, width=width)
    assert smaller.params < arch.params < larger.params
    assert smaller.macs < arch.macs < larger.macs
    assert arch.name == f"{name}_075"


@pytest.mark.parametrize("resolution", [97, 160, 331])
def test_squeezenet_and_xception_any_resolution(resolution: int) -> None:
    """Unpadded convs and ceil-mode pools must still give a valid spec away from the reference size."""
    for name in ("squeezenet_1_0", "squeezenet_1_1", "xception"):
        arch = zoo.get(name, resolution=resolution, num_classes=10)
        assert arch.params < REFERENCE[name][3]  # fewer classes, same body
        assert arch.features.h >= 1
