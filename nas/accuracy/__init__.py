"""Accuracy of candidate networks: data sets, proxy training, zero-cost scores, evaluators for the search.

```python
from nas.accuracy import load_data, TrainConfig, train, evaluate, fine_tune, make_evaluator
data = load_data("synthetic", seed=0)            # | "cifar10:DIR" | "imagefolder:DIR" | "npz:FILE"
data.train, data.val, data.test                  # Split(x: float32 N×3×H×W normalised, y: int64 N); val ⊂ training data
result = train(model, data, TrainConfig(epochs=2, resolution=None), report=None)   # report(epoch, acc) → True prunes
evaluate(model, data.val, resolution=None)       # top-1 in [0, 1]
fine_tune(model, data, steps=100, cfg=TrainConfig(lr=0.01))   # NetAdapt's short fine-tune: exactly `steps` steps
evaluator = build_evaluator("train", data, space="mobilenetv3", seed=0, options={"epochs": 2})
                                                 # | "zero-cost" | "supernet:DIR" (nas supernet train)
                                                 # | "supernet-predictor:DIR" (nas supernet predictor)
evaluator.resolution, evaluator.metric_label, evaluator.default_trials
evaluator = make_evaluator("train", data)        # or ("zero-cost", data, ZeroCostConfig(score="naswot"))
evaluator(arch, report=None)                     # → EvalResult(accuracy, seconds, epochs, pruned, extra)
zero_cost_score(model, batch, kind="synflow")    # | "naswot"
```
A NaN/inf training loss raises `TrainingDiverged` (a `NasError`). See each module's docstring for the details.

The search's default (`PROXY_TRAIN`, evaluator "train"): one epoch over the 4,000 training images of `synthetic`
at 32×32 (no resize), batch 32 (125 steps), SGD+Nesterov lr 0.05 with 5% warm-up and cosine decay, label
smoothing 0.1, no augmentation, residual blocks zero-initialised; top-1 on the 1,000 validation images.
Measured with `python bench/accuracy_proxy.py --samples 12` (bench/results/accuracy_proxy.json, 2026-11-26, this
2-core VM shared with other jobs, one thread): median 14.4 s per candidate of the default space (9.7–21 s), i.e.
~4 trials/minute per core; zero-cost: 0.19 s (SynFlow) and 0.37 s (NASWOT). At that budget the accuracies are low
(0.18–0.25 on 12 random candidates) and noisy (about ±0.01 between seeds for MobileNetV3-Large): enough to reject
poor candidates, weak for fine ranking; more `epochs` buys signal linearly in time. With one epoch, a pruner
only sees the final value unless `TrainConfig.reports_per_epoch` > 1 (2: one extra validation pass half-way).
"""

from nas.accuracy.data import DataSplits, Split, load_data
from nas.accuracy.evaluator import (
    EVALUATORS,
    PROXY_TRAIN,
    EvalResult,
    SupernetEvaluator,
    SupernetPredictorEvaluator,
    SupernetReadConfig,
    TrainEvaluator,
    ZeroCostConfig,
    ZeroCostEvaluator,
    build_evaluator,
    make_evaluator,
)
from nas.accuracy.train import TrainConfig, TrainingDiverged, TrainResult, evaluate, fine_tune, train
from nas.accuracy.zero_cost import naswot, synflow, zero_cost_score

__all__ = [
    "EVALUATORS",
    "PROXY_TRAIN",
    "DataSplits",
    "EvalResult",
    "Split",
    "SupernetEvaluator",
    "SupernetPredictorEvaluator",
    "SupernetReadConfig",
    "TrainConfig",
    "TrainEvaluator",
    "TrainResult",
    "TrainingDiverged",
    "ZeroCostConfig",
    "ZeroCostEvaluator",
    "build_evaluator",
    "evaluate",
    "fine_tune",
    "load_data",
    "make_evaluator",
    "naswot",
    "synflow",
    "train",
    "zero_cost_score",
]
