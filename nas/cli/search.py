"""`nas search --target-latency 80ms --device pixel`: platform-aware architecture search (docs/search.md)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, NoReturn

from nas.cli import print_json
from nas.search import (
    BACKENDS,
    SAMPLERS,
    SearchConfig,
    SearchInterrupted,
    SearchResult,
    TrialRecord,
    advice,
    describe_arch,
    next_commands,
    search,
)
from nas.search.config import DEFAULT_TRIALS
from nas.search.reward import ACCEPTED


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    d = SearchConfig()
    p = subparsers.add_parser(
        "search",
        help="find the most accurate architecture that meets a latency target on a device",
        description="MnasNet-style search: latency from the device's lookup table (before any training), "
        "accuracy "
        "from proxy training or a zero-cost score, reward ACC·(LAT/T)^w. Results go to OUT_DIR/NAME/.",
    )
    p.error = _one_line_error  # type: ignore[method-assign]
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
        help="tpe (default), nsga2 (default for pareto), random, pg (MnasNet-style policy gradient), "
        "evolution (aging evolution, Real et al. 2019)",
    )
    p.add_argument(
        "--evaluator",
        default=None,
        metavar="KIND[:ARG]",
        help="how a candidate's accuracy is measured: train (default, a short proxy training), zero-cost, "
        "or another evaluator of nas.accuracy",
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
    p.add_argument(
        "--trials",
        type=int,
        default=None,
        help=f"evaluated trials in the run (default: the evaluator's, else {DEFAULT_TRIALS}; with --resume the run's)",
    )
    p.add_argument(
        "--time-budget",
        default=None,
        metavar="DURATION",
        help="stop starting trials after this long, e.g. 30m (default 8m; 'none' for no limit)",
    )
    p.add_argument("--seed", type=int, default=None,
                   help="sampler, data and training seed (default 0); with a supernet evaluator, the sampler's "
                        "alone (the data split and the reads stay the supernet's)")
    p.add_argument("--name", default=None, help="run name (default search-<timestamp>)")
    p.add_argument("--out-dir", default=None, help=f"where run directories go (default {d.out_dir})")
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


def _one_line_error(message: str) -> NoReturn:
    """argparse's own mistakes as one `nas: error:` line (a value such as -5ms reads as an option to it)."""
    if "--target-latency" in message and "expected one argument" in message:
        message = f"--target-latency needs a value: {ACCEPTED}"
    print(f"nas: error: {message} (see nas search --help)", file=sys.stderr)
    sys.exit(2)


def config_from_args(args: argparse.Namespace) -> SearchConfig:
    """Options not given keep SearchConfig's defaults (or, with --resume, the run's stored values); every
    check is SearchConfig's."""
    d = SearchConfig()
    options: dict[str, Any] = {}
    if args.epochs is not None:
        options["epochs"] = args.epochs
    if args.proxy_resolution is not None:
        options["resolution"] = args.proxy_resolution

    def pick(value: Any, default: Any) -> Any:
        return default if value is None else value

    return SearchConfig(
        target_latency=args.target_latency,
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
        time_budget_s=pick(args.time_budget, d.time_budget_s),
        seed=pick(args.seed, d.seed),
        name=args.name,
        out_dir=pick(args.out_dir, d.out_dir),
        resume=args.resume,
        backend=args.backend,
        address=args.address,
        workers=args.workers,
        pruner=pick(args.pruner, d.pruner),
        window=pick(args.window, d.window),
        evaluator_options=options,
    )


class _Progress:
    """A rich progress bar on stderr: trials evaluated, best reward so far, time left."""

    def __init__(self) -> None:
        from nas.progress import progress_bar

        self.started = time.monotonic()
        self.best: float | None = None
        self.task: Any = None
        # The time left is the search's own budget (a field), not a rate estimate: trials vary too much.
        self.bar = progress_bar("search", unit="{task.fields[best]}  {task.fields[left]}", time_left=False)

    def _left(self, budget_s: float | None) -> str:
        if budget_s is None:
            return ""
        left = max(0.0, budget_s - (time.monotonic() - self.started))
        return f"{int(left // 60)}:{int(left % 60):02d} left"

    def __call__(self, record: TrialRecord, done: int, total: int, budget_s: float | None) -> None:
        if self.task is None:  # started on the first trial, so that input errors print alone
            self.task = self.bar.add_task("search", total=total, best="best —", left="")
            self.bar.start()
        if record.status == "complete" and record.reward is not None:
            self.best = record.reward if self.best is None else max(self.best, record.reward)
        best = "best —" if self.best is None else f"best {self.best:.4f}"
        self.bar.update(self.task, completed=done, total=total, best=best, left=self._left(budget_s))

    def __enter__(self) -> _Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.bar.stop()


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    show = sys.stderr.isatty() or not args.json
    try:
        if show:
            with _Progress() as progress:
                result = search(config, progress=progress)
        else:
            result = search(config)
    except SearchInterrupted as stop:
        if not args.json:
            print_result(stop.result)
        print(
            f"nas: interrupted; the run is kept: resume it with nas search --resume --name {stop.result.config.name}"
            f" --out-dir {stop.result.config.out_dir}",
            file=sys.stderr,
        )
        return 130
    if args.json:
        print_json(result.to_json())
        return 0
    print_result(result)
    return 0


def print_result(result: SearchResult) -> None:
    est = "estimated" if result.table_kind == "estimated" else "predicted"
    screened = f" ({result.screened_out} more screened out on predicted latency)" if result.screened_out else ""
    print(
        f"run {result.run_dir}: {result.trials} trial{'' if result.trials == 1 else 's'}{screened} in "
        f"{result.wall_s:.0f} s; stopped by {result.stopped}"
    )
    for note in result.notes:
        print(f"note: {note}")
    if result.best is None:
        print("no trial completed")
    else:
        b = result.best
        print(
            f"best: trial {b.number}, reward {b.reward:.4f}, {result.metric} {b.accuracy:.4f}, "
            f"{est} latency {b.latency_ms:.1f} ms"
        )
        print(f"  {describe_arch(b.arch_spec('best'))}")
    for line in advice(result):
        print(line)
    print("files:")
    for path in result.files:
        print(f"  {path}")
    print("next:")
    for command, why in next_commands(result):
        print(f"  {command}")
        print(f"      {why}")
