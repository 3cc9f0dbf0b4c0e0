"""`nas train SOURCE --data DATA --out DIR`: train an architecture with the project's recipe (nas.training)."""

from __future__ import annotations

import argparse
from typing import Any

from nas.cli import print_json
from nas.training import DEFAULT_EPOCHS, LR_GRID, LR_MAX, SEEDS_MAX


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    grid = ", ".join(f"{r:g}" for r in LR_GRID)
    p = subparsers.add_parser(
        "train",
        help="train an architecture (zoo name, JSON, search run, NetAdapt output) and save its weights",
        description="Train SOURCE from scratch with the project's recipe (SGD + Nesterov, warm-up and cosine "
        "decay, label smoothing, crop and flip) at the data's image size. --lr auto trains once per rate of "
        f"{{{grid}}} and keeps the best on the validation split; then each seed trains at that rate. The test split "
        "is read only with --test. DIR then holds arch.json, weights.pt, history.json (the learning curve), "
        "curve.png and result.json (with several seeds: one seed-N/ each, and mean ± standard error), which "
        "`nas export DIR` and `nas netadapt DIR` take. A killed run continues with --resume.",
    )
    p.add_argument(
        "source", metavar="SOURCE", help="zoo name, architecture JSON file, runs/<name>, or NetAdapt/train output dir"
    )
    p.add_argument("--data", required=True, metavar="DATA", help="synthetic, cifar10:DIR, imagefolder:DIR or npz:FILE")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (new or empty, or --resume)")
    p.add_argument("--epochs", type=int, default=DEFAULT_EPOCHS, metavar="N", help=f"default {DEFAULT_EPOCHS}")
    p.add_argument(
        "--lr", default="auto", metavar="auto|X", help=f"peak learning rate in (0, {LR_MAX:g}], or auto (default)"
    )
    p.add_argument(
        "--lr-epochs",
        type=int,
        metavar="N",
        help="epochs of each --lr auto run (default: --epochs; then the chosen rate's run is the first seed's)",
    )
    p.add_argument("--seeds", type=int, default=1, metavar="K", help=f"seeds 0…K-1 (at most {SEEDS_MAX})")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1: runs are then reproducible)")
    p.add_argument("--test", action="store_true", help="also report top-1 on the test split")
    p.add_argument("--resume", action="store_true", help="continue the training in DIR")
    p.add_argument("--json", action="store_true", help="print one JSON document (progress goes to stderr)")
    p.set_defaults(func=run)


class _Bar:
    """A rich progress bar on stderr over every optimizer step of every run, with the time left."""

    def __init__(self) -> None:
        from nas.progress import progress_bar

        self.bar = progress_bar("train {task.fields[label]}", unit="steps")
        self.task: Any = None

    def __call__(self, done: int, total: int, label: str) -> None:
        if self.task is None:  # started on the first step, so that input errors print alone
            self.bar.start()
            self.task = self.bar.add_task("train", total=total, label=label)
        self.bar.update(self.task, completed=done, label=label)

    def __enter__(self) -> _Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.bar.stop()


def run(args: argparse.Namespace) -> int:
    from nas.accuracy.train import TrainConfig
    from nas.training import train_source

    recipe = TrainConfig(batch_size=args.batch_size, threads=args.threads)
    kwargs = dict(
        epochs=args.epochs,
        lr=args.lr,
        seeds=args.seeds,
        lr_epochs=args.lr_epochs,
        test=args.test,
        resume=args.resume,
        recipe=recipe,
    )
    with _Bar() as bar:
        result = train_source(args.source, args.data, args.out, progress=bar, **kwargs)
    s = result.summary
    if args.json:
        print_json({**s, "out": str(result.out), "runs": result.runs})
        return 0
    if result.lr_search:
        tried = ", ".join(f"{r:g}: {'diverged' if a is None else f'{a:.4f}'}" for r, a in result.lr_search.items())
        print(f"lr auto: validation top-1 {tried} → lr {result.lr:g}")

    def fmt(stat: dict[str, Any]) -> str:
        return f"{stat['mean']:.4f}" + (f" ± {stat['se']:.4f} (s.e., n={stat['n']})" if stat["se"] is not None else "")

    search = f" (rate search {s['lr_search_seconds']:.0f} s)" if s["lr_search_seconds"] is not None else ""
    print(
        f"{s['arch']}: {s['epochs']} epochs at lr {result.lr:g}, {len(result.runs)} seed(s): training "
        f"{s['seconds']:.0f} s{search}"
    )
    print(f"  val top-1 {fmt(s['val_top1'])}" + (f"; test top-1 {fmt(s['test_top1'])}" if s["test_top1"] else ""))
    for r in result.runs:
        if r.get("resumed_from_epoch"):
            print(f"  seed {r['seed']}: resumed after epoch {r['resumed_from_epoch']}")
    dirs = [result.out] if len(result.runs) == 1 else [result.out / f"seed-{r['seed']}" for r in result.runs]
    print(f"  weights: {', '.join(str(d / 'weights.pt') for d in dirs)}")
    print(f"  curve: {result.out / 'curve.png'}; result: {result.out / 'result.json'}")
    print(f"  export: nas export {dirs[0]} --format onnx --out DIR")
    return 0
