"""What a search result means, in words: summary.md, and the advice and next commands that `nas search` prints
(the trial count and whether to trust it, what the soft reward did with the target, what to run next)."""

from __future__ import annotations

import shlex
from typing import TYPE_CHECKING

from nas.arch import Arch
from nas.errors import NasError
from nas.search import runs
from nas.search.config import DEFAULT_OUT_DIR

if TYPE_CHECKING:
    from nas.search.loop import SearchResult

# Below this many evaluated trials a proxy-ranked search is mostly noise (MnasNet sampled about 8,000 models).
TRUSTED_TRIALS = 20


def describe_arch(arch: Arch) -> str:
    """timm block strings of the stages when they express the arch, else a summary."""
    cost = arch.costs()
    summary = f"{len(arch.blocks)} blocks, {cost.macs / 1e6:.0f}M MACs, {cost.params / 1e6:.2f}M params"
    try:
        from nas.block_strings import timm_strings  # the one import of it in nas.search

        style, strings = timm_strings(arch)
    except (ImportError, NasError):
        return summary
    stages = "; ".join(", ".join(stage) for stage in strings)
    return f"{stages} ({style.lower()} style; {summary})"


def _trials(n: int) -> str:
    return f"{n} evaluated trial" + ("" if n == 1 else "s")


def _q(text: str) -> str:
    return shlex.quote(str(text))


def _estimated(result: SearchResult) -> str:
    return "estimated" if result.table_kind == "estimated" else "predicted"


def next_commands(result: SearchResult) -> list[tuple[str, str]]:
    """(command, what it does) to run after this search."""
    c, run = result.config, _q(result.run_dir)
    out = [
        (
            f"nas export {run} --format all --out {_q(f'export/{c.name}')}",
            "the best net as JSON, timm block strings, PyTorch, TorchScript and ONNX",
        ),
    ]
    if len(result.pareto) > 1:
        out.append(
            (
                f"nas export {run} --pareto --format json --out {_q(f'export/{c.name}-front')}",
                f"all {len(result.pareto)} nets of the accuracy-latency front",
            )
        )
    data = f" --data {_q(c.data)}" if c.data != "synthetic" else ""
    target = f"{result.target_ms:g}ms"
    out.append(
        (
            f"nas netadapt {run} --target-latency {target} --device {_q(c.device)}{data}",
            f"train the best and shrink it with NetAdapt until it is predicted at {target} or less",
        )
    )
    if result.stopped != "trials" or result.trials < TRUSTED_TRIALS:
        more = max(c.trials or 0, result.trials) + TRUSTED_TRIALS
        where = "" if c.out_dir == DEFAULT_OUT_DIR else f" --out-dir {_q(c.out_dir)}"
        out.append(
            (
                f"nas search --resume --name {_q(c.name)}{where} --trials {more} --time-budget 30m",
                "evaluate more candidates in the same run (nothing evaluated is evaluated again)",
            )
        )
    return out


def advice(result: SearchResult) -> list[str]:
    """What the user should know before trusting the result, in the order to read it."""
    c, target, lines = result.config, result.target_ms, []
    asked = c.trials or result.trials
    lines.append(
        f"{result.trials} of {asked} trials evaluated"
        + (f" (stopped by {result.stopped})" if result.stopped != "trials" else "")
    )
    if result.trials < TRUSTED_TRIALS:
        lines.append(
            f"warning: {_trials(result.trials)} {'is' if result.trials == 1 else 'are'} too few to trust the ranking: "
            "the proxy accuracy is "
            f"noisy and the sampler has barely started; evaluate {TRUSTED_TRIALS} or more (see the resume command)"
        )
    best = result.best
    if best is None or best.latency_ms is None:
        return lines
    reward = c.reward
    if reward == "soft" and best.latency_ms > target:
        over = 100 * (best.latency_ms / target - 1)
        window = f" (the window evaluates candidates within ±{c.window:.0%} of it)" if c.window else ""
        lines.append(
            f"note: the soft reward allows exceeding the target{window}: the best, trial {best.number}, is "
            f"{_estimated(result)} at {best.latency_ms:.1f} ms, {over:.1f}% over {target:g} ms"
        )
        under = runs.best_under(result.records, target)
        if under is not None:
            name = runs.trial_name(c.name, under.number)
            lines.append(
                f"note: the best trial at or under {target:g} ms is trial {under.number} ({under.latency_ms:.1f} ms, "
                f"{result.metric} {under.accuracy:.4f}): nas export {_q(result.run_dir)} --trial {under.number} "
                f"--format all --out {_q(f'export/{name}')}"
            )
        else:
            lines.append(
                f"note: no evaluated trial is at or under {target:g} ms; for a strict limit search with "
                "--reward hard, or shrink the best with NetAdapt (below)"
            )
    return lines


def reward_in_words(result: SearchResult) -> str:
    from nas.search.reward import make_reward

    c = result.config
    return make_reward(c.target_latency, c.reward, c.w).describe()


def screening(result: SearchResult) -> str:
    c, target = result.config, result.target_ms
    if c.reward == "hard":
        return f"over {target:g} ms is never trained (hard reward)"
    if c.objective == "reward" and c.window is not None:
        return f"outside {target:g} ms ± {c.window:.0%} is never trained (--window {c.window:g})"
    return "none (every candidate is evaluated)"


def summary_markdown(result: SearchResult) -> str:
    c, records = result.config, result.records
    counts: dict[str, int] = {}
    for r in records:
        key = f"{r.status} (reused)" if r.reused_from is not None else r.status
        counts[key] = counts.get(key, 0) + 1
    est = " (estimated table)" if result.table_kind == "estimated" else ""
    by_status = " (" + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")" if counts else ""
    lines = [
        f"# Search {c.name}",
        "",
        f"- target: {result.target_ms:g} ms on `{c.device}`{est} at {c.resolution}×{c.resolution}; "
        f"objective {c.objective}",
        f"- reward: {reward_in_words(result)}",
        f"- space `{c.space}`: predicted latency from {result.fastest_ms:.1f} ms (fastest) to "
        f"{result.slowest_ms:.1f} ms (slowest)",
        f"- screening on predicted latency: {screening(result)}",
        f"- sampler {c.sampler_name}, evaluator {c.evaluator} on data `{c.data}`, seed {c.seed}, backend {c.backend}",
        *(f"- note: {n}" for n in result.notes),
        f"- stopped by: {result.stopped}",
        f"- trials: {len(records)}{by_status}; {result.trials} evaluated (count against --trials)",
        f"- this session's wall time: {result.wall_s:.0f} s",
        "",
    ]
    if result.best is None:
        lines.append("No trial completed.")
    else:
        b = result.best
        lines += [
            f"## Best: trial {b.number}",
            "",
            f"- reward {b.reward:.4f}, {result.metric} {b.accuracy:.4f}, {_estimated(result)} latency "
            f"{b.latency_ms:.1f} ms ({100 * (b.latency_ms / result.target_ms - 1):+.1f}% of the target)",
            f"- architecture: `{describe_arch(b.arch_spec('best'))}`",
        ]
    lines += ["", *(f"- {line}" for line in advice(result)), ""]
    lines += [
        f"## Pareto front ({result.metric} ↑, latency ↓)",
        "",
        "| trial | latency ms | accuracy | reward |",
        "|---|---|---|---|",
    ]
    for r in result.pareto:
        lines.append(f"| {r.number} | {r.latency_ms:.1f} | {r.accuracy:.4f} | {r.reward:.4f} |")
    if result.baselines:
        lines += [
            "",
            f"Zoo baselines at their predicted latency on `{c.device}`{est} (dotted in pareto.png): "
            + ", ".join(f"{name} {ms:.1f} ms" for name, ms in result.baselines)
            + ".",
        ]
    lines += ["", "## Next", "", "```console"]
    lines += [f"$ {cmd}   # {why}" for cmd, why in next_commands(result)]
    lines += [
        "```",
        "",
        "Files: config.json, study.journal (`optuna-dashboard study.journal`), trials/NNNN.json, "
        "best.json, pareto.json, pareto.png, summary.md.",
        "",
    ]
    return "\n".join(lines)
