"""NetAdapt (Yang et al. 2018): shrink layer widths, guided by predicted latency, to meet a target.

`netadapt(model, NetAdaptConfig(target_ms=...), table=, data=)` runs the whole algorithm on a spec or a user's
module; `netadapt_loop(SpecNet(arch, latency=f), trainer, config)` runs the same loop with any latency function
and trainer; `prune(net, arch, keep)` removes channels from a built network and inherits the remaining weights;
`find_units(arch)` lists what may shrink. Names are imported on first use (`nas --help` needs no torch).
"""

from importlib import import_module

_HOMES = {
    "nas.netadapt.config": ("PRESETS", "NetAdaptConfig"),
    "nas.netadapt.core": ("NetAdaptResult", "Trainer", "load_weights", "netadapt_loop", "plot_history"),
    "nas.netadapt.proposals": ("Proposal", "propose", "propose_units", "smallest"),
    "nas.netadapt.pruning": ("channel_scores", "keep_largest", "prune"),
    "nas.netadapt.subject": ("Adaptable", "SpecNet"),
    "nas.netadapt.units": ("Unit", "UnitMap", "find_units", "set_widths"),
    "nas.netadapt.api": ("DataTrainer", "default_out", "netadapt"),
}
_WHERE = {name: module for module, names in _HOMES.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'nas.netadapt' has no attribute {name!r}")
