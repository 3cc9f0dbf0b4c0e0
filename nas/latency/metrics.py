"""How well predictions match measurements: Kendall's τ, error figures, and a scale-and-offset fit."""

from __future__ import annotations

import math
import statistics
from typing import Any

from nas.errors import NasError


def kendall_tau(a: list[float], b: list[float]) -> float:
    """Kendall's τ-b (ties counted in neither pair class)."""
    n = len(a)
    concordant = discordant = ties_a = ties_b = 0
    for i in range(n):
        for j in range(i + 1, n):
            da, db = a[i] - a[j], b[i] - b[j]
            if da == 0 and db == 0:
                continue
            if da == 0:
                ties_a += 1
            elif db == 0:
                ties_b += 1
            elif (da > 0) == (db > 0):
                concordant += 1
            else:
                discordant += 1
    denom = math.sqrt((concordant + discordant + ties_a) * (concordant + discordant + ties_b))
    return (concordant - discordant) / denom if denom else float("nan")


def metrics(names: list[str], predicted: list[float], measured: list[float], worst: int = 5) -> dict[str, Any]:
    errors = [p / m - 1 for p, m in zip(predicted, measured, strict=True)]
    abs_err = [abs(e) for e in errors]
    order = sorted(range(len(errors)), key=lambda i: -abs_err[i])
    return {
        "samples": len(errors),
        "mape": round(statistics.fmean(abs_err), 4),
        "median_ape": round(statistics.median(abs_err), 4),
        "within_5pct": round(sum(e <= 0.05 for e in abs_err) / len(errors), 4),
        "within_10pct": round(sum(e <= 0.10 for e in abs_err) / len(errors), 4),
        "kendall_tau": round(kendall_tau(predicted, measured), 4),
        "bias": round(statistics.median(errors), 4),
        "worst": [
            {
                "name": names[i],
                "predicted_ms": round(predicted[i], 3),
                "measured_ms": round(measured[i], 3),
                "error": round(errors[i], 4),
            }
            for i in order[:worst]
        ],
    }


def fit_correction(predicted: list[float], measured: list[float]) -> tuple[float, float]:
    """measured ≈ scale·predicted + offset, least squares on relative error."""
    import numpy as np

    p, m = np.array(predicted), np.array(measured)
    a = np.stack([p / m, 1 / m], axis=1)
    scale, offset = np.linalg.lstsq(a, np.ones(len(m)), rcond=None)[0]
    return float(scale), float(offset)


def check_scale(what: str, value: Any, offset: Any, band: tuple[float, float], where: str) -> None:
    """NasError unless scale is finite and inside `band` and the offset finite."""
    for name, v in (("scale", value), ("offset_ms", offset)):
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise NasError(f"{where}: {what} {name} must be a finite number, got {v!r}")
    lo, hi = band
    if not lo <= value <= hi:
        raise NasError(
            f"{where}: {what} scale ×{value:.3g} is outside the sane band {lo:g}–{hi:g}; "
            f"the table does not describe this machine: rebuild it (`nas latency build`)"
        )
