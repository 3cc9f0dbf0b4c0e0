"""The estimated Pixel 1 table: the cost model of nas/latency/costmodel.py fitted to published whole-network
latencies.

Nothing here runs on a Pixel, so `--device pixel1` prices each op from its primitive layers (counted from the
shape and block, no torch run), with a few coefficients fitted to the published TFLite float latencies of
MobileNetV2 (a width × resolution grid) and MobileNetV3 (nas/latency/pixel1_calibration.csv, sources in the
file). Coefficients are non-negative least squares on relative error; the depthwise roofline ridge is the one of
a small grid that fits best. The published figures come from two harness eras (the 2018 MobileNetV2 grid; the
faster 2019 MobileNetV3 TFLite): a per-era factor ties them, and the table speaks for the 2018 era, the one of
MnasNet's 75–80 ms targets. Two sets of published figures are never fitted, only checked: other families
(pixel1_holdout.csv) and MnasNet-A1's width × resolution grid (pixel1_mnasnet_grid.csv), reported by width.
Regenerate with `python -m nas.latency.pixel` (writes latency_tables/pixel1.json and prints every figure).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from nas.arch import Arch, Block, Shape
from nas.latency.costmodel import FEATURES, MODEL_FORMAT, features, head_layers, layers, make_estimator
from nas.latency.keys import head_arch, head_key
from nas.latency.table import LatencyTable

CALIBRATION = Path(__file__).with_name("pixel1_calibration.csv")
HOLDOUT = Path(__file__).with_name("pixel1_holdout.csv")  # other families, never fitted: an outside check
MNASNET_GRID = Path(__file__).with_name("pixel1_mnasnet_grid.csv")  # never fitted: the width check
REFERENCE_ERA = "2018-mnv2"
ERAS = ("2018-mnv2", "2019-mnv3")
RIDGES = (0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0)  # depthwise roofline ridge candidates, MACs per byte
WIDTH_BUCKETS = ((0.0, 0.45), (0.45, 0.6), (0.6, 0.9), (0.9, 1.2), (1.2, 9.0))


def arch_layers(arch: Arch) -> list:
    """Every primitive layer of a network: its blocks, then its head op."""
    rows = []
    for site in arch.sites():
        rows += layers(site.x, site.block)
    return rows + head_layers(head_arch(head_key(arch)))


def block_features(x: Shape, block: Block, ridge: float) -> np.ndarray:
    return np.array(features(layers(x, block), ridge))


def arch_features(arch: Arch, ridge: float) -> np.ndarray:
    return np.array(features(arch_layers(arch), ridge))


# ------------------------------------------------------------------------------------------ calibration & fit


def calibration_rows(path: Path = CALIBRATION) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def row_arch(row: dict[str, str]) -> Arch | None:
    """The spec a published row timed (the zoo family's own width rule), or None when the zoo lacks its family."""
    from nas import zoo
    from nas.errors import NasError

    try:
        family = zoo.resolve(row["zoo"]).family
    except NasError:
        return None
    arch = family.make(float(row["width"]), int(row["input_res"]), 1000)
    if row["variant_of"] == "minimalistic":
        arch = minimalistic(arch)
    return arch


def minimalistic(arch: Arch) -> Arch:
    """MobileNetV3 minimalistic: the same net without squeeze-excite, hard-swish or 5×5 kernels."""
    from dataclasses import replace

    from nas.arch import Dense, Head

    def strip(block: Block) -> Block:
        changes: dict[str, Any] = {}
        for name, value in (("se", 0.0), ("act", "relu"), ("k", 3)):
            if hasattr(block, name):
                current = getattr(block, name)
                if name == "act" and current != "hswish":
                    continue
                if name == "k" and current <= 3:
                    continue
                changes[name] = value
        return block.replace(**changes) if changes else block

    blocks = [strip(b) for b in arch.blocks]
    hidden = tuple(Dense(out=d.out, act="relu" if d.act == "hswish" else d.act, bias=d.bias) for d in arch.head.hidden)
    out = arch.with_blocks(blocks)
    return out.replace(head=replace(out.head, hidden=hidden) if isinstance(out.head, Head) else out.head)


def nnls(a: np.ndarray, b: np.ndarray, iters: int = 200) -> np.ndarray:
    """Non-negative least squares (Lawson–Hanson active set): the coefficients are costs, never negative."""
    n = a.shape[1]
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    for _ in range(iters):
        grad = a.T @ (b - a @ x)
        if passive.all() or grad[~passive].max(initial=-np.inf) <= 1e-12:
            break
        j = int(np.argmax(np.where(passive, -np.inf, grad)))
        passive[j] = True
        while True:
            z = np.zeros(n)
            z[passive] = np.linalg.lstsq(a[:, passive], b, rcond=None)[0]
            if (z[passive] > 0).all():
                x = z
                break
            neg = passive & (z <= 0)
            alpha = np.min(x[neg] / (x[neg] - z[neg]))
            x = x + alpha * (z - x)
            passive &= x > 1e-15
    return x


def fit(feats: np.ndarray, latency: np.ndarray, eras: list[str]) -> dict[str, Any]:
    """Coefficients (per FEATURES, then network_ms) and the later era's factor, on relative squared error."""
    design = np.hstack([feats, np.ones((len(latency), 1))])
    later = np.array([e != REFERENCE_ERA for e in eras])
    best: tuple[float, np.ndarray, float] | None = None
    factors = np.arange(0.60, 1.2001, 0.0025) if later.any() else np.array([1.0])
    for factor in factors:
        scale = np.where(later, factor, 1.0)
        a = design * (scale / latency)[:, None]
        theta = nnls(a, np.ones(len(latency)))
        loss = float(np.sum((a @ theta - 1.0) ** 2))
        if best is None or loss < best[0]:
            best = (loss, theta, float(factor))
    assert best is not None
    loss, theta, factor = best
    return {
        "coef": {
            **{n: float(v) for n, v in zip(FEATURES, theta[:-1], strict=True)},
            "network_ms": float(theta[-1]),
        },
        "era_factors": {
            REFERENCE_ERA: 1.0,
            **({e: factor for e in ERAS if e != REFERENCE_ERA} if later.any() else {}),
        },
        "loss": loss,
    }


def predict_row(params: dict[str, Any], feats: np.ndarray, era: str) -> float:
    coef = np.array([params["coef"][n] for n in FEATURES])
    return float((feats @ coef + params["coef"]["network_ms"]) * params["era_factors"].get(era, math.nan))


def cross_validate(rows: list[dict[str, Any]], feats: np.ndarray) -> dict[str, Any]:
    """Grouped cross-validation: leave one width of MobileNetV2, one resolution of its grid, one MobileNetV3
    family (Large, Small: with their minimalistic variants), one family of all (MobileNetV2 too) out; fit on the
    rest, predict the held-out rows."""
    latency = np.array([float(r["latency_ms"]) for r in rows])
    eras = [r["harness"] for r in rows]

    def group_cv(name: str, group_of: Callable[[dict[str, Any]], str | None]) -> dict[str, Any]:
        groups = sorted({g for r in rows if (g := group_of(r)) is not None})
        errors = []
        for g in groups:
            held = np.array([group_of(r) == g for r in rows])
            if held.all():
                continue
            params = fit(feats[~held], latency[~held], [e for e, h in zip(eras, held, strict=True) if not h])
            for i in np.flatnonzero(held):
                if eras[i] not in params["era_factors"]:
                    continue
                errors.append(_error_row(rows[i], predict_row(params, feats[i], eras[i]), held_out=g))
        return {"scheme": name, "groups": groups, **_summary(errors), "rows": errors}

    mnv2 = lambda r: r["width"] if r["zoo"] == "mobilenet_v2" else None  # noqa: E731
    res = lambda r: r["input_res"] if r["zoo"] == "mobilenet_v2" and r["harness"] == REFERENCE_ERA else None  # noqa: E731
    fam = lambda r: r["zoo"] if r["zoo"] != "mobilenet_v2" else None  # noqa: E731
    schemes = [group_cv("leave one MobileNetV2 width out", mnv2), group_cv("leave one resolution out", res)]
    if any(fam(r) for r in rows):
        schemes.append(group_cv("leave one MobileNetV3 family out", fam))
    pooled = [abs(e["error"]) for s in schemes for e in s["rows"]]
    lofo = group_cv("leave one family out (MobileNetV2 too)", lambda r: r["zoo"])
    return {
        "schemes": schemes,
        "pooled_mape": round(float(np.mean(pooled)), 4) if pooled else None,
        "leave_one_family_out": lofo,
    }


def _error_row(row: dict[str, Any], pred: float, **extra: Any) -> dict[str, Any]:
    published = float(row["latency_ms"])
    return {
        **extra,
        "model": row["model"],
        "variant": row["variant"],
        "width": float(row["width"]),
        "resolution": int(row["input_res"]),
        "harness": row["harness"],
        "published_ms": published,
        "predicted_ms": round(pred, 2),
        "error": round(pred / published - 1, 4),
    }


def _summary(errors: list[dict[str, Any]]) -> dict[str, Any]:
    abs_err = [abs(e["error"]) for e in errors]
    return {
        "n": len(errors),
        "mape": round(float(np.mean(abs_err)), 4) if errors else None,
        "max_abs_error": round(float(np.max(abs_err)), 4) if errors else None,
        "within_10pct": round(float(np.mean([a <= 0.10 for a in abs_err])), 4) if errors else None,
    }


def by_width(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean signed error and MAPE per width bucket: the bias a width-blind model shows."""
    out = []
    for lo, hi in WIDTH_BUCKETS:
        errs = [e["error"] for e in errors if lo <= e["width"] < hi]
        if errs:
            out.append(
                {
                    "widths": f"[{lo:g}, {hi:g})" if hi < 9 else f">= {lo:g}",
                    "n": len(errs),
                    "bias": round(float(np.mean(errs)), 4),
                    "mape": round(float(np.mean(np.abs(errs))), 4),
                }
            )
    return out


def check(params: dict[str, Any], ridge: float, path: Path) -> dict[str, Any]:
    """The model's error on published rows it was never fitted to."""
    errors = []
    for row in calibration_rows(path):
        arch = row_arch(row)
        if arch is not None:
            errors.append(_error_row(row, predict_row(params, arch_features(arch, ridge), row["harness"])))
    return {"file": f"nas/latency/{path.name}", **_summary(errors), "by_width": by_width(errors), "rows": errors}


def build_pixel_model() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    raw = calibration_rows()
    rows, archs, skipped = [], [], []
    for row in raw:
        arch = row_arch(row)
        if arch is None:
            skipped.append(f"{row['model']} {row['variant']}")
            continue
        rows.append(row)
        archs.append(arch_layers(arch))
    latency = np.array([float(r["latency_ms"]) for r in rows])
    eras = [r["harness"] for r in rows]
    fits = []
    for ridge in RIDGES:  # the ridge is part of the fit: the one with the least in-sample loss
        x = np.array([features(a, ridge) for a in archs])
        fits.append((fit(x, latency, eras)["loss"], ridge, x))
    _, ridge, x = min(fits, key=lambda f: f[0])
    params = fit(x, latency, eras)
    fitted = [
        {
            "model": r["model"],
            "variant": r["variant"],
            "resolution": int(r["input_res"]),
            "harness": r["harness"],
            "published_ms": float(r["latency_ms"]),
            "fitted_ms": round(predict_row(params, f, r["harness"]), 2),
        }
        for r, f in zip(rows, x, strict=True)
    ]
    model = {
        "format": MODEL_FORMAT,
        "features": list(FEATURES),
        "coef": params["coef"],
        "coef_units": "ms per million MACs (depthwise: roofline MACs) / million elements read / layer; "
        "network_ms once per network",
        "dw_ridge_macs_per_byte": ridge,
        "era": REFERENCE_ERA,
        "era_factors": params["era_factors"],
        "calibration": {
            "file": "nas/latency/pixel1_calibration.csv",
            "rows_used": len(rows),
            "rows_skipped": skipped,
        },
        "cross_validation": cross_validate(rows, x),
        "fit_mape": round(float(np.mean([abs(f["fitted_ms"] / f["published_ms"] - 1) for f in fitted])), 4),
        "holdout": check(params, ridge, HOLDOUT),
        "mnasnet_grid": check(params, ridge, MNASNET_GRID),
        "command": "python -m nas.latency.pixel",
    }
    return model, fitted


def precomputed_entries(model: dict[str, Any], resolution: int = 224) -> tuple[dict, dict]:
    """Estimates of every op of the default space and of the zoo at `resolution`: (ops, fixed)."""
    from nas.arch import block_from_dict
    from nas.latency.items import arch_items, space_items, zoo_archs

    estimate = make_estimator(model)
    items = {**space_items("mobilenetv3", resolution), **arch_items(zoo_archs(resolution))}
    ops: dict[str, dict[str, Any]] = {}
    fixed: dict[str, dict[str, Any]] = {}
    for key, item in sorted(items.items()):
        if item["kind"] == "op":
            ms = estimate(Shape(*item["x"]), block_from_dict(item["block"]), None, key)
        else:
            ms = estimate(None, None, None, key)
        entry = {"median": round(ms, 5), "mean": round(ms, 5), "std": 0.0, "min": round(ms, 5), "count": 0}
        (ops if item["kind"] == "op" else fixed)[key] = entry
    return ops, fixed


def pixel_table(model: dict[str, Any]) -> LatencyTable:
    ops, fixed = precomputed_entries(model)
    return LatencyTable(
        device="pixel1",
        runtime="tflite-float-1thread",
        kind="estimated",
        ops=ops,
        fixed=fixed,
        resolutions=[96, 128, 160, 192, 224],
        meta={
            "created": dt.date.today().isoformat(),
            "host": {"device": "Google Pixel 1 (Snapdragon 821), one big core", "measured": False},
            "versions": {"calibration": "published TFLite float latencies, see model.calibration"},
            "protocol": {
                "estimated": "per-op cost model fitted to published whole-network latencies",
                "era": REFERENCE_ERA,
                "batch": 1,
            },
            "source": {"generator": "python -m nas.latency.pixel"},
            "note": "ESTIMATED, not measured: ops are priced by the cost model in `model` (docs/latency.md).",
        },
        model=model,
    )


def main(argv: list[str] | None = None) -> int:
    from nas.latency.table import tables_dir

    p = argparse.ArgumentParser(prog="python -m nas.latency.pixel", description="Fit the estimated Pixel 1 table.")
    p.add_argument("--out", default=str(tables_dir() / "pixel1.json"))
    p.add_argument("--json", action="store_true", help="print the fit, cross-validation and checks as JSON")
    args = p.parse_args(argv)
    model, fitted = build_pixel_model()
    pixel_table(model).save(args.out)
    if args.json:
        print(json.dumps({"model": model, "fitted": fitted}, indent=2))
        return 0
    print(f"wrote {args.out} (kind: estimated, era {REFERENCE_ERA}); rows used {model['calibration']['rows_used']}")
    print("coefficients: " + ", ".join(f"{k}={v:.4g}" for k, v in model["coef"].items()))
    print(f"depthwise roofline ridge: {model['dw_ridge_macs_per_byte']:g} MACs/byte")
    print("era factors: " + ", ".join(f"{k}={v:.4g}" for k, v in model["era_factors"].items()))
    print(f"fit MAPE (all rows, in-sample): {model['fit_mape']:.1%}")
    cv = model["cross_validation"]
    for scheme in [*cv["schemes"], cv["leave_one_family_out"]]:
        print(
            f"CV {scheme['scheme']}: MAPE {scheme['mape']:.1%}, worst {scheme['max_abs_error']:.1%} (n={scheme['n']})"
        )
    print(f"CV pooled MAPE (the first three): {cv['pooled_mape']:.1%}")
    for name in ("mnasnet_grid", "holdout"):
        c = model[name]
        print(
            f"check, never fitted ({c['file']}): MAPE {c['mape']:.1%}, within ±10% {c['within_10pct']:.0%}, "
            f"worst {c['max_abs_error']:.1%} (n={c['n']})"
        )
        for b in c["by_width"]:
            print(f"  width {b['widths']:12s} n={b['n']:2d}  bias {b['bias']:+.1%}  MAPE {b['mape']:.1%}")
        if name == "holdout":
            for h in c["rows"]:
                print(
                    f"  {h['model']:32s} {h['harness']}: published {h['published_ms']:6.1f}  "
                    f"predicted {h['predicted_ms']:6.1f}  ({h['error']:+.1%})"
                )
    for f in fitted:
        print(
            f"  {f['model']:32s} {f['variant']:16s} {f['resolution']:4d} {f['harness']}: "
            f"published {f['published_ms']:6.1f}  fitted {f['fitted_ms']:6.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
