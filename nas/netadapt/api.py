"""The Python entry point: `netadapt(model, config, table=, data=)` on a spec, a zoo name, a run directory or a
user's own module, with a latency table and a data set. The CLI only parses arguments into these and prints."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from nas.accuracy.data import DataSplits, load_data
from nas.accuracy.train import TrainConfig, evaluate, fine_tune, train
from nas.arch import Arch
from nas.errors import NasError
from nas.latency.table import LatencyTable, load_table
from nas.netadapt.core import NetAdaptConfig, NetAdaptResult, netadapt_loop
from nas.netadapt.graph import TracedNet, is_factory_spec, load_factory, module_latency, trace
from nas.netadapt.pricing import Pricer
from nas.netadapt.scoring import recalibrate_bn
from nas.netadapt.subject import Adaptable, SpecNet

MAX_RESOLUTION = 4096


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

    @property
    def num_classes(self) -> int:
        return self.data.num_classes

    def _cfg(self, **kw: Any) -> TrainConfig:
        seed = torch.initial_seed() % (2**31)
        return TrainConfig(batch_size=self.batch_size, resolution=self.resolution, seed=seed, **kw)

    def pretrain(self, net: nn.Module) -> None:
        train(net, self.data, self._cfg(epochs=self.pretrain_epochs, lr=self.pretrain_lr))

    def recalibrate(self, net: nn.Module, batches: int) -> None:
        seed = torch.initial_seed() % (2**31)
        recalibrate_bn(net, self.data.train, batches, batch_size=self.batch_size, resolution=self.resolution, seed=seed)

    def short(self, net: nn.Module, steps: int) -> None:
        fine_tune(net, self.data, steps, self._cfg(lr=self.short_lr, warmup_fraction=0.0))

    def long(self, net: nn.Module, epochs: int) -> None:
        train(net, self.data, self._cfg(epochs=epochs, lr=self.long_lr))

    def accuracy(self, net: nn.Module, split: str = "val") -> float:
        return evaluate(net, getattr(self.data, split), self.resolution)


def default_out(model: str, target_ms: float) -> Path:
    """runs/netadapt-MODEL-TARGETms, MODEL reduced to a safe file name."""
    base = model.rpartition(":")[0] if is_factory_spec(model) else model
    stem = Path(base).stem if base.endswith((".json", ".py")) else Path(base).name
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", stem)[:80] or "model"
    return Path("runs") / f"netadapt-{stem}-{target_ms:g}ms"


def netadapt(
    model: Arch | nn.Module | str,
    config: NetAdaptConfig,
    *,
    table: LatencyTable | str = "pixel",
    data: DataSplits | str = "synthetic",
    weights: str | Path | None = None,
    width: float | None = None,
    resolution: int | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    measure: bool = True,
    log: Callable[[str], None] = lambda _msg: None,
) -> NetAdaptResult:
    """Shrink `model`'s layer widths until its predicted latency on `table`'s device is at most
    `config.target_ms`.

    `model`: a spec, a zoo name / architecture file / search or NetAdapt run directory (`width` and
    `resolution` size zoo models), a `path/to/file.py:factory` or an `nn.Module` (traced with torch.fx and
    priced at `resolution`, default 224). `table`: a LatencyTable, a device name or a table path; with a
    measured table the widths it lacks are timed here (`measure`) into `out`/latency-table.json. `data`:
    DataSplits or a `--data` spec. Without `weights` the starting network is first trained briefly. `out`: the
    run directory (None: no files); `resume` continues the run there."""
    config = config.resolved()
    if resolution is not None and not 8 <= resolution <= MAX_RESOLUTION:
        raise NasError(f"--resolution must be in [8, {MAX_RESOLUTION}], got {resolution}")
    if isinstance(table, str):
        table = load_table(table)
    if isinstance(data, str):
        data = load_data(data, seed=config.seed)
    trainer = DataTrainer(
        data,
        pretrain_epochs=config.pretrain_epochs,
        batch_size=config.batch_size,
        resolution=config.train_resolution,
    )
    meta: dict[str, Any] = {"device": table.device, "table_kind": table.kind, "runtime": table.runtime,
                            "data": data.name}  # fmt: skip
    out_path = Path(out) if out is not None else None
    stats: Callable[[], dict[str, Any]] | None = None
    pricer: Pricer | None = None
    start: Adaptable
    if isinstance(model, nn.Module) or (isinstance(model, str) and is_factory_spec(model)):
        if width is not None:
            raise NasError("--width applies to zoo names, not to a module (file.py:factory)")
        module = load_factory(model)() if isinstance(model, str) else model
        if not isinstance(module, nn.Module):
            raise NasError(f"{model} returned a {type(module).__name__}, not a torch.nn.Module")
        input_shape = (1, data.train.x.shape[1], resolution or 224, resolution or 224)
        graph = trace(module, input_shape)  # fail early, before any training
        start = TracedNet(module, graph, latency=lambda g, o: module_latency(g, table, o))
        meta["model"] = model if isinstance(model, str) else type(model).__name__
    else:
        arch, model_weights = _spec(model, width, resolution, data.num_classes)
        weights = weights or model_weights
        if data.num_classes != arch.num_classes:
            if weights is not None:
                raise NasError(
                    f"{arch.name or 'the model'} classifies {arch.num_classes} classes but {data.name} has "
                    f"{data.num_classes}: its weights cannot be adapted on this data"
                )
            arch = arch.replace(num_classes=data.num_classes)
        pricer = Pricer(
            table,
            measure=measure,
            copy_to=out_path / "latency-table.json" if out_path is not None else None,
            log=log,
        )
        if not pricer.complete and out_path is None:
            raise NasError(f"table {table.where} is measured: NetAdapt times the widths it lacks into a copy of "
                           "it in the run directory; give an output directory")  # fmt: skip
        start = SpecNet(arch, latency=pricer)
        if not pricer.complete:
            stats = lambda: {"timed_ops": pricer.timed_ops, "timing_s": round(pricer.timing_s, 2)}  # noqa: E731
    try:
        return netadapt_loop(
            start, trainer, config, weights=weights, out=out_path, resume=resume, log=log, meta=meta, stats=stats
        )
    finally:
        if pricer is not None:
            pricer.close()  # its timing workers


def _spec(model: Arch | str, width: float | None, resolution: int | None, num_classes: int) -> tuple[Arch, Any]:
    if isinstance(model, Arch):
        if width is not None:
            raise NasError("--width applies to zoo names; an architecture holds resolved channel counts")
        return (model.replace(resolution=resolution) if resolution else model), None
    from nas.sources import resolve

    arch, model_weights = resolve(model, width=width, resolution=resolution, num_classes=num_classes)
    return arch, model_weights


__all__ = ["DataTrainer", "default_out", "netadapt"]
