"""The Python entry point: NetAdapt on a spec with a latency table and a data set."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.accuracy.data import DataSplits, load_data
from nas.accuracy.train import TrainConfig, evaluate, fine_tune, train
from nas.arch import Arch
from nas.errors import NasError
from nas.io import atomic_write, writable_dir, write_json
from nas.latency.table import LatencyTable, load_table, predict
from nas.netadapt.core import NetAdaptConfig, NetAdaptResult, netadapt_loop
from nas.netadapt.graph import ModuleResult, adapt_module, load_factory, module_latency, trace


@dataclass
class DataTrainer:
    """NetAdapt's training on a `DataSplits` with nas.accuracy's recipe. Each run takes its batch-order seed
    from torch's current seed, which the loop sets per iteration: all proposals of an iteration see the same
    batches."""

    data: DataSplits
    pretrain_epochs: float = 3
    pretrain_lr: float = 0.2
    short_lr: float = 0.02
    long_lr: float = 0.05
    batch_size: int = 128
    resolution: int | None = None  # training resolution; None: the images' own size

    def _cfg(self, **kw: Any) -> TrainConfig:
        seed = torch.initial_seed() % (2**31)
        return TrainConfig(batch_size=self.batch_size, resolution=self.resolution, seed=seed, **kw)

    def pretrain(self, net: nn.Module) -> None:
        train(net, self.data, self._cfg(epochs=self.pretrain_epochs, lr=self.pretrain_lr))

    def short(self, net: nn.Module, steps: int) -> None:
        fine_tune(net, self.data, steps, self._cfg(lr=self.short_lr, warmup_fraction=0.0))

    def long(self, net: nn.Module, epochs: int) -> None:
        train(net, self.data, self._cfg(epochs=epochs, lr=self.long_lr))

    def accuracy(self, net: nn.Module, split: str = "val") -> float:
        return evaluate(net, getattr(self.data, split), self.resolution)


def table_latency(table: LatencyTable) -> Callable[[Arch], float]:
    return lambda arch: predict(arch, table).latency_ms


def netadapt(
    arch: Arch,
    table: LatencyTable | str,
    data: DataSplits | str,
    target_ms: float,
    *,
    weights: str | Path | None = None,
    step: float = 0.05,
    decay: float = 1.0,
    short_steps: int = 100,
    long_epochs: int = 5,
    metric: str = "slope",
    pretrain_epochs: float = 3,
    batch_size: int = 128,
    train_resolution: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    resume: bool = False,
    log: Callable[[str], None] = lambda _msg: None,
) -> NetAdaptResult:
    """Shrink `arch`'s layer widths until its predicted latency on `table`'s device is at most `target_ms`.

    `table`: a LatencyTable or a device name / table path; `data`: DataSplits or a `--data` spec. Without
    `weights` the starting network is first trained for `pretrain_epochs`. See nas.netadapt.core for the run
    directory `out` and `resume`."""
    if isinstance(table, str):
        table = load_table(table)
    if isinstance(data, str):
        data = load_data(data, seed=seed)
    if data.num_classes != arch.num_classes:
        if weights is not None:
            raise NasError(
                f"{arch.name or 'the model'} classifies {arch.num_classes} classes but {data.name} has "
                f"{data.num_classes}: its weights cannot be adapted on this data"
            )
        arch = arch.replace(num_classes=data.num_classes)
    config = NetAdaptConfig(
        target_ms=float(target_ms),
        step=step,
        decay=decay,
        short_steps=short_steps,
        long_epochs=long_epochs,
        metric=metric,
        seed=seed,
    )
    trainer = DataTrainer(data, pretrain_epochs=pretrain_epochs, batch_size=batch_size, resolution=train_resolution)
    meta = {"device": table.device, "table_kind": table.kind, "runtime": table.runtime, "data": data.name}
    return netadapt_loop(
        arch,
        table_latency(table),
        trainer,
        config,
        weights=weights,
        out=out,
        resume=resume,
        log=log,
        meta=meta,
    )


__all__ = ["DataTrainer", "netadapt", "netadapt_module"]


def netadapt_module(
    model: nn.Module | str,
    table: LatencyTable | str,
    data: DataSplits | str,
    target_ms: float,
    *,
    weights: str | Path | None = None,
    resolution: int = 224,
    step: float = 0.05,
    decay: float = 1.0,
    short_steps: int = 100,
    long_epochs: int = 5,
    metric: str = "slope",
    pretrain_epochs: float = 3,
    batch_size: int = 128,
    train_resolution: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> ModuleResult:
    """NetAdapt on a user's own module (or `path/to/file.py:factory`), traced with torch.fx; latency predicted
    at `resolution` from the table's entries for its conv and linear layers. Returns the pruned module with its
    weights (no spec: a traced module is not expressed as one). With `out`: weights.pt (its state_dict),
    channels.json (the kept channels, for `nas.netadapt.graph.rebuild(factory(), ...)`) and history.json."""
    from nas.netadapt.core import _seed, load_weights

    if isinstance(table, str):
        table = load_table(table)
    if isinstance(data, str):
        data = load_data(data, seed=seed)
    config = NetAdaptConfig(
        target_ms=float(target_ms), step=step, decay=decay, short_steps=short_steps, long_epochs=long_epochs,
        metric=metric, seed=seed,
    )  # fmt: skip
    config.check()
    out_dir = writable_dir(out) if out is not None else None
    _seed(config, 0, 0)
    module = load_factory(model)() if isinstance(model, str) else model
    if not isinstance(module, nn.Module):
        raise NasError(f"{model} returned a {type(module).__name__}, not a torch.nn.Module")
    trainer = DataTrainer(data, pretrain_epochs=pretrain_epochs, batch_size=batch_size, resolution=train_resolution)
    input_shape = (1, data.train.x.shape[1], resolution, resolution)
    graph = trace(module, input_shape)  # fail early, before any training
    initial_ms = module_latency(graph, table)
    if initial_ms <= config.target_ms:
        raise NasError(
            f"nothing to do: the model is predicted at {initial_ms:.2f} ms, within the {target_ms:g} ms target"
        )
    floor_ms = module_latency(graph, table, {u.index: 8 for u in graph.units if u.width > 8})
    if floor_ms > config.target_ms:
        raise NasError(
            f"target {target_ms:g} ms is unreachable: the smallest latency reachable by shrinking widths is "
            f"{floor_ms:.2f} ms (every prunable layer at 8 channels; initial {initial_ms:.2f} ms)"
        )
    if weights is not None:
        load_weights(module, weights, "model")
        log(f"loaded weights {weights}")
    else:
        log("no --weights given: training the starting model briefly first")
        trainer.pretrain(module)
    result = adapt_module(
        module, lambda g, o: module_latency(g, table, o), trainer, config, input_shape=input_shape, log=log
    )
    if out_dir is not None:
        state = {k: v.detach().cpu() for k, v in result.module.state_dict().items()}
        atomic_write(out_dir / "weights.pt", lambda tmp: torch.save(state, tmp))
        write_json(out_dir / "channels.json", {"input_shape": list(input_shape), "kept": result.kept})
        write_json(
            out_dir / "history.json",
            {
                "model": str(model) if isinstance(model, str) else type(model).__name__,
                "device": table.device,
                "table_kind": table.kind,
                "data": data.name,
                "config": asdict(config),
                "initial": {"latency_ms": result.initial_latency_ms, "accuracy": result.initial_accuracy,
                            "pretrained": weights is None},
                "iterations": result.iterations,
                "final": {"latency_ms": result.latency_ms, "accuracy": result.accuracy,
                          "test_accuracy": result.test_accuracy, "widths": result.widths()},
            },
        )  # fmt: skip
    return result
