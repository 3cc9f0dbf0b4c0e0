"""The estimated Pixel 1 table: a small per-op cost model fitted to published whole-network latencies.

Nothing here runs on a Pixel, so `--device pixel1` prices each op from what it computes and moves, with a few
coefficients fitted to the published TFLite float latencies of MobileNetV2 (a width × resolution grid) and
MobileNetV3 (nas/latency/pixel1_calibration.csv, sources in the file):

    ms(op) = a·dense_MMACs + b·depthwise_MMACs + c·elementwise_Melems + d·conv_out_Melems + e·layers + f·Mweights
    ms(network) = Σ ms(op) + head + g          (g: the per-inference cost, the table's `input` entry)

- dense MACs: convolutions with more than one input channel per group, and fully connected layers;
- depthwise MACs: convolutions with one input channel per group;
- elementwise: output elements of ops TFLite does not fuse into a convolution (hard-swish, swish, sigmoid
  gates, residual adds, SE scaling, pooling, concatenation, channel shuffles); ReLU/ReLU6 and BatchNorm fold away;
- conv_out: output elements of convolutions (activation memory traffic);
- layers: convolutions plus unfused elementwise ops (per-op dispatch cost);
- weights: conv and dense weights (millions), read once per inference (what dominates at low resolution).

The features are counted while the op's torch module runs once on zeros (every aten op it dispatches), so
the model prices every block type of the spec at any resolution. Counting costs ~10–20 ms an op, so the table
file carries the estimates of the default space and the zoo at 224 (`ops`, `count` 0: not measured); any other
op is priced from the stored coefficients on first use and remembered for the process. Coefficients are
non-negative least squares on relative error. The published figures come from two harness eras (the 2018
MobileNetV2 grid; the faster 2019 MobileNetV3 TFLite): a per-era factor ties them, and the table speaks for
the 2018 era, the one of MnasNet's 75–80 ms targets. Regenerate with `python -m nas.latency.pixel` (writes
latency_tables/pixel1.json and prints the cross-validation and the check on other families).
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

CALIBRATION = Path(__file__).with_name("pixel1_calibration.csv")
HOLDOUT = Path(__file__).with_name("pixel1_holdout.csv")  # other families, never fitted: an outside check
MODEL_FORMAT = "nas.pixel1-cost/1"
FEATURES = ("dense_mmacs", "dw_mmacs", "elementwise_melems", "conv_out_melems", "layers", "weights_m")
REFERENCE_ERA = "2018-mnv2"
ERAS = ("2018-mnv2", "2019-mnv3")

# aten ops that TFLite fuses into the preceding convolution or folds away (free), and pure views (free).
_FREE = {
    "relu",
    "relu_",
    "hardtanh",
    "hardtanh_",
    "clamp",
    "clamp_",
    "_native_batch_norm_legit_no_training",
    "native_batch_norm",
    "batch_norm",
    "empty",
    "view",
    "_unsafe_view",
    "t",
    "transpose",
    "permute",
    "unsqueeze",
    "squeeze",
    "expand",
    "reshape",
    "flatten",
    "detach",
    "alias",
    "dropout",
    "identity",
    "clone_view",
    "_to_copy",
    "lift_fresh",
    "zeros",
    "ones",
    "randn",
    "empty_like",
    "full",
    "split",
    "split_with_sizes",
    "slice",
    "select",
    "chunk",
    "unbind",
    "narrow",
    "as_strided",
}


def _features_of(module: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """Feature vector of one module's forward pass on a 1×C×H×W input of zeros."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    acc = np.zeros(len(FEATURES))

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[override]
            out = func(*args, **(kwargs or {}))
            name = func.overloadpacket.__name__
            if name == "convolution":
                w, groups = args[1], args[8]
                macs = out.numel() * w.shape[1] * w.shape[2] * w.shape[3]
                acc[1 if w.shape[1] == 1 and groups > 1 else 0] += macs / 1e6
                acc[3] += out.numel() / 1e6
                acc[4] += 1
                acc[5] += w.numel() / 1e6
            elif name in ("addmm", "mm", "linear", "matmul", "bmm"):
                w = args[-1] if name != "addmm" else args[2]
                acc[0] += w.shape[0] * w.shape[1] / 1e6
                acc[4] += 1
                acc[5] += w.numel() / 1e6
            elif name not in _FREE and isinstance(out, torch.Tensor) and out.dim() >= 2:
                acc[2] += out.numel() / 1e6
                acc[4] += 1
            return out

    with torch.no_grad(), Count():
        module(torch.zeros(1, *shape))
    return acc


def block_features(x: Shape, block: Block) -> np.ndarray:

    from nas.model import build_block

    module = build_block(block, x.c).eval()
    return _features_of(module, (x.c, x.h, x.w))


def head_features(arch: Arch) -> np.ndarray:
    """Features of the part after the last block (pool, hidden layers, classifier)."""

    from nas.latency.keys import head_arch, head_key
    from nas.model import build

    head = head_arch(head_key(arch))
    module = build(head).eval()
    return _features_of(module, (head.in_channels, head.resolution, head.resolution))


def arch_features(arch: Arch) -> np.ndarray:
    total = head_features(arch)
    for site in arch.sites():
        total = total + block_features(site.x, site.block)
    return total


def make_estimator(model: dict[str, Any]) -> Callable[[Shape | None, Block | None, Arch | None, str], float]:
    """ms of one op under a stored cost model: (x, block) for a block, arch for its head, key `input:` for g."""
    if model.get("format") != MODEL_FORMAT:
        from nas.errors import NasError

        raise NasError(f"cost model format {model.get('format')!r} is not {MODEL_FORMAT!r}")
    coef = np.array([float(model["coef"][name]) for name in FEATURES])
    per_network = float(model["coef"]["network_ms"])

    def estimate(x: Shape | None, block: Block | None, arch: Arch | None, key: str) -> float:
        if key.startswith("input:"):
            return per_network
        feats = block_features(x, block) if block is not None else head_features(arch)  # type: ignore[arg-type]
        return float(feats @ coef)

    return estimate


# ------------------------------------------------------------------------------------------ calibration & fit


def calibration_rows(path: Path = CALIBRATION) -> list[dict[str, str]]:
    with path.open() as fh:
        return list(csv.DictReader(line for line in fh if not line.startswith("#")))


def row_arch(row: dict[str, str]) -> Arch | None:
    """The spec a published row timed, or None when the zoo lacks its family."""
    from nas import zoo
    from nas.errors import NasError

    try:
        arch = zoo.get(row["zoo"], width=float(row["width"]), resolution=int(row["input_res"]))
    except NasError:
        return None
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


def fit(features: np.ndarray, latency: np.ndarray, eras: list[str]) -> dict[str, Any]:
    """Coefficients (per FEATURES, then network_ms) and the later era's factor, on relative squared error."""
    design = np.hstack([features, np.ones((len(latency), 1))])
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
    _, theta, factor = best
    return {
        "coef": {
            **{n: float(v) for n, v in zip(FEATURES, theta[:-1], strict=True)},
            "network_ms": float(theta[-1]),
        },
        "era_factors": {
            REFERENCE_ERA: 1.0,
            **({e: factor for e in ERAS if e != REFERENCE_ERA} if later.any() else {}),
        },
    }


def predict_row(params: dict[str, Any], feats: np.ndarray, era: str) -> float:
    coef = np.array([params["coef"][n] for n in FEATURES])
    return float((feats @ coef + params["coef"]["network_ms"]) * params["era_factors"].get(era, math.nan))


def cross_validate(rows: list[dict[str, Any]], feats: np.ndarray) -> dict[str, Any]:
    """Grouped cross-validation: leave one width of MobileNetV2, one resolution of its grid, one MobileNetV3
    family (Large, Small: with their minimalistic variants) out; fit on the rest, predict the held-out rows."""
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
                pred = predict_row(params, feats[i], eras[i])
                errors.append(
                    {
                        "held_out": g,
                        "model": rows[i]["model"],
                        "variant": rows[i]["variant"],
                        "resolution": int(rows[i]["input_res"]),
                        "harness": eras[i],
                        "published_ms": latency[i],
                        "predicted_ms": round(pred, 2),
                        "error": round(pred / latency[i] - 1, 4),
                    }
                )
        abs_err = [abs(e["error"]) for e in errors]
        return {
            "scheme": name,
            "groups": groups,
            "n": len(errors),
            "mape": round(float(np.mean(abs_err)), 4) if errors else None,
            "max_abs_error": round(float(np.max(abs_err)), 4) if errors else None,
            "rows": errors,
        }

    mnv2 = lambda r: r["width"] if r["zoo"] == "mobilenet_v2" else None  # noqa: E731
    res = lambda r: r["input_res"] if r["zoo"] == "mobilenet_v2" and r["harness"] == REFERENCE_ERA else None  # noqa: E731
    fam = lambda r: r["zoo"] if r["zoo"] != "mobilenet_v2" else None  # noqa: E731
    schemes = [group_cv("leave one MobileNetV2 width out", mnv2), group_cv("leave one resolution out", res)]
    if any(fam(r) for r in rows):
        schemes.append(group_cv("leave one MobileNetV3 family out", fam))
    pooled = [abs(e["error"]) for s in schemes for e in s["rows"]]
    return {"schemes": schemes, "pooled_mape": round(float(np.mean(pooled)), 4) if pooled else None}


def build_pixel_model() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    raw = calibration_rows()
    rows, feats, skipped = [], [], []
    for row in raw:
        arch = row_arch(row)
        if arch is None:
            skipped.append(f"{row['model']} {row['variant']}")
            continue
        rows.append(row)
        feats.append(arch_features(arch))
    x = np.array(feats)
    latency = np.array([float(r["latency_ms"]) for r in rows])
    params = fit(x, latency, [r["harness"] for r in rows])
    cv = cross_validate(rows, x)
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
    holdout = []
    for row in calibration_rows(HOLDOUT):
        arch = row_arch(row)
        if arch is None:
            continue
        pred = predict_row(params, arch_features(arch), row["harness"])
        published = float(row["latency_ms"])
        holdout.append(
            {
                "model": row["model"],
                "harness": row["harness"],
                "published_ms": published,
                "predicted_ms": round(pred, 2),
                "error": round(pred / published - 1, 4),
                "source": row["source"],
            }
        )
    model = {
        "format": MODEL_FORMAT,
        "features": list(FEATURES),
        "coef": params["coef"],
        "coef_units": "ms per million MACs / million elements / layer; network_ms once per network",
        "era": REFERENCE_ERA,
        "era_factors": params["era_factors"],
        "calibration": {
            "file": "nas/latency/pixel1_calibration.csv",
            "rows_used": len(rows),
            "rows_skipped": skipped,
        },
        "cross_validation": cv,
        "fit_mape": round(float(np.mean([abs(f["fitted_ms"] / f["published_ms"] - 1) for f in fitted])), 4),
        "holdout": {
            "file": "nas/latency/pixel1_holdout.csv",
            "mape": round(float(np.mean([abs(h["error"]) for h in holdout])), 4) if holdout else None,
            "rows": holdout,
        },
        "command": "python -m nas.latency.pixel",
    }
    return model, fitted


def precomputed_entries(model: dict[str, Any], resolution: int = 224) -> tuple[dict, dict]:
    """Estimates of every op of the default space and of the zoo at `resolution`: (ops, fixed)."""
    from nas.arch import block_from_dict
    from nas.latency.build import arch_items, space_items, zoo_archs
    from nas.latency.keys import head_arch

    estimate = make_estimator(model)
    items = {**space_items("mobilenetv3", resolution), **arch_items(zoo_archs(resolution))}
    ops: dict[str, dict[str, Any]] = {}
    fixed: dict[str, dict[str, Any]] = {}
    for key, item in sorted(items.items()):
        if item["kind"] == "op":
            ms = estimate(Shape(*item["x"]), block_from_dict(item["block"]), None, key)
        else:
            ms = estimate(None, None, head_arch(key) if item["kind"] == "head" else None, key)
        entry = {"median": round(ms, 5), "mean": round(ms, 5), "std": 0.0, "min": round(ms, 5), "count": 0}
        (ops if item["kind"] == "op" else fixed)[key] = entry
    return ops, fixed


def pixel_table(model: dict[str, Any]):  # -> LatencyTable
    from nas.latency.table import LatencyTable

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
    p.add_argument("--json", action="store_true", help="print the fit and cross-validation as JSON")
    args = p.parse_args(argv)
    model, fitted = build_pixel_model()
    pixel_table(model).save(args.out)
    if args.json:
        print(json.dumps({"model": model, "fitted": fitted}, indent=2))
        return 0
    print(f"wrote {args.out} (kind: estimated, era {REFERENCE_ERA}); rows used {model['calibration']['rows_used']}")
    print("coefficients: " + ", ".join(f"{k}={v:.4g}" for k, v in model["coef"].items()))
    print("era factors: " + ", ".join(f"{k}={v:.4g}" for k, v in model["era_factors"].items()))
    print(f"fit MAPE (all rows, in-sample): {model['fit_mape']:.1%}")
    for scheme in model["cross_validation"]["schemes"]:
        print(
            f"CV {scheme['scheme']}: MAPE {scheme['mape']:.1%}, worst {scheme['max_abs_error']:.1%} (n={scheme['n']})"
        )
    print(f"CV pooled MAPE: {model['cross_validation']['pooled_mape']:.1%}")
    if model["holdout"]["rows"]:
        print(f"other families, never fitted (nas/latency/pixel1_holdout.csv): MAPE {model['holdout']['mape']:.1%}")
        for h in model["holdout"]["rows"]:
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
