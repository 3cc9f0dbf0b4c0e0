"""Timing ops and networks on this machine, in worker processes started with the allocator settings.

Protocol (the reasons are in shared/notes/latency-measurement.md and docs/latency.md):
- each item (an op, a head, a whole network) gets its own exported model and runtime session;
- a worker process is pinned to one core, has MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ set before Python
  starts (page faults on large tensors otherwise dominate), and spins a throwaway warm-up before timing;
- before every timed run an 8 MB buffer is written, evicting the op's weights and activations from L2 as a
  network running around it would (a warm-cache op alone runs faster than inside a network: docs/latency.md);
- `warmup` untimed runs, then (default) `passes` interleaved passes over all the worker's items, `runs` timed
  runs of each per pass, so that the machine's slow drifts hit every item alike; with `passes=0`, one item after
  the other, repeats of `runs` runs until the repeat medians agree to `tolerance` or `max_repeats`; a build
  does that in `rounds` separate workers in shuffled order;
- with one intra-op thread both runtimes compute in the calling thread, so the clock is that thread's CPU time
  (`clock="thread"`): another process sharing the core stretches the wall time of a run but not its CPU time
  (figures in docs/latency.md). With more threads the clock is the wall clock;
- while a worker times, the share of the machine's CPU time that other processes use is sampled (`Load`): past
  a threshold the timing is refused unless the caller allows a busy machine, and the figure is recorded.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from nas.errors import NasError

MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": "67108864", "MALLOC_TRIM_THRESHOLD_": "1073741824"}
OPSET = 17


RUNTIMES = ("onnxruntime", "torch")
CLOCKS = ("thread", "wall")


@dataclass(frozen=True)
class Protocol:
    """How ops and networks are timed here. Every limit is checked on construction, so the API refuses the
    same values the CLI does."""

    warmup: int = 10
    runs: int = 10  # timed runs per repeat
    min_repeats: int = 3
    max_repeats: int = 8
    tolerance: float = 0.03  # spread of the last min_repeats repeat medians, relative
    rounds: int = 2  # separate worker passes over all items
    evict_bytes: int = 8 << 20
    graph_optimization: str = "ORT_ENABLE_ALL"
    batch: int = 1
    warmup_s: float = 0.5  # throwaway work at the start of each worker process
    clock: str = ""  # "thread": CPU time of the timing thread (one intra-op thread); "wall": elapsed; "": by threads
    passes: int = 15  # >0: a worker times its items in this many interleaved passes of `runs` runs each; 0: one by one
    runtime: str = "onnxruntime"
    threads: int = 1

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise NasError(f"runtime must be one of {', '.join(RUNTIMES)}; got {self.runtime!r}")
        for name, low in (("threads", 1), ("rounds", 1), ("runs", 1), ("max_repeats", 3), ("min_repeats", 1),
                          ("passes", 0), ("warmup", 0), ("batch", 1), ("evict_bytes", 0)):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise NasError(f"{name} must be an integer of at least {low}, got {value!r}")
        if self.min_repeats > self.max_repeats:
            raise NasError(f"min_repeats ({self.min_repeats}) must not exceed max_repeats ({self.max_repeats})")
        if not self.clock:
            object.__setattr__(self, "clock", "thread" if self.threads == 1 else "wall")
        if self.clock not in CLOCKS:
            raise NasError(f"clock must be one of {', '.join(CLOCKS)}; got {self.clock!r}")
        if self.clock == "thread" and self.threads > 1:
            raise NasError("clock 'thread' times the calling thread only; with more than 1 thread use clock 'wall'")
        if not (isinstance(self.tolerance, int | float) and 0 < self.tolerance < 1):
            raise NasError(f"tolerance must be in (0, 1), got {self.tolerance!r}")

    @property
    def label(self) -> str:
        """The runtime label tables carry: `onnxruntime-cpu-1thread`, `torch-eager-2threads`."""
        unit = "thread" if self.threads == 1 else "threads"
        engine = "onnxruntime-cpu" if self.runtime == "onnxruntime" else "torch-eager"
        return f"{engine}-{self.threads}{unit}"

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "statistic": "median of all timed runs", "rmin": "minimum of repeat medians"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Protocol:
        data = {"passes": 0, **data}  # tables from before interleaving timed one item after the other
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


# ------------------------------------------------------------------------------------------ items → modules


def item_module(item: dict[str, Any]):  # -> tuple[nn.Module, tuple[int, int, int]]
    """The torch module an item describes and its input shape (C, H, W).

    Items: {"kind": "op", "x": [c, h, w], "block": {...}} · {"kind": "head", "key": KEY} ·
    {"kind": "net", "arch": {...}} · {"kind": "input", "x": [c, h, w]} (the per-inference cost alone)."""
    import torch

    from nas.arch import Arch, block_from_dict
    from nas.latency.keys import head_arch
    from nas.model import build, build_block

    kind = item["kind"]
    if kind == "op":
        c, h, w = item["x"]
        return build_block(block_from_dict(item["block"]), c).eval(), (c, h, w)
    if kind == "head":
        arch = head_arch(item["key"])
        return build(arch).eval(), (arch.in_channels, arch.resolution, arch.resolution)
    if kind == "net":
        arch = Arch.from_dict(item["arch"])
        return build(arch).eval(), (arch.in_channels, arch.resolution, arch.resolution)
    if kind == "input":

        class Passthrough(torch.nn.Module):
            def forward(self, x: torch.Tensor) -> torch.Tensor:
                return x + 0.0

        return Passthrough().eval(), tuple(item["x"])
    raise ValueError(f"unknown item kind {kind!r}")


def onnx_bytes(module, shape: tuple[int, ...]) -> bytes:
    """The module as an ONNX model (legacy exporter; BatchNorm folded on export)."""
    import torch

    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(1, *shape),),
            buf,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
            opset_version=OPSET,
            do_constant_folding=True,
        )
    return buf.getvalue()


def make_runner(
    runtime: str,
    module,
    shape: tuple[int, ...],
    threads: int,
    onnx: bytes | None = None,
    optimization: str = "ORT_ENABLE_ALL",
) -> Callable[[], Any]:
    import numpy as np

    if runtime == "onnxruntime":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, optimization)
        so.log_severity_level = 3
        sess = ort.InferenceSession(onnx or onnx_bytes(module, shape), so, providers=["CPUExecutionProvider"])
        feed = {"x": np.random.default_rng(0).standard_normal((1, *shape)).astype(np.float32)}
        return lambda: sess.run(None, feed)
    if runtime == "torch":
        import torch

        torch.set_num_threads(threads)
        x = torch.randn(1, *shape)

        def run() -> Any:
            with torch.inference_mode():
                return module(x)

        return run
    raise ValueError(f"unknown runtime {runtime!r}")


def time_runner(run: Callable[[], Any], protocol: Protocol, evict: Any) -> list[list[float]]:
    """Timed runs (ms), grouped by repeat, with the cache evicted before each."""
    import numpy as np

    clock = time.thread_time_ns if protocol.clock == "thread" else time.perf_counter_ns
    for _ in range(protocol.warmup):
        run()
    repeats: list[list[float]] = []
    medians: list[float] = []
    while len(repeats) < protocol.max_repeats:
        samples = []
        for _ in range(protocol.runs):
            if evict is not None:
                np.add(evict, 1, out=evict)
            t0 = clock()
            run()
            samples.append(round((clock() - t0) / 1e6, 5))
        repeats.append(samples)
        medians.append(float(np.median(samples)))
        if len(medians) >= protocol.min_repeats:
            last = medians[-protocol.min_repeats :]
            if (max(last) - min(last)) <= protocol.tolerance * float(np.median(last)):
                break
    return repeats


# ------------------------------------------------------------------------------------------ worker process


def _pin(cpu: int | None) -> int | None:
    if not hasattr(os, "sched_setaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    target = allowed[-1] if cpu is None else cpu
    if target not in allowed:
        return None
    os.sched_setaffinity(0, {target})
    return target


def _cpu_busy() -> dict[int, int]:
    """Busy jiffies per core from /proc/stat (empty where there is none)."""
    busy: dict[int, int] = {}
    try:
        lines = Path("/proc/stat").read_text().splitlines()
    except OSError:
        return busy
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit():
            values = [int(v) for v in fields[:8]]
            busy[int(name[3:])] = sum(values) - values[3] - values[4]  # all but idle and iowait
    return busy


def quietest_cpu(window_s: float = 0.3) -> int | None:
    """The allowed core that was least busy over a short window (ties: the last one): the timing worker pins
    there, away from whatever else runs now. None where affinity cannot be set."""
    if not hasattr(os, "sched_getaffinity"):
        return None
    allowed = sorted(os.sched_getaffinity(0))
    before = _cpu_busy()
    time.sleep(window_s)
    after = _cpu_busy()
    load = {c: after.get(c, 0) - before.get(c, 0) for c in allowed}
    return min(reversed(allowed), key=lambda c: load[c])


def _warm_up_cpu(seconds: float) -> None:
    """Throwaway work so the first timed item does not see a cold core or a cold allocator."""
    import numpy as np

    a = np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        a = np.tanh(a @ a.T * 1e-3)


def time_interleaved(
    runs_by_id: dict[Any, Callable[[], Any]], protocol: Protocol, passes: int, evict: Any, seed: int = 0
) -> Iterator[dict[str, Any]]:
    """Interleaved passes over many ready runners: in each pass (its own shuffled order) every runner does
    `protocol.runs` timed runs, the cache evicted before each. Yields one message per pass with each id's median
    run by the thread clock and by the wall clock, and its runs by the protocol's clock. Slow drifts of the
    machine (another process on the core or the L3, the host's frequency) then land on every item alike instead
    of on the few timed at that moment."""
    import random as _random

    import numpy as np

    ids = list(runs_by_id)
    for run in runs_by_id.values():
        for _ in range(protocol.warmup):
            run()
    rng = _random.Random(seed)
    for p in range(passes):
        rng.shuffle(ids)
        thread_ms: dict[Any, float] = {}
        wall_ms: dict[Any, float] = {}
        samples: dict[Any, list[float]] = {}
        for i in ids:
            run = runs_by_id[i]
            ts, ws = [], []
            for _ in range(protocol.runs):
                if evict is not None:
                    np.add(evict, 1, out=evict)
                w0, t0 = time.perf_counter_ns(), time.thread_time_ns()
                run()
                t1, w1 = time.thread_time_ns(), time.perf_counter_ns()
                ts.append((t1 - t0) / 1e6)
                ws.append((w1 - w0) / 1e6)
            thread_ms[i] = round(float(np.median(ts)), 5)
            wall_ms[i] = round(float(np.median(ws)), 5)
            samples[i] = [round(v, 5) for v in (ts if protocol.clock == "thread" else ws)]
        yield {"pass": p, "thread": thread_ms, "wall": wall_ms, "samples": samples}


def _serve_request(request: dict[str, Any], evict_of: Callable[[int], Any], out: Any) -> None:
    """Time one request's items: one JSON line per item (samples, or an error), or with `interleave` one line per
    interleaved pass over all items; then a `done` line."""
    runtime, threads = request["runtime"], request["threads"]
    protocol = Protocol.from_dict(request["protocol"])
    cache = Path(request["onnx_cache"]) if request.get("onnx_cache") else None
    evict = evict_of(protocol.evict_bytes)

    def say(msg: dict[str, Any]) -> None:
        out.write(json.dumps(msg) + "\n")
        out.flush()

    if request.get("interleave"):
        runners = {}
        for item in request["items"]:
            module, shape = item_module(item)
            onnx = _cached_onnx(cache, item, module, shape) if runtime == "onnxruntime" else None
            runners[item["id"]] = make_runner(runtime, module, shape, threads, onnx, protocol.graph_optimization)
        say({"ready": len(runners)})
        spec = request["interleave"]
        for msg in time_interleaved(runners, protocol, int(spec["passes"]), evict, int(spec.get("seed", 0))):
            say(msg)
    else:
        for item in request["items"]:
            try:
                module, shape = item_module(item)
                onnx = _cached_onnx(cache, item, module, shape) if runtime == "onnxruntime" else None
                run = make_runner(runtime, module, shape, threads, onnx, protocol.graph_optimization)
                say({"id": item["id"], "repeats": time_runner(run, protocol, evict)})
            except Exception as err:  # one bad op must not lose the others; the parent reports it
                say({"id": item["id"], "error": f"{type(err).__name__}: {err}"})
    say({"done": True})


def worker_main() -> int:
    """A timing process: a setup line ({"threads", "cpu", "warmup_s"}) on stdin, then one request per line until
    stdin closes. The warm-up spins once, when the process starts, as the protocol says."""
    import numpy as np
    import torch

    setup = json.loads(sys.stdin.readline())
    torch.set_num_threads(int(setup["threads"]))
    pinned = _pin(setup.get("cpu"))
    buffers: dict[int, Any] = {}

    def evict_of(size: int) -> Any:
        if size and size not in buffers:
            buffers[size] = np.zeros(size, dtype=np.uint8)
        return buffers.get(size)

    _warm_up_cpu(float(setup["warmup_s"]))
    sys.stdout.write(json.dumps({"hello": True, "pinned": pinned, "pid": os.getpid()}) + "\n")
    sys.stdout.flush()
    for line in sys.stdin:
        _serve_request(json.loads(line), evict_of, sys.stdout)
    return 0


def _cached_onnx(cache: Path | None, item: dict[str, Any], module, shape) -> bytes:
    import hashlib

    if cache is None:
        return onnx_bytes(module, shape)
    name = hashlib.sha1(json.dumps({k: v for k, v in item.items() if k != "id"}, sort_keys=True).encode()).hexdigest()
    path = cache / f"{name}.onnx"
    if path.exists():
        return path.read_bytes()
    data = onnx_bytes(module, shape)
    from nas.io import atomic_write

    atomic_write(path, lambda tmp: tmp.write_bytes(data))
    return data


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(MALLOC_ENV)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


class TimingWorker:
    """One timing process, pinned to one core, that serves request after request. Starting a process (Python,
    torch and onnxruntime imports, the warm-up) costs seconds; NetAdapt on a measured table times a few ops per
    iteration, so it keeps one worker per protocol round for the whole run (`nas.netadapt.pricing`). A batch
    alone (`run_worker` without a worker) gets a fresh one. A dead worker is restarted by the next request."""

    def __init__(self, protocol: Protocol, cpu: int | None = None):
        self.protocol = protocol
        self.cpu = cpu
        self.proc: subprocess.Popen[str] | None = None
        self._stderr: Any = None

    def _start(self) -> subprocess.Popen[str]:
        import tempfile

        self.close()
        cpu = quietest_cpu() if self.cpu is None else self.cpu
        # stderr goes to a file: a pipe nobody reads during a long run could fill and stall the worker
        self._stderr = tempfile.TemporaryFile(mode="w+")  # noqa: SIM115 (closed by close())
        proc = subprocess.Popen(
            [sys.executable, "-m", "nas.latency.measure"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
            env=worker_env(),
        )
        assert proc.stdin is not None
        setup = {"threads": self.protocol.threads, "cpu": cpu, "warmup_s": self.protocol.warmup_s}
        proc.stdin.write(json.dumps(setup) + "\n")
        proc.stdin.flush()
        self.proc = proc
        return proc

    def request(
        self,
        items: list[dict[str, Any]],
        *,
        protocol: Protocol | None = None,
        onnx_cache: Path | None = None,
        interleave: dict[str, Any] | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Time `items` with `protocol` (default: the worker's; the same thread count) and yield the results as
        they come ({"id", "repeats"} or {"id", "error"}; with `interleave` ({"passes", "seed"}): {"ready"} then
        one {"pass", "thread", "wall"} per pass)."""
        protocol = protocol or self.protocol
        if protocol.threads != self.protocol.threads:
            raise ValueError(f"a {self.protocol.threads}-thread worker cannot time with {protocol.threads} threads")
        proc = self.proc if self.proc is not None and self.proc.poll() is None else self._start()
        assert proc.stdin is not None and proc.stdout is not None
        request = {
            "runtime": protocol.runtime,
            "threads": protocol.threads,
            "protocol": asdict(protocol),
            "items": items,
            "onnx_cache": str(onnx_cache) if onnx_cache else None,
            "interleave": interleave,
        }
        seen, done = 0, False
        try:
            proc.stdin.write(json.dumps(request) + "\n")
            proc.stdin.flush()
            for line in proc.stdout:
                msg = json.loads(line)
                if msg.get("done"):
                    done = True
                    break
                if "hello" not in msg:
                    seen += 1
                    yield msg
        except BrokenPipeError:
            pass
        finally:
            if not done:  # stopped early (an error, or the caller stopped): the worker's state is unknown
                if proc.poll() is None:
                    proc.kill()
                proc.wait()
                why = self._last_error()
                self.close()
        if not done:
            raise RuntimeError(f"latency worker stopped after {seen} of {len(items)} items: {why}")

    def _last_error(self) -> str:
        if self._stderr is None:
            return "no message"
        self._stderr.seek(0)
        tail = self._stderr.read().strip().splitlines()[-1:]
        return tail[0] if tail else "no message"

    def cpu_s(self) -> float:
        """CPU seconds the running process has used (0 when none runs): a live worker is not in our
        RUSAGE_CHILDREN, and `LoadMeter` must not count its timing as another process's load."""
        if self.proc is None or self.proc.poll() is not None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime

    def close(self) -> None:
        """Stop the worker (closing its stdin ends it; a stuck one is killed)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.stdin.close()  # type: ignore[union-attr]
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> TimingWorker:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def run_worker(
    items: list[dict[str, Any]],
    *,
    protocol: Protocol,
    cpu: int | None = None,
    onnx_cache: Path | None = None,
    interleave: dict[str, Any] | None = None,
    worker: TimingWorker | None = None,
) -> Iterator[dict[str, Any]]:
    """Time `items` on `worker`, or on a fresh worker process of their own; yields as `TimingWorker.request`."""
    if worker is not None:
        yield from worker.request(items, protocol=protocol, onnx_cache=onnx_cache, interleave=interleave)
        return
    with TimingWorker(protocol, cpu) as own:
        yield from own.request(items, onnx_cache=onnx_cache, interleave=interleave)


# ------------------------------------------------------------------------------------------ machine load

# Other processes may use at most this share of the machine's CPU time while timing (see docs/latency.md for
# the measurements behind it); past it `time_items` refuses unless the caller allows a busy machine.
BUSY_SHARE = 0.35


@dataclass
class Load:
    """How busy the machine was while timing: the share of all cores' time other processes used, and the mean
    number of runnable processes besides the timing worker."""

    other_share: float = 0.0
    other_runnable: float = 0.0
    seconds: float = 0.0

    def add(self, other: Load) -> Load:
        total = self.seconds + other.seconds
        if total <= 0:
            return Load()
        w1, w2 = self.seconds / total, other.seconds / total
        return Load(
            round(self.other_share * w1 + other.other_share * w2, 4),
            round(self.other_runnable * w1 + other.other_runnable * w2, 3),
            round(total, 1),
        )

    def to_dict(self) -> dict[str, Any]:
        return {"other_cpu_share": self.other_share, "other_runnable": self.other_runnable, "seconds": self.seconds}


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies over all cores from /proc/stat, None where there is none."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    values = [int(v) for v in first[1:9]]
    return sum(values) - values[3] - values[4], sum(values)


def _procs_running() -> int | None:
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            if line.startswith("procs_running"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


class LoadMeter:
    """Samples the machine while a timing worker runs: other processes' CPU share (all CPU time spent minus ours,
    our waited-for children's and a running `worker`'s) and runnable processes (from /proc/stat). A context
    manager."""

    def __init__(self, interval_s: float = 0.25, worker: TimingWorker | None = None):
        self.interval_s = interval_s
        self.worker = worker
        self.load = Load()

    def __enter__(self) -> LoadMeter:
        import resource
        import threading

        self._t0 = time.monotonic()
        self._cpu0 = _cpu_times()
        self._own0 = _own_cpu_s(resource) + (self.worker.cpu_s() if self.worker else 0.0)
        self._runnable: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            n = _procs_running()
            if n is not None:
                self._runnable.append(n)

    def __exit__(self, *exc: Any) -> None:
        import resource

        self._stop.set()
        self._thread.join()
        cpu1 = _cpu_times()
        seconds = time.monotonic() - self._t0
        if self._cpu0 is None or cpu1 is None or cpu1[1] <= self._cpu0[1]:
            self.load = Load(seconds=round(seconds, 1))
            return
        tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        busy = (cpu1[0] - self._cpu0[0]) / tick
        total = (cpu1[1] - self._cpu0[1]) / tick
        ours = _own_cpu_s(resource) + (self.worker.cpu_s() if self.worker else 0.0) - self._own0
        share = max(0.0, busy - ours) / total
        # the worker is runnable while it times, and so is the sampling thread when it reads
        runnable = max(0.0, sum(self._runnable) / len(self._runnable) - 2) if self._runnable else 0.0
        self.load = Load(round(min(share, 1.0), 4), round(runnable, 3), round(seconds, 1))


def _own_cpu_s(resource: Any) -> float:
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def busy_error(load: Load, what: str, threshold: float = BUSY_SHARE) -> NasError:
    return NasError(
        f"the machine is busy: other processes used {load.other_share:.0%} of its CPU time while {what} "
        f"(limit {threshold:.0%}, {load.other_runnable:.1f} other runnable); rerun when it is quiet, "
        f"or pass --allow-busy to keep figures timed under load"
    )


# ------------------------------------------------------------------------------------------ timing API


@dataclass
class Timed:
    """What `time_items` measured: per item id, its runs grouped by pass (interleaved) or by repeat
    (`passes=0`); the ids that failed, with why; the machine's load meanwhile."""

    runs: dict[Any, list[list[float]]]
    errors: dict[Any, str]
    load: Load


def time_items(
    items: list[dict[str, Any]],
    protocol: Protocol,
    *,
    workdir: Path,
    passes: int | None = None,
    seed: int = 0,
    cpu: int | None = None,
    on_progress: Callable[[float], None] | None = None,
    allow_busy: bool = False,
    busy_share: float = BUSY_SHARE,
    what: str = "timing",
    worker: TimingWorker | None = None,
) -> Timed:
    """Time `items` (each with an "id") in one worker process (`worker`, or a fresh one), with the protocol's
    runtime and clock: in `passes` interleaved passes (default `protocol.passes`), or one item after the other
    when that is 0. `on_progress(n)` is called with the items' worth of work done since the last call. A machine
    busier than `busy_share` raises NasError unless `allow_busy`."""
    passes = protocol.passes if passes is None else passes
    ids = {str(item["id"]): item["id"] for item in items}  # JSON from the worker turns every id into a string
    runs: dict[Any, list[list[float]]] = {}
    errors: dict[Any, str] = {}
    interleave = {"passes": passes, "seed": seed} if passes else None
    with LoadMeter(worker=worker) as meter:
        for msg in run_worker(
            items, protocol=protocol, cpu=cpu, onnx_cache=workdir / "onnx", interleave=interleave, worker=worker
        ):
            if interleave:
                if "pass" not in msg:
                    continue
                for key, samples in msg["samples"].items():
                    runs.setdefault(ids[key], []).append(samples)
                if on_progress:
                    on_progress(len(items) / passes)
            elif "error" in msg:
                errors[ids[str(msg["id"])]] = msg["error"]
            else:
                runs[ids[str(msg["id"])]] = msg["repeats"]
                if on_progress:
                    on_progress(1)
    if interleave and (len(runs) != len(items) or any(len(v) != passes for v in runs.values())):
        raise RuntimeError(f"interleaved worker returned {len(runs)}/{len(items)} items")
    if meter.load.other_share > busy_share and not allow_busy:
        raise busy_error(meter.load, what, busy_share)
    return Timed(runs, errors, meter.load)


@contextlib.contextmanager
def progress_bar(
    label: str, total: float, enabled: bool = True, completed: float = 0
) -> Iterator[Callable[[float], None]]:
    """A progress bar (nas.progress); yields the `on_progress` callback of `time_items`."""
    from nas.progress import progress_bar as make_bar

    bar = make_bar(f"[bold]{label}[/]", disable=not enabled)
    with bar:
        task = bar.add_task("", total=total, completed=completed)
        yield lambda n: bar.advance(task, n)


if __name__ == "__main__":
    sys.exit(worker_main())
