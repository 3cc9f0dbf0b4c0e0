"""A subnet as a stand-alone model: inherited weights, recalibrated BatchNorm, optional fine-tuning.

The output directory has the layout of a NetAdapt result (`nas.sources`): `arch.json` (the subnet's spec, at
the supernet's resolution and class count), `weights.pt` (a state_dict of `nas.model.build(arch)`) and
`history.json` (where it came from and its validation top-1), so `nas export D`, `nas.load(D/arch.json,
D/weights.pt)` and `nas netadapt D/arch.json --weights D/weights.pt` take it as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from nas.accuracy.data import DataSplits, load_data
from nas.accuracy.train import TrainConfig, evaluate, train
from nas.arch import Arch
from nas.io import atomic_write, writable_dir, write_json
from nas.sources import NETADAPT_HISTORY, NETADAPT_RESULT, NETADAPT_WEIGHTS, resolve
from nas.supernet.train import SupernetRun, calibration_images, data_id, load_run, recalibrate

# Images whose statistics the extracted model's BatchNorm keeps (a fixed draw of the training split).
EXTRACT_CALIB_IMAGES = 2000
# Fine-tuning starts from trained weights: a tenth of the supernet's peak rate, no warm-up to speak of.
FINETUNE = TrainConfig(lr=0.01, batch_size=128, warmup_fraction=0.0)


def subnet_arch(run: SupernetRun, source: str, trial: int | None = None) -> Arch:
    """SOURCE (`largest`, `smallest`, an architecture JSON, a search run, a zoo name) at the supernet's
    resolution and class count; NasError if it is not a subnet of the supernet."""
    net = run.supernet
    if source in ("largest", "smallest"):
        arch = net.largest() if source == "largest" else net.smallest()
    else:
        arch, _ = resolve(source, trial=trial)
        big = net.max_arch
        arch = arch.replace(resolution=big.resolution, num_classes=big.num_classes)
    net.check(arch)
    return arch


def load_matching_data(run: SupernetRun, spec: str | None) -> DataSplits:
    """The supernet's own data (by its recorded spec), or `spec` when given (it must have the same classes)."""
    from nas.errors import NasError

    meta = run.meta["data"]
    data = load_data(spec or meta.get("spec", meta["name"]), seed=run.config.seed)
    if data.num_classes != run.supernet.max_arch.num_classes:
        raise NasError(
            f"--data {data.name} has {data.num_classes} classes; the supernet was trained for "
            f"{run.supernet.max_arch.num_classes}"
        )
    return data


def extract_subnet(
    directory: str | Path,
    source: str,
    out: str | Path,
    *,
    finetune_epochs: float = 0,
    data: str | DataSplits | None = None,
    trial: int | None = None,
    seed: int | None = None,
) -> dict[str, Any]:
    """Cut subnet SOURCE out of the supernet in `directory` into `out` (see the module docstring); returns what
    history.json holds. `seed` sets the fine-tuning's batch order and augmentation (default: the supernet's)."""
    run = load_run(directory)
    arch = subnet_arch(run, source, trial)
    out_dir = writable_dir(out)
    splits = data if isinstance(data, DataSplits) else load_matching_data(run, data)
    net = run.supernet
    recalibrate(net, arch, calibration_images(splits, EXTRACT_CALIB_IMAGES, run.config.seed))
    model = net.extract(arch)
    inherited = evaluate(model, splits.val)
    record: dict[str, Any] = {
        "kind": "supernet-extract",
        "supernet": str(directory),
        "supernet_epoch": run.epoch,
        "space": run.meta["space"],
        "data": data_id(splits),
        "source": source,
        "arch": arch.name or arch.hash,
        "calib_images": min(EXTRACT_CALIB_IMAGES, len(splits.train)),
        "inherited_val_top1": inherited,
        "finetune_epochs": finetune_epochs,
    }
    if finetune_epochs > 0:
        cfg = TrainConfig(**{**FINETUNE.__dict__, "epochs": finetune_epochs,
                             "seed": run.config.seed if seed is None else seed})
        result = train(model, splits, cfg)
        record["finetuned_val_top1"] = result.accuracy
        record["finetune"] = {"lr": cfg.lr, "batch_size": cfg.batch_size, "seed": cfg.seed,
                              "seconds": round(result.seconds, 1), "history": [list(h) for h in result.history]}
    model.eval()
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    write_json(out_dir / NETADAPT_RESULT, arch.to_dict())
    atomic_write(out_dir / NETADAPT_WEIGHTS, lambda tmp: torch.save(state, tmp))
    write_json(out_dir / NETADAPT_HISTORY, record)
    return record
