"""pareto.png: accuracy vs predicted latency of the trials, the Pareto front, the target, and every zoo baseline
that summary.md lists, as a dotted line at its predicted latency (their ImageNet accuracy is not on the proxy
task's scale, so they are placed by latency only) with a label that overlaps no other."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from nas.io import atomic_write
from nas.search.runs import TrialRecord, pareto_records

LABEL_GID = "baseline-label"


def pareto_figure(
    records: list[TrialRecord],
    target_ms: float,
    baselines: list[tuple[str, float]],
    device: str,
    kind: str,
    metric: str,
) -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [r for r in records if r.done and r.latency_ms is not None]
    front = pareto_records(records)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=110)
    if done:
        ax.scatter([r.latency_ms for r in done], [r.accuracy for r in done], s=14, alpha=0.5, label="trials")
        ax.plot(
            [r.latency_ms for r in front], [r.accuracy for r in front], "o-", color="C3", ms=5, label="Pareto front"
        )
    ax.axvline(target_ms, color="k", ls="--", lw=1, label=f"target {target_ms:g} ms")
    xs = [r.latency_ms for r in done] + [target_ms] + [ms for _, ms in baselines]
    ax.set_xlim(min(xs) * 0.92, max(xs) * 1.08)
    accs = [r.accuracy for r in done] or [0.0, 1.0]
    y0, y1 = min(accs), max(accs)
    pad = (y1 - y0) * 0.08 or 0.05
    ax.set_ylim(y0 - pad, y1 + pad)
    for _, ms in baselines:
        ax.axvline(ms, color="C2", ls=":", lw=1)
    est = " (estimated table)" if kind == "estimated" else ""
    ax.set_xlabel(f"predicted latency on {device}{est}, ms")
    ax.set_ylabel(metric)
    ax.set_title("search trials; dotted: zoo baselines at their predicted latency", fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()  # before the labels are placed: it moves the axes
    lowest = _place_labels(fig, ax, baselines)
    if lowest < 1.0:  # make room: the data ends below the lowest label row
        bottom = y0 - pad
        ax.set_ylim(bottom, bottom + (y1 + pad - bottom) / max(lowest - 0.02, 0.3))
    return fig


def _place_labels(fig: Any, ax: Any, baselines: list[tuple[str, float]]) -> float:
    """Each baseline's name beside its line, in the highest row where it overlaps no label placed before it;
    returns the lowest label's bottom in axes fraction (1.0 when there is none)."""
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    lo, hi = ax.get_xlim()
    placed: list[Any] = []
    lowest = 1.0
    for name, ms in sorted(baselines, key=lambda b: b[1]):
        right = (ms - lo) / (hi - lo) > 0.7
        for row in range(len(baselines)):
            text = ax.text(
                ms,
                0.985 - 0.045 * row,
                f" {name} ",
                transform=ax.get_xaxis_transform(),
                fontsize=7,
                color="C2",
                ha="right" if right else "left",
                va="top",
                gid=LABEL_GID,
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 0.3},
            )
            box = text.get_window_extent(renderer)
            inside = box.x0 >= frame.x0 and box.x1 <= frame.x1
            if inside and not any(box.overlaps(other) for other in placed):
                placed.append(box)
                lowest = min(lowest, ax.transAxes.inverted().transform((0, box.y0))[1])
                break
            text.remove()
    return lowest


def plot_pareto(
    path: Path,
    records: list[TrialRecord],
    target_ms: float,
    baselines: list[tuple[str, float]],
    device: str,
    kind: str,
    metric: str,
) -> Path:
    import matplotlib.pyplot as plt

    fig = pareto_figure(records, target_ms, baselines, device, kind, metric)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path
