"""Platform-aware architecture search: find the most accurate architecture of a space that meets a latency
target on a device, as MnasNet did, with Optuna (one process) or Ray Tune (many). docs/search.md explains it.

    config      SearchConfig: every setting and every check of them
    loop        search(): the run, the local trial loop, SearchResult
    evaluation  one trial: screening on predicted latency, reuse, the evaluator, finish_trial()
    study       the Optuna study over the run's journal, pruning, reconciliation after a kill
    journal     the journal file (Optuna's public backend interface) and its repair
    runs        the run directory: TrialRecord, the records, best and front, the run lock
    report      summary.md, advice and next commands; baselines and plots beside it
    reward      MnasNet's reward and the target parsing; samplers, evolution: the samplers
"""

from nas.search.config import BACKENDS, OBJECTIVES, PRUNERS, SearchConfig, parse_duration, parse_window
from nas.search.evaluation import latency_of
from nas.search.loop import SearchInterrupted, SearchResult, fastest_latency, search
from nas.search.report import advice, describe_arch, next_commands
from nas.search.reward import make_reward, parse_target
from nas.search.runs import TrialRecord
from nas.search.samplers import SAMPLERS

__all__ = [
    "BACKENDS",
    "OBJECTIVES",
    "PRUNERS",
    "SAMPLERS",
    "SearchConfig",
    "SearchInterrupted",
    "SearchResult",
    "TrialRecord",
    "advice",
    "describe_arch",
    "fastest_latency",
    "latency_of",
    "make_reward",
    "next_commands",
    "parse_duration",
    "parse_target",
    "parse_window",
    "search",
]
