"""Every latency NetAdapt uses comes from here: `price` (one function for specs and for traced modules' ops), and
`Pricer`, which also times the ops a measured table lacks as NetAdapt proposes them.

NetAdapt proposes widths no network of the table had. An estimated table prices them with its cost model. A
measured table lacks them: `Pricer` times them on this machine with the table's own protocol
(`nas.latency.build.measure_missing`, one batch per proposal round) into a copy of the table in the run
directory (never the file in latency_tables/). The batches run on timing workers kept for the whole run, one per
round of the protocol: a fresh process per batch cost about 5 s to start, more than the timing itself
(docs/netadapt.md). To keep the batches small, a proposal's width is first chosen on
an estimate (an op the table lacks is priced as the same position's op of the current network, scaled by
MACs), then its ops are timed and the exact prediction decides; a width that misses the target after timing is
dropped and the next narrower one is tried in the next batch.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nas.arch import Arch, Block, Shape
from nas.errors import NasError

if TYPE_CHECKING:
    from nas.latency.measure import TimingWorker


def price(table: Any, what: Arch | tuple[tuple[int, int], Iterable[tuple[str, Shape, Block]]]) -> float:
    """Predicted latency (ms) on `table`: of a spec (`nas.latency.predict`), or of a traced module given as
    ((channels, resolution) of its input, [(layer name, input shape, equivalent spec block), ...]): the sum of
    the blocks' entries and the per-inference input entry, corrected like a spec. The one place NetAdapt reads a
    table's prices."""
    from nas.latency import MissingOp
    from nas.latency.keys import input_key
    from nas.latency.table import predict

    if isinstance(what, Arch):
        return predict(what, table).latency_ms
    (channels, resolution), ops = what
    missing: list[str] = []
    total = 0.0
    try:
        total += table.price_fixed(input_key(channels, resolution))
    except MissingOp as err:
        missing.append(f"input {err.key}")
    for name, x, block in ops:
        try:
            total += table.price(x, block)
        except MissingOp as err:
            missing.append(f"{name} {err.key}")
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        raise NasError(
            f"table {table.where} has no entry for {len(missing)} layer(s) of the model: {'; '.join(missing[:3])}"
            f"{more}; build them with `nas latency build --device {table.device}` or use an estimated table"
        )
    return table.correct(total)


class Pricer:
    """Spec latencies from a table. With `measure` (a measured table), ops the table lacks are timed into
    `copy_to` (a copy of the table, made on first use); `timing_s` and `timed_ops` say what that cost. `close()`
    (or a `with` block) stops the timing workers."""

    def __init__(
        self,
        table: Any,
        *,
        measure: bool = False,
        copy_to: Path | None = None,
        log: Callable[[str], None] = lambda _m: None,
    ):
        self.table = table
        self.measure_ok = measure and table.kind == "measured" and table.estimator is None
        self.copy_to = copy_to
        self.log = log
        self.timing_s = 0.0
        self.timed_ops = 0
        self._workers: list[TimingWorker] = []

    def __call__(self, arch: Arch) -> float:
        self.ensure([arch])
        return price(self.table, arch)

    @property
    def complete(self) -> bool:
        """True when every op is priced without timing (an estimated table, or no timing asked for)."""
        return not self.measure_ok

    def missing(self, arch: Arch) -> list[str]:
        from nas.latency.table import missing_ops

        return [key for _, key in missing_ops(arch, self.table)]

    def ensure(self, archs: list[Arch]) -> int:
        """Time, in one batch, every op of `archs` the table lacks (measured tables with timing on)."""
        if not self.measure_ok:
            return 0
        todo = [a for a in archs if self.missing(a)]
        if not todo:
            return 0
        from nas.latency.build import measure_missing

        self._own_copy()
        t0 = time.perf_counter()
        timed = measure_missing(todo, self.table, progress=False, workers=self._timing_workers())
        self.timing_s += time.perf_counter() - t0
        self.timed_ops += timed
        self.log(f"  timed {timed} new op(s) on this machine into {self.table.path} ({time.perf_counter() - t0:.1f} s)")
        return timed

    def _timing_workers(self) -> list[TimingWorker]:
        if not self._workers:
            from nas.latency.measure import Protocol, TimingWorker

            protocol = Protocol.from_dict(self.table.meta.get("protocol", {}))
            self._workers = [TimingWorker(protocol) for _ in range(protocol.rounds)]
        return self._workers

    def close(self) -> None:
        for worker in self._workers:
            worker.close()
        self._workers = []

    def __enter__(self) -> Pricer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _own_copy(self) -> None:
        if self.copy_to is None:
            raise NasError(
                f"table {self.table.where} lacks ops of the proposed widths; NetAdapt times them into a copy of "
                "the table in its run directory: give it an output directory"
            )
        if self.table.path is None or Path(self.table.path).resolve() != self.copy_to.resolve():
            from nas.latency.table import load_table

            if not self.copy_to.exists():
                self.copy_to.parent.mkdir(parents=True, exist_ok=True)
                self.table.save(self.copy_to)
            self.table = load_table(str(self.copy_to))

    def estimate(self, arch: Arch, reference: Arch) -> float:
        """The prediction with every op the table lacks priced as `reference`'s op at the same position (or its
        head), scaled by the ratio of their MACs. Exact where the table has every op."""
        if self.complete or not self.missing(arch):
            return price(self.table, arch)
        from nas.latency.keys import arch_ops

        ops, ref = arch_ops(arch), arch_ops(reference)
        ms = self.table.ms
        total = 0.0
        for site, key, ref_site, ref_key in zip(ops.sites, ops.keys, ref.sites, ref.keys, strict=True):
            if key in ms:
                total += ms[key]
            else:
                total += ms[ref_key] * site.cost.macs / max(ref_site.cost.macs, 1)
        head = ms.get(ops.head)
        if head is None:
            macs = sum(c.macs for _, c in arch.head_costs())
            head = ms[ref.head] * macs / max(sum(c.macs for _, c in reference.head_costs()), 1)
        total += head + ms[ops.input]
        return self.table.correct(total)
