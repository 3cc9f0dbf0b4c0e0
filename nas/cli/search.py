"""`nas search --target-latency 80ms --device pixel`: platform-aware architecture search (docs/search.md)."""

from __future__ import annotations

import argparse
import re
import sys
import time
from typing import Any

from nas.cli import print_json
from nas.errors import NasError
from nas.search import (
    BACKENDS,
    EVALUATORS,
    SAMPLERS,
    SearchConfig,
    SearchResult,
    describe_arch,
    search,
)

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*$")


def parse_duration(text: str) -> float:
    """`30m`, `90s`, `1.5h`, `600` (seconds) → seconds."""
    match = _DURATION.match(text)
    if not match:
        raise NasError(f"--time-budget must be a duration such as 30m, 90s or 1h; got {text!r}")
    value = float(match.group(1)) * {"s": 1, "m": 60, "min": 60, "h": 3600}[match.group(2) or "s"]
    if value <= 0:
        raise NasError(f"--time-budget must be positive, got {text!r}")
    return value


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    d = SearchConfig()
    p = subparsers.add_parser(
        "search",
        help="find the most accurate architecture that meets a latency target on a device",
        description="MnasNet-style search: latency from the device's lookup table (before any training), "
        "accuracy "
        "from proxy training or a zero-cost score, reward ACC·(LAT/T)^w. Results go to OUT_DIR/NAME/.",
    )
    p.add_argument("--target-latency", metavar="T", help="e.g. 80ms, '80 ms', 0.08s, 80 (ms); required unless --resume")
    p.add_argument("--device", default=None, help=f"latency table: a device name or table JSON (default {d.device})")
    p.add_argument("--space", default=None, help=f"search space name or YAML (default {d.space})")
    p.add_argument(
        "--reward",
        default=None,
        metavar="{soft,hard}",
        help="soft: w = −0.07 either side of T (default); hard: w = 0 under T, −1 over (never trained)",
    )
    p.add_argument("--w", type=float, default=None, help="latency exponent w (≤ 0); overrides the reward's")
    p.add_argument(
        "--objective",
        default=None,
        metavar="{reward,pareto}",
        help="reward (default) or pareto: accuracy ↑ and latency ↓ as two objectives (NSGA-II)",
    )
    p.add_argument(
        "--sampler",
        default=None,
        metavar="{" + ",".join(SAMPLERS) + "}",
        help="tpe (default), nsga2 (default for pareto), random, pg (MnasNet-style policy gradient)",
    )
    p.add_argument(
        "--evaluator",
        default=None,
        metavar="{" + ",".join(EVALUATORS) + "}",
        help="train (default) or zero-cost",
    )
    p.add_argument("--data", default=None, help="synthetic (default), cifar10:DIR, imagefolder:DIR, npz:FILE")
    p.add_argument(
        "--resolution",
        type=int,
        default=None,
        help=f"deployment resolution at which latency is predicted (default {d.resolution})",
    )
    p.add_argument("--epochs", type=int, default=None, help="proxy training epochs per trial (train evaluator)")
    p.add_argument(
        "--proxy-resolution",
        type=int,
        default=None,
        help="image size for proxy training/scoring (default: the data's own, 32 for synthetic)",
    )
    p.add_argument(
        "--pruner",
        default=None,
        metavar="{median,halving,none}",
        help="stop hopeless trials early (default median)",
    )
    p.add_argument(
        "--window",
        default=None,
        metavar="F|none",
        help="soft reward: evaluate only candidates predicted within T·(1 ± F) (default 0.1); none: all",
    )
    p.add_argument("--trials", type=int, default=d.trials, help=f"trials in the run (default {d.trials})")
    p.add_argument(
        "--time-budget",
        default=None,
        metavar="DURATION",
        help="stop starting trials after this long, e.g. 30m (default 8m; 'none' for no limit)",
    )
    p.add_argument("--seed", type=int, default=None, help="sampler, data and training seed (default 0)")
    p.add_argument("--name", default=None, help="run name (default search-<timestamp>)")
    p.add_argument("--out-dir", default=d.out_dir, help="where run directories go (default runs)")
    p.add_argument("--resume", action="store_true", help="continue the run --name (a killed run loses one trial)")
    p.add_argument(
        "--backend",
        default="local",
        metavar="{" + ",".join(BACKENDS) + "}",
        help="local (default) or ray (Ray Tune)",
    )
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--workers", type=int, default=1, help="trials run at once (ray backend)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=run)


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """Options not given keep SearchConfig's defaults (or, with --resume, the run's stored values)."""
    d = SearchConfig()
    options: dict[str, Any] = {} if args.epochs is None else {"epochs": args.epochs}
    if args.epochs is not None and args.epochs < 1:
        raise NasError(f"--epochs must be at least 1, got {args.epochs}")
    if args.proxy_resolution is not None:
        if args.proxy_resolution < 8:
            raise NasError(f"--proxy-resolution must be at least 8, got {args.proxy_resolution}")
        options["resolution"] = args.proxy_resolution
    budget: float | None = d.time_budget_s
    if args.time_budget is not None:
        budget = None if args.time_budget.strip().lower() == "none" else parse_duration(args.time_budget)

    window: float | None = d.window
    if args.window is not None:
        if args.window.strip().lower() == "none":
            window = None
        else:
            try:
                window = float(args.window.strip().rstrip("%")) / (100 if args.window.strip().endswith("%") else 1)
            except ValueError:
                raise NasError(
                    f"--window must be a fraction such as 0.1 (or 10%) or none, got {args.window!r}"
                ) from None

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    if args.target_latency is None and not args.resume:
        raise NasError("--target-latency is required (e.g. --target-latency 80ms)")
    return SearchConfig(
        target_latency=pick(args.target_latency, d.target_latency),
        device=pick(args.device, d.device),
        space=pick(args.space, d.space),
        reward=pick(args.reward, d.reward),
        w=args.w,
        objective=pick(args.objective, d.objective),
        sampler=args.sampler,
        evaluator=pick(args.evaluator, d.evaluator),
        data=pick(args.data, d.data),
        resolution=pick(args.resolution, d.resolution),
        trials=args.trials,
        time_budget_s=budget,
        seed=pick(args.seed, d.seed),
        name=args.name,
        out_dir=args.out_dir,
        resume=args.resume,
        backend=args.backend,
        address=args.address,
        workers=args.workers,
        pruner=pick(args.pruner, d.pruner),
        window=window,
        evaluator_options=options,
    )


class _Progress:
    """A rich progress bar on stderr: trials done, best reward so far, time left."""

    def __init__(self, total: int, budget_s: float | None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.budget_s, self.started = budget_s, time.monotonic()
        self.best: float | None = None
        self.started_bar = False
        self.bar = Progress(
            TextColumn("search"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[best]}"),
            TimeElapsedColumn(),
            TextColumn("{task.fields[left]}"),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = self.bar.add_task("search", total=total, best="best —", left=self._left())

    def _left(self) -> str:
        if self.budget_s is None:
            return ""
        left = max(0.0, self.budget_s - (time.monotonic() - self.started))
        return f"{int(left // 60)}:{int(left % 60):02d} left"

    def __call__(self, record: dict[str, Any], done: int) -> None:
        if not self.started_bar:  # started on the first trial, so that input errors print alone
            self.bar.start()
            self.started_bar = True
        reward = record.get("reward") if record.get("status") == "complete" else None
        if reward is not None and (self.best is None or reward > self.best):
            self.best = reward
        best = "best —" if self.best is None else f"best {self.best:.4f}"
        self.bar.update(self.task, completed=done, best=best, left=self._left())

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started_bar:
            self.bar.stop()


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    show = sys.stderr.isatty() or not args.json
    if show:
        with _Progress(config.trials, config.time_budget_s) as progress:
            result = search(config, progress=progress)
    else:
        result = search(config)
    if args.json:
        print_json(result.to_json())
        return 0
    print_result(result)
    return 0


def print_result(result: SearchResult) -> None:
    from nas.arch import Arch

    est = "estimated" if result.table_kind == "estimated" else "predicted"
    screened = f" ({result.screened_out} more screened out on predicted latency)" if result.screened_out else ""
    print(
        f"run {result.run_dir}: {result.trials} trials{screened} in {result.wall_s:.0f} s; stopped by {result.stopped}"
    )
    for note in result.notes:
        print(f"note: {note}")
    if result.best is None:
        print("no trial completed")
    else:
        b = result.best
        print(
            f"best: trial {b['number']}, reward {b['reward']:.4f}, accuracy {b['accuracy']:.4f}, "
            f"{est} latency {b['latency_ms']:.1f} ms"
        )
        print(f"  {describe_arch(Arch.from_dict(b['arch']))}")
    print("files:")
    for path in result.files:
        print(f"  {path}")
