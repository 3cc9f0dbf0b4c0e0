"""The zoo models a search is compared against, at their predicted latency on the search's table."""

from __future__ import annotations

from typing import Any

from nas.errors import NasError

# The hand-designed and searched nets the MnasNet/MobileNetV3 papers compare against (published widths).
BASELINES = (
    "mobilenet_v1",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "mnasnet_a1",
    "mnasnet_b1",
    "proxylessnas_mobile",
    "fbnet_a",
    "fbnet_b",
    "fbnet_c",
    "efficientnet_b0",
)


def zoo_baselines(table: Any, resolution: int) -> list[tuple[str, float]]:
    """Mobile zoo models the table covers, with their predicted latency at the deployment resolution, fastest
    first."""
    from nas import zoo
    from nas.search.evaluation import latency_of

    out = []
    for variant in zoo.variants():
        if variant.family.name not in BASELINES or variant.width not in (0.75, 1.0):
            continue
        try:
            arch = zoo.get(variant.name, resolution=resolution)
            out.append((variant.name, latency_of(arch, table)))
        except (NasError, KeyError, ValueError):
            continue  # the table does not cover this model's ops
    return sorted(out, key=lambda b: b[1])
