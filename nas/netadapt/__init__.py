"""NetAdapt (Yang et al. 2018): shrink layer widths, guided by predicted latency, to meet a target.

`netadapt(arch, table, data, target_ms, ...)` runs the whole algorithm on a spec;
`prune(net, arch, keep)` removes channels from a built network and inherits the remaining weights;
`find_units(arch)` lists what may shrink.
"""

from nas.netadapt.core import (
    NetAdaptConfig,
    NetAdaptResult,
    Trainer,
    load_weights,
    netadapt_loop,
    plot_history,
)
from nas.netadapt.proposals import Proposal, propose, smallest
from nas.netadapt.prune import channel_scores, keep_largest, prune
from nas.netadapt.units import Unit, UnitMap, find_units, set_widths

__all__ = [
    "NetAdaptConfig",
    "NetAdaptResult",
    "Proposal",
    "Trainer",
    "Unit",
    "UnitMap",
    "channel_scores",
    "find_units",
    "keep_largest",
    "load_weights",
    "netadapt",
    "netadapt_loop",
    "netadapt_module",
    "plot_history",
    "propose",
    "prune",
    "set_widths",
    "smallest",
]


def __getattr__(name: str):  # the data/latency-backed entry point imports nas.accuracy and nas.latency lazily
    if name in ("netadapt", "netadapt_module", "DataTrainer"):
        from nas.netadapt import api

        return getattr(api, name)
    raise AttributeError(name)
