"""`nas supernet train|extract`: a weight-sharing supernet of a space, and stand-alone models cut from it
(docs/supernet.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from nas.cli import print_json
from nas.errors import NasError


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "supernet",
        help="train a weight-sharing supernet once; read or extract any subnet of it",
        description="Once-for-All / BigNAS style supernet on CPU: `train` it on your data, search it with "
        "`nas search --evaluator supernet:DIR`, `extract` a subnet as a stand-alone trained model.",
    )
    sub = p.add_subparsers(dest="supernet_command", metavar="{train,predictor,extract}")
    sub.required = True

    from nas.supernet.train import SupernetConfig

    d = SupernetConfig()
    t = sub.add_parser(
        "train",
        help="train a supernet of a search space (checkpoint every epoch, --resume after a kill)",
        description="Sandwich rule (largest, smallest, random subnets) with in-place distillation from the "
        "largest, after a warm-up of the largest alone. Writes DIR/supernet.json, checkpoint.pt, log.json, "
        "curves.png.",
    )
    t.add_argument("--space", default=None, help="search space name or YAML (default mobilenetv3)")
    t.add_argument("--data", default=None, help="synthetic (default), npz:FILE[#first=N], cifar10:DIR, imagefolder:DIR")
    t.add_argument("--out", required=True, metavar="DIR", help="run directory")
    t.add_argument("--epochs", type=int, default=None, help=f"total epochs (default {d.epochs}); on --resume, extends")
    t.add_argument("--warmup-epochs", type=int, default=None,
                   help=f"epochs of the largest subnet alone before the sandwich (default {d.warmup_epochs})")
    t.add_argument("--batch-size", type=int, default=None, help=f"default {d.batch_size}")
    t.add_argument("--lr", type=float, default=None, help=f"peak learning rate (default {d.lr})")
    t.add_argument("--threads", type=int, default=None, help=f"torch threads (default {d.threads})")
    t.add_argument("--seed", type=int, default=None, help="data split, batch order and subnet draws (default 0)")
    t.add_argument("--resume", action="store_true", help="continue the run in --out from its last finished epoch")
    t.add_argument("--json", action="store_true", help="print one JSON document")
    t.set_defaults(func=run_train)

    r = sub.add_parser(
        "predictor",
        help="fit an accuracy predictor on reads of random subnets (for searches of thousands of candidates)",
        description="Reads --samples random subnets (BN recalibrated, validation top-1, as the supernet "
        "evaluator does), fits ridge regression on their choices, reports its held-out Kendall τ, writes "
        "DIR/predictor.json. Then: nas search --evaluator supernet-predictor:DIR. A killed fit resumes.",
    )
    r.add_argument("dir", metavar="DIR", help="supernet run directory")
    r.add_argument("--samples", type=int, default=300, help="subnets to read (default 300)")
    r.add_argument("--data", default=None, help="default: the supernet's own data")
    r.add_argument("--json", action="store_true", help="print one JSON document")
    r.set_defaults(func=run_predictor)

    e = sub.add_parser(
        "extract",
        help="a subnet as a stand-alone model with its inherited (optionally fine-tuned) weights",
        description="Writes D/arch.json and D/weights.pt (a state_dict of nas.model.build(arch)) and "
        "D/history.json: what `nas export D`, `nas.load` and `nas netadapt --weights` take.",
    )
    e.add_argument("dir", metavar="DIR", help="supernet run directory")
    e.add_argument("--arch", required=True, metavar="SOURCE",
                   help="architecture JSON, search run directory (its best), or 'largest' / 'smallest'")
    e.add_argument("--trial", type=int, default=None, help="a search run's trial instead of its best")
    e.add_argument("--out", required=True, metavar="D", help="output directory")
    e.add_argument("--finetune-epochs", type=float, default=0, help="fine-tune the extracted model (default 0)")
    e.add_argument("--data", default=None, help="data to recalibrate and fine-tune on (default: the supernet's)")
    e.add_argument("--json", action="store_true", help="print one JSON document")
    e.set_defaults(func=run_extract)


def _bar(disable: bool) -> Any:
    from nas.progress import progress_bar

    return progress_bar("[bold]supernet[/] {task.description}", disable=disable)


def run_train(args: argparse.Namespace) -> int:
    import dataclasses

    from nas.accuracy import load_data
    from nas.io import writable_dir
    from nas.space import DEFAULT_SPACE, load_space
    from nas.supernet.model import check_space
    from nas.supernet.train import CHECKPOINT, META, SupernetConfig, load_run, train_supernet

    out = Path(args.out)
    overrides = {
        k: v
        for k, v in {
            "epochs": args.epochs,
            "warmup_epochs": args.warmup_epochs,
            "batch_size": args.batch_size,
            "lr": args.lr,
            "threads": args.threads,
            "seed": args.seed,
        }.items()
        if v is not None
    }
    if args.resume:
        run = load_run(out)  # a foreign or corrupt directory fails here, before anything is written
        extra = sorted(set(overrides) - {"epochs", "threads"})
        if extra:
            raise NasError(f"--resume keeps the run's recipe; --{extra[0].replace('_', '-')} cannot change it")
        if args.space and load_space(args.space).name != run.meta["space"]:
            raise NasError(f"{out} holds a supernet of space {run.meta['space']!r}, not {args.space!r}")
        space = run.meta.get("space_source", run.meta["space"])
        data_spec = args.data or run.meta["data"].get("spec", run.meta["data"]["name"])
        seed = run.config.seed
        cfg = dataclasses.replace(run.config, **overrides) if overrides else None
    else:
        if (out / CHECKPOINT).exists() or (out / META).exists():
            raise NasError(f"{out} already holds a supernet; pass --resume to continue it, or choose another --out")
        space = args.space or DEFAULT_SPACE
        data_spec = args.data or "synthetic"
        seed = overrides.get("seed", 0)
        cfg = SupernetConfig(**overrides)
    check_space(load_space(space))  # a space that does not fit fails before anything is written
    data = load_data(data_spec, seed=seed)
    writable_dir(out)
    bar = _bar(args.json)
    with bar:
        task = bar.add_task("", total=None)

        def progress(epoch: int, epochs: int, step: int, steps: int, loss: float) -> None:
            bar.update(task, total=epochs * steps, completed=epoch * steps + step,
                       description=f"epoch {epoch + 1}/{epochs} loss {loss:.3f}")

        run = train_supernet(space, data, out, cfg, resume=args.resume, progress=progress, data_spec=data_spec)
    last = run.log[-1] if run.log else {}
    summary = {
        "dir": str(out),
        "space": run.meta["space"],
        "data": run.meta["data"]["name"],
        "epochs": run.epoch,
        "last": last,
        "files": {n: str(out / n) for n in ("supernet.json", "checkpoint.pt", "log.json", "curves.png")},
    }
    if args.json:
        print_json(summary)
    else:
        print(f"supernet of {summary['space']} on {summary['data']}: {run.epoch} epochs in {out}")
        if last:
            print(
                f"validation top-1 (BN recalibrated): largest {last['val_largest']:.4f}, smallest "
                f"{last['val_smallest']:.4f}, fixed random subnet {last['val_random']:.4f}"
            )
    return 0


def run_extract(args: argparse.Namespace) -> int:
    from nas.supernet.extract import extract_subnet

    if args.finetune_epochs < 0:
        raise NasError(f"--finetune-epochs must be ≥ 0, got {args.finetune_epochs}")
    result = extract_subnet(
        args.dir, args.arch, args.out, finetune_epochs=args.finetune_epochs, data=args.data, trial=args.trial
    )
    if args.json:
        print_json(result)
    else:
        ft = result.get("finetuned_val_top1")
        print(
            f"{result['arch']}: validation top-1 {result['inherited_val_top1']:.4f} with inherited weights"
            + (f", {ft:.4f} after {args.finetune_epochs:g} epochs of fine-tuning" if ft is not None else "")
            + f" → {args.out}/arch.json, weights.pt"
        )
    return 0


def run_predictor(args: argparse.Namespace) -> int:
    from nas.accuracy import build_evaluator
    from nas.supernet.extract import load_matching_data
    from nas.supernet.predictor import fit_predictor
    from nas.supernet.train import load_run

    if args.samples < 10:
        raise NasError(f"--samples must be at least 10, got {args.samples}")
    run = load_run(args.dir)
    data = load_matching_data(run, args.data)
    space = run.meta.get("space_source", run.meta["space"])
    evaluator = build_evaluator(f"supernet:{args.dir}", data, space=space, seed=run.config.seed)
    bar = _bar(args.json)
    with bar:
        task = bar.add_task("reads", total=args.samples)
        result = fit_predictor(args.dir, evaluator, args.samples, seed=run.config.seed,
                               progress=lambda done, total: bar.update(task, completed=done))
    summary = {"predictor": str(Path(args.dir) / "predictor.json"), "samples": result["samples"],
               "holdout": result["holdout"], "supernet_epoch": run.epoch}
    if args.json:
        print_json(summary)
    else:
        h = result["holdout"]
        print(f"predictor fitted on {result['samples']} reads of epoch {run.epoch}: held-out Kendall τ "
              f"{h['kendall_tau']:.3f}, mean abs error {h['mae']:.4f} ({h['n']} reads) → {summary['predictor']}")
    return 0
