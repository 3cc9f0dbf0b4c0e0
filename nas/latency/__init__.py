"""Latency lookup tables: op keys, the table file, measuring on this machine, predicting, validating, and the
estimated Pixel 1 table. See docs/latency.md.

    from nas.latency import load_table, predict
    table = load_table("pixel")        # or "cpu", or a table path
    pred = predict(arch, table)        # .latency_ms, .blocks (path, key, ms), .kind
    table.price(x, block)              # one op; table.price_fixed(key), table.correct(raw_ms)
"""

from nas.latency.keys import arch_ops, head_key, input_key, op_key
from nas.latency.measure import Protocol, time_items
from nas.latency.table import (
    DEVICES,
    BlockLatency,
    LatencyTable,
    MissingOp,
    Prediction,
    load_table,
    missing_ops,
    predict,
)

__all__ = [
    "DEVICES",
    "BlockLatency",
    "LatencyTable",
    "MissingOp",
    "Prediction",
    "Protocol",
    "arch_ops",
    "head_key",
    "input_key",
    "load_table",
    "missing_ops",
    "op_key",
    "predict",
    "time_items",
]
