"""Does the architecture matter on the built-in `synthetic` task? Train several networks with one budget.

Linear baselines on raw pixels (closed-form ridge classifier, nearest class mean), then a tiny CNN, a plain
5-layer CNN and zoo MobileNets (at the data's 32×32), each trained with the same `TrainConfig` (residual blocks
zero-initialised, as the search's evaluator does); reports validation and test top-1 and seconds, and writes
`<out>.json` and a bar chart `<out>.png`.

    MALLOC_MMAP_THRESHOLD_=67108864 MALLOC_TRIM_THRESHOLD_=1073741824 \\
    python bench/accuracy_synthetic.py --epochs 3 --out bench/results/accuracy_synthetic
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path

import torch

from nas import zoo
from nas.accuracy import TrainConfig, evaluate, load_data, train
from nas.accuracy.evaluator import zero_init_residuals
from nas.arch import Arch, Conv, Head
from nas.io import write_json
from nas.model import build


def linear_baselines(data) -> dict[str, float]:
    a = data.train.x.flatten(1)
    a = torch.cat([a, torch.ones(len(a), 1)], 1)
    b = torch.cat([data.test.x.flatten(1), torch.ones(len(data.test), 1)], 1)
    targets = torch.nn.functional.one_hot(data.train.y, data.num_classes).float()
    out = {}
    for ridge in (1.0, 100.0, 1000.0):
        w = torch.linalg.solve(a.T @ a + ridge * torch.eye(a.shape[1]), a.T @ targets)
        out[f"ridge λ={ridge:g}"] = float(((b @ w).argmax(1) == data.test.y).float().mean())
    means = torch.stack([data.train.x[data.train.y == c].flatten(1).mean(0) for c in range(data.num_classes)])
    nearest = torch.cdist(data.test.x.flatten(1), means).argmin(1)
    out["nearest class mean"] = float((nearest == data.test.y).float().mean())
    return out


def sample_grid(path: Path, seed: int = 0) -> None:
    """Twenty generated images with their class names (`<out>_samples.png`)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from nas.accuracy.synthetic import CLASS_NAMES, generate

    x, y = generate(20, seed=seed)
    fig, axes = plt.subplots(2, 10, figsize=(15, 3.4))
    for ax, img, label in zip(axes.flat, x, y, strict=True):
        ax.imshow(img.transpose(1, 2, 0))
        ax.set_title(CLASS_NAMES[label], fontsize=7)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def nets(num_classes: int) -> dict[str, Arch]:
    def plain(widths: list[int], strides: list[int]) -> Arch:
        blocks = [Conv(out=w, k=3, s=s) for w, s in zip(widths, strides, strict=True)]
        stages = [[b] for b in blocks[1:]]
        return Arch(resolution=32, num_classes=num_classes, stem=blocks[:1], stages=stages, head=Head())

    return {
        "tiny CNN (8-16)": plain([8, 16], [2, 2]),
        "plain CNN (32-64-64-128-128)": plain([32, 64, 64, 128, 128], [1, 2, 1, 2, 2]),
        "MobileNetV3-Small": zoo.get("mobilenet_v3_small", resolution=32, num_classes=num_classes),
        "MobileNetV3-Large 0.75": zoo.get("mobilenet_v3_large", width=0.75, resolution=32, num_classes=num_classes),
        "MobileNetV3-Large": zoo.get("mobilenet_v3_large", resolution=32, num_classes=num_classes),
        "MobileNetV2 1.0": zoo.get("mobilenet_v2", resolution=32, num_classes=num_classes),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default="synthetic")
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=0.05)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--augment", action="store_true", help="random crop + flip (off in the search's proxy)")
    p.add_argument("--only", nargs="*", help="substrings of the net names to run")
    p.add_argument("--out", default="bench/results/accuracy_synthetic")
    args = p.parse_args()
    torch.set_num_threads(1)
    data = load_data(args.data, seed=args.seed)
    cfg = TrainConfig(
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed, augment=args.augment
    )
    results: dict[str, dict] = {name: {"test": acc} for name, acc in linear_baselines(data).items()}
    for name, acc in results.items():
        print(f"{name:32s} test {acc['test']:.3f}", flush=True)
    for name, arch in nets(data.num_classes).items():
        if args.only and not any(s in name for s in args.only):
            continue
        torch.manual_seed(args.seed)
        model = build(arch)
        zero_init_residuals(model)
        result = train(model, data, cfg)
        results[name] = {"val": result.accuracy, "test": evaluate(model, data.test), "seconds": result.seconds,
                         "history": result.history, "macs_M": arch.macs / 1e6}
        print(f"{name:32s} val {result.accuracy:.3f} test {results[name]['test']:.3f} ({result.seconds:.0f}s)",
              flush=True)

    out = Path(args.out)
    sample_grid(out.with_name(out.name + "_samples.png"), args.seed)
    write_json(out.with_suffix(".json"), {
        "command": "python bench/accuracy_synthetic.py "
        + " ".join(f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if v),
        "machine": f"{platform.node()} {platform.machine()}, torch {torch.__version__}, 1 thread",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "data": data.summary(),
        "train_config": cfg.__dict__,
        "results": results,
    })
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, ax = plt.subplots(figsize=(8, 0.42 * len(names) + 1))
    test = [results[n]["test"] for n in names]
    ax.barh(names, test, color=["#bbb" if "seconds" not in results[n] else "#4a7fb5" for n in names])
    ax.axvline(1 / data.num_classes, color="k", ls="--", lw=1, label="chance")
    for i, v in enumerate(test):
        ax.text(v + 0.005, i, f"{v:.2f}", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"test top-1 ({data.name}; nets: {args.epochs:g} epochs, batch {args.batch_size}, lr {args.lr})")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=110)
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
