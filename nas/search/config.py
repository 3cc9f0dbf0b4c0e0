"""`SearchConfig`: everything a search needs, and every check of it (the CLI only parses strings into it).

`SearchConfig.validated()` is the one place a search's settings are checked and normalised; a Python caller
gets the same one-line `NasError` as `nas search` for the same bad value.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field
from typing import Any

from nas.errors import NasError
from nas.search.reward import make_reward, parse_target
from nas.search.samplers import SAMPLERS

OBJECTIVES = ("reward", "pareto")
BACKENDS = ("local", "ray")
PRUNERS = ("median", "halving", "none")
DEFAULT_TRIALS = 40  # when neither --trials nor the evaluator (`default_trials`) says
DEFAULT_OUT_DIR = "runs"

# Documented ranges of the numbers a user hands in (docs/search.md, "Limits").
MAX_TRIALS = 1_000_000
MAX_SEED = 2**32 - 1  # numpy's seeds
MAX_RESOLUTION = 4096
MIN_RESOLUTION = 32
MIN_PROXY_RESOLUTION = 8
MAX_EPOCHS = 10_000
MAX_WORKERS = 1024

_DURATION = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(s|m|min|h)?\s*$")


def parse_duration(text: str | float | int | None) -> float | None:
    """`30m`, `90s`, `1.5h`, `600` (seconds), a number of seconds, or `none`/None (no limit) → seconds."""
    if text is None or (isinstance(text, str) and text.strip().lower() == "none"):
        return None
    if isinstance(text, bool):
        raise NasError(f"--time-budget must be a duration such as 30m, 90s or 1h, or none; got {text!r}")
    if isinstance(text, int | float):
        value = float(text)
    else:
        match = _DURATION.match(text)
        if not match:
            raise NasError(f"--time-budget must be a duration such as 30m, 90s or 1h, or none; got {text!r}")
        value = float(match.group(1)) * {"s": 1, "m": 60, "min": 60, "h": 3600}[match.group(2) or "s"]
    if not math.isfinite(value) or value <= 0:
        raise NasError(f"--time-budget must be a positive duration such as 30m, 90s or 1h, or none; got {text!r}")
    return value


def parse_window(value: str | float | int | None) -> float | None:
    """`0.1`, `10%` or `none`/None → a fraction of the target (0.1 = ±10%), or None (no window)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return None
    bad = f"--window must be a fraction above 0 such as 0.1 (or 10%), at most 10, or none; got {value!r}"
    if isinstance(value, bool):
        raise NasError(bad)
    if isinstance(value, str):
        text = value.strip()
        try:
            number = float(text.rstrip("%")) / (100 if text.endswith("%") else 1)
        except ValueError:
            raise NasError(bad) from None
    elif isinstance(value, int | float):
        number = float(value)
    else:
        raise NasError(bad)
    if not (math.isfinite(number) and 0 < number <= 10):
        raise NasError(bad)
    return number


def _int_in(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise NasError(f"{name} must be an integer from {low:,} to {high:,}, got {value!r}")
    return value


@dataclass
class SearchConfig:
    """Everything a search needs; saved as the run's config.json (what `--resume` reloads)."""

    target_latency: str | float | None = None  # required for a new run: `80ms`, `0.08s`, 80 (ms)
    device: str = "pixel"
    space: str = "mobilenetv3"
    reward: str = "soft"
    w: float | None = None
    objective: str = "reward"
    sampler: str | None = None  # None: tpe for the reward, nsga2 for pareto
    evaluator: str = "train"  # KIND or KIND:ARG, passed to nas.accuracy (e.g. supernet:DIR)
    data: str = "synthetic"
    resolution: int = 224  # deployment resolution: latency is always predicted here
    trials: int | None = None  # evaluated trials; None: the evaluator's `default_trials`, else DEFAULT_TRIALS
    time_budget_s: float | str | None = 480.0  # seconds, a duration string ("30m"), or None
    seed: int = 0
    name: str | None = None
    out_dir: str = DEFAULT_OUT_DIR
    resume: bool = False
    backend: str = "local"
    address: str | None = None
    workers: int = 1
    pruner: str = "median"
    window: float | str | None = 0.1  # soft reward: only candidates predicted within T·(1 ± window) are evaluated
    evaluator_options: dict[str, Any] = field(default_factory=dict)

    # Fields that define what a run searches; a resumed run keeps them.
    IDENTITY = (
        "target_latency",
        "device",
        "space",
        "reward",
        "w",
        "objective",
        "sampler",
        "evaluator",
        "data",
        "resolution",
        "seed",
        "pruner",
        "window",
        "evaluator_options",
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SearchConfig:
        if not isinstance(data, dict):
            raise NasError("a run config must be a JSON object")
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def sampler_name(self) -> str:
        return self.sampler or ("nsga2" if self.objective == "pareto" else "tpe")

    def validated(self) -> SearchConfig:
        """This config checked, with durations and windows parsed; a NasError names the first bad value."""
        c = self
        if c.target_latency is None:
            raise NasError("--target-latency is required (e.g. --target-latency 80ms)")
        make_reward(c.target_latency, c.reward, c.w)
        for name, value, allowed in (
            ("objective", c.objective, OBJECTIVES),
            ("backend", c.backend, BACKENDS),
            ("pruner", c.pruner, PRUNERS),
        ):
            if value not in allowed:
                raise NasError(f"unknown {name} {value!r}; choose one of {', '.join(allowed)}")
        if c.sampler is not None and c.sampler not in SAMPLERS:
            raise NasError(f"unknown sampler {c.sampler!r}; choose one of {', '.join(SAMPLERS)}")
        if not isinstance(c.evaluator, str) or not c.evaluator.strip():
            raise NasError(f"--evaluator must name an evaluator (KIND or KIND:ARG), got {c.evaluator!r}")
        if c.objective == "pareto" and c.sampler == "pg":
            raise NasError("the pg sampler learns from one reward; use --objective reward, or another --sampler")
        if c.trials is not None:
            _int_in("--trials", c.trials, 1, MAX_TRIALS)
        _int_in("--seed", c.seed, 0, MAX_SEED)
        _int_in("--resolution", c.resolution, MIN_RESOLUTION, MAX_RESOLUTION)
        _int_in("--workers", c.workers, 1, MAX_WORKERS)
        if c.workers > 1 and c.backend != "ray":
            raise NasError("--workers applies to --backend ray (the local backend runs one trial at a time)")
        if c.address and c.backend != "ray":
            raise NasError("--address applies to --backend ray")
        if not isinstance(c.evaluator_options, dict):
            raise NasError("evaluator_options must be a mapping of option names to values")
        options = c.evaluator_options
        if "epochs" in options:
            _int_in("--epochs", options["epochs"], 1, MAX_EPOCHS)
        if options.get("resolution") is not None:
            _int_in("--proxy-resolution", options["resolution"], MIN_PROXY_RESOLUTION, MAX_RESOLUTION)
        if not isinstance(c.out_dir, str) or not c.out_dir:
            raise NasError(f"--out-dir must be a directory path, got {c.out_dir!r}")
        return dataclasses.replace(
            c,
            time_budget_s=parse_duration(c.time_budget_s),
            window=parse_window(c.window),
        )

    def resumed_from(self, stored: SearchConfig) -> SearchConfig:
        """The stored run's config with this session's limits; an identity field given here that differs from
        the run's is refused (a resumed run keeps what it searches)."""
        default = SearchConfig()
        for key in SearchConfig.IDENTITY:
            mine, theirs = getattr(self, key), getattr(stored, key)
            if mine == getattr(default, key):
                continue  # not given this time
            if key == "target_latency":  # "80ms" and "0.08s" are the same target
                mine, theirs = parse_target(mine), parse_target(theirs)
            elif key == "window":
                mine, theirs = parse_window(mine), parse_window(theirs)
            if mine != theirs:
                raise NasError(
                    f"--resume: {key} {getattr(self, key)!r} differs from the run's {getattr(stored, key)!r}; "
                    "a resumed run keeps what it searches"
                )
        return dataclasses.replace(
            stored,
            trials=self.trials if self.trials is not None else stored.trials,
            time_budget_s=self.time_budget_s,
            resume=True,
            backend=self.backend,
            address=self.address,
            workers=self.workers,
            out_dir=self.out_dir,
            name=self.name,
        )
