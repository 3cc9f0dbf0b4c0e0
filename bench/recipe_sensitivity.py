"""Issue 6, a check on item 2: how much does the one shared training recipe's learning rate decide the ranking?

Trains MobileNetV2 1.0, MobileNetV3-Large 1.0 and, when item 2 has run, its searched pixel-80ms network, with
the item-2 recipe of round 1 (`train_one`: 15 epochs at 32×32, batch 128, SGD cosine, crop+flip, residuals
zero-initialised) at several peak learning rates, one seed. Test top-1 per network and rate.

Full size (9 trainings of 15 epochs, two at a time: about 6 min on the 2-core VM):

    python bench/recipe_sensitivity.py

Smoke (2 optimizer steps; figures meaningless): python bench/recipe_sensitivity.py --smoke --out DIR
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from evidence_common import Stopwatch, out_dir, provenance, save

_WORKER_DATA: dict[str, Any] = {}


def train_one(job: dict[str, Any]) -> dict[str, Any]:
    """Train one network with item 2's round-1 recipe (one TrainConfig for every network) and return its top-1;
    runs inline or in a worker process."""
    import torch

    from nas.accuracy import TrainConfig, evaluate, load_data, train
    from nas.accuracy.evaluator import zero_init_residuals
    from nas.arch import Arch
    from nas.model import build

    torch.set_num_threads(1)
    if job["data"] not in _WORKER_DATA:
        _WORKER_DATA.clear()
        _WORKER_DATA[job["data"]] = load_data(job["data"], seed=0)
    data = _WORKER_DATA[job["data"]]
    arch = Arch.from_dict(job["arch"]).replace(resolution=data.image_size, num_classes=data.num_classes)
    torch.manual_seed(job["seed"])
    model = build(arch)
    zero_init_residuals(model)
    cfg = TrainConfig(**job["recipe"], seed=job["seed"])
    started = time.perf_counter()
    result = train(model, data, cfg)
    return {
        "key": job["key"],
        "seed": job["seed"],
        "val_top1": round(evaluate(model, data.val), 5),
        "test_top1": round(evaluate(model, data.test), 5),
        "steps": getattr(result, "steps", None),
        "params": arch.params,
        "wall_s": round(time.perf_counter() - started, 2),
    }


def networks(searched_from: Path, cell: str) -> dict[str, dict[str, Any]]:
    """The zoo families at width 1.0, plus item 2's searched network of `cell` where its results exist."""
    from nas import zoo
    from nas.io import read_json

    nets = {name: zoo.get(name, width=1.0).to_dict() for name in ("mobilenet_v2", "mobilenet_v3_large")}
    if searched_from.exists():
        found = read_json(searched_from, "evidence results").get("cells", {}).get(cell, {}).get("search", {})
        if found.get("arch"):
            nets[f"searched {cell}"] = found["arch"]
    return nets


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="npz:../shared/data/cifar10_subset.npz")
    p.add_argument("--out", default="bench/results/recipe-sensitivity")
    p.add_argument("--lrs", nargs="+", type=float, default=[0.05, 0.1, 0.2], help="peak learning rates")
    p.add_argument("--epochs", type=float, default=15)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--searched", default="bench/results/evidence-search/results.json", help="item 2's results")
    p.add_argument("--cell", default="pixel-80ms", help="which of item 2's searched networks to add")
    p.add_argument("--jobs", type=int, default=2, help="trainings in parallel, one thread each")
    p.add_argument("--smoke", action="store_true", help="tiny sizes: checks the code path, figures mean nothing")
    args = p.parse_args(argv)
    out = out_dir(args.out)
    made = provenance(args.smoke)  # at the start: the load average it records is the one the runs began under
    recipe: dict[str, Any] = (
        {"epochs": 1, "batch_size": 128, "max_steps": 2}
        if args.smoke
        else {
            "epochs": args.epochs,
            "batch_size": 128,
        }
    )
    jobs = [
        {"key": [name, lr], "seed": args.seed, "arch": arch, "data": args.data, "recipe": {**recipe, "lr": lr}}
        for name, arch in networks(Path(args.searched), args.cell).items()
        for lr in args.lrs
    ]
    clock = Stopwatch()
    if args.jobs > 1:
        with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            done = list(pool.map(train_one, jobs))
    else:
        done = [train_one(j) for j in jobs]
    clock.add("trainings (wall)", clock.total())
    top1: dict[str, dict[str, float]] = {}
    for run in done:
        name, lr = run["key"]
        top1.setdefault(name, {})[f"{lr:g}"] = run["test_top1"]
    result = {
        **made,
        "settings": vars(args).copy(),
        "recipe": recipe,
        "test_top1": top1,
        "runs": done,
        "wall_s": {**clock.phases, "total (this invocation)": clock.total()},
    }
    save(out, "recipe", result)
    for name, by_lr in top1.items():
        print(f"{name:28s} " + "  ".join(f"lr {lr}: {acc:.3f}" for lr, acc in by_lr.items()))
    print(f"wrote {out / 'recipe.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
