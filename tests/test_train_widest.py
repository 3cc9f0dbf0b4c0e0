"""`nas.zoo.widest.widest_width`: the widest grid width within a latency target (the neighbour above exceeds it)."""

from __future__ import annotations

import pytest

from nas import zoo
from nas.errors import NasError
from nas.latency import load_table, predict
from nas.zoo.widest import widest_width

FAMILIES = ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large", "mnasnet_a1")


@pytest.fixture(scope="module")
def pixel():
    return load_table("pixel")


def _ms(family: str, width: float, table) -> float:
    return predict(zoo.get(family, width=width, resolution=224, num_classes=1000), table).latency_ms


@pytest.mark.parametrize("family", FAMILIES)
def test_widest_within_target_and_neighbour_above_exceeds(family, pixel):
    target = _ms(family, 0.8, pixel) * 1.03  # somewhere between grid widths
    found = widest_width(family, target, pixel)
    assert found is not None and not found.capped
    assert found.latency_ms <= target
    assert _ms(family, found.width, pixel) == pytest.approx(found.latency_ms)
    above = round(found.width + 0.01, 2)
    assert _ms(family, above, pixel) > target
    assert found.above_ms == pytest.approx(_ms(family, above, pixel))
    assert found.width >= 0.8


def test_exact_latency_of_a_grid_width_is_within(pixel):
    target = _ms("mobilenet_v2", 0.5, pixel)
    found = widest_width("mobilenet_v2", target, pixel)
    assert found.width >= 0.5 and found.latency_ms <= target


def test_callable_latency_and_edges():
    # A made-up monotone latency: 10 ms per unit of width, so 37 ms → width 3.7; the function sees Archs.
    def latency(arch):
        return 10 * float(arch.name.rsplit("_", 1)[1]) / 100

    assert widest_width("mobilenet_v2", 37.0, latency).width == pytest.approx(3.7)
    assert widest_width("mobilenet_v2", 3.7, latency, lo=0.2).width == pytest.approx(0.37)
    capped = widest_width("mobilenet_v2", 1000.0, latency, hi=1.4)
    assert capped.capped and capped.width == pytest.approx(1.4) and capped.above_ms is None
    assert widest_width("mobilenet_v2", 1.0, latency, lo=0.2) is None
    assert widest_width("mobilenet_v2", 5.0, latency, lo=0.2, step=0.1).width == pytest.approx(0.5)


def test_bad_input():
    with pytest.raises(NasError, match="width multiplier"):
        widest_width("squeezenet_1_0", 10.0, lambda a: 1.0)
    with pytest.raises(NasError, match="lo"):
        widest_width("mobilenet_v2", 10.0, lambda a: 1.0, lo=2.0, hi=1.0)
