"""What NetAdapt's loop adapts: something with width units. `Adaptable` is the loop's whole view of it; `SpecNet`
implements it for a spec and its built network (nas.netadapt.graph.TracedNet for a user's traced module).

An implementation says which units it has, what a width assignment would cost (None where the assignment is not
allowed), how important each channel of a unit is, and how to prune; it also knows how to checkpoint itself and
come back from a checkpoint, and which result files it writes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from nas.arch import Arch
from nas.io import atomic_write, write_text
from nas.model import build
from nas.netadapt.pricing import Pricer
from nas.netadapt.pruning import keep_largest, prune
from nas.netadapt.units import Unit, UnitMap, find_units, floor_widths, set_widths


class Adaptable(Protocol):
    """The loop's view of a network with width units (see the module docstring)."""

    name: str

    @property
    def net(self) -> nn.Module: ...

    @property
    def units(self) -> Sequence[Unit]: ...

    @property
    def identity(self) -> str: ...  # the starting network's fingerprint (a resume must start from the same)

    @property
    def params(self) -> int: ...

    def latency(self, widths: Mapping[Unit, int] | None = None, *, estimate: bool = False) -> float | None: ...

    def measure(self, assignments: list[dict[Unit, int]]) -> None: ...

    def floor_widths(self) -> dict[Unit, int]: ...

    def keep(self, unit: Unit, width: int) -> torch.Tensor: ...

    def prune(self, keep: dict[Unit, torch.Tensor]) -> Adaptable: ...

    def widths(self) -> dict[str, int]: ...

    def checkpoint(self) -> dict[str, Any]: ...

    def restore(self, payload: dict[str, Any]) -> Adaptable: ...

    def write_result(self, out: Path) -> dict[str, str]: ...


def state_of(net: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}


class SpecNet:
    """A spec and its built network. `latency` is a function of the spec (a `Pricer` for a table, or any
    callable, such as a MACs model in the tests)."""

    def __init__(
        self,
        arch: Arch,
        net: nn.Module | None = None,
        *,
        latency: Callable[[Arch], float],
        units: UnitMap | None = None,
    ):
        self.arch = arch
        self._net = net
        self.name = arch.name or "the model"
        self.price = latency
        self.unit_map = units or find_units(arch)

    @property
    def net(self) -> nn.Module:
        if self._net is None:
            self._net = build(self.arch)
        return self._net

    @property
    def units(self) -> Sequence[Unit]:
        return self.unit_map.units

    @property
    def identity(self) -> str:
        return self.arch.hash

    @property
    def params(self) -> int:
        return self.arch.params

    def candidate(self, widths: Mapping[Unit, int] | None) -> Arch | None:
        return self.arch if not widths else set_widths(self.arch, dict(widths), self.unit_map)

    def latency(self, widths: Mapping[Unit, int] | None = None, *, estimate: bool = False) -> float | None:
        arch = self.candidate(widths)
        if arch is None:
            return None
        if estimate and isinstance(self.price, Pricer):
            return self.price.estimate(arch, self.arch)
        return self.price(arch)

    def measure(self, assignments: list[dict[Unit, int]]) -> None:
        if isinstance(self.price, Pricer):
            self.price.ensure([a for a in (self.candidate(w) for w in assignments) if a is not None])

    def floor_widths(self) -> dict[Unit, int]:
        return floor_widths(self.arch, self.unit_map)

    def keep(self, unit: Unit, width: int) -> torch.Tensor:
        return keep_largest(self.net, self.arch, unit, width)

    def prune(self, keep: dict[Unit, torch.Tensor]) -> SpecNet:
        net, arch = prune(self.net, self.arch, keep, self.unit_map)
        return SpecNet(arch.replace(name=self.arch.name), net, latency=self.price)

    def widths(self) -> dict[str, int]:
        return {u.name: u.width for u in self.units}

    def checkpoint(self) -> dict[str, Any]:
        return {"arch": self.arch.to_json(None), "state_dict": state_of(self.net)}

    def restore(self, payload: dict[str, Any]) -> SpecNet:
        arch = Arch.from_json(payload["arch"])
        net = build(arch)
        net.load_state_dict(payload["state_dict"])
        return SpecNet(arch, net, latency=self.price)

    def write_result(self, out: Path) -> dict[str, str]:
        write_text(out / "arch.json", self.arch.to_json())
        state = state_of(self.net)
        atomic_write(out / "weights.pt", lambda tmp: torch.save(state, tmp))
        return {"arch": str(out / "arch.json"), "weights": str(out / "weights.pt")}
