"""The bad-input corpus (tests/corpus/cases.yaml): every probe ends as a user mistake should, and runs nothing.

A case runs `nas ARGV` in an empty working directory, in this process (`nas.cli.main`) or, where it could hang
or fork workers, in a child process. It must exit 2 with exactly one `nas: error:` line (the last on stderr) and
no traceback, leave nothing behind in the working directory or the corpus, create no `pwned` file (the payload of
every code-carrying input), and finish within its limit.

The limit is on CPU time (the work a command does; wall time on a shared CI machine is the other jobs' too), and
a case still running after three times its limit on the wall clock is stopped, so a hang fails rather than stalls.
"""

from __future__ import annotations

import importlib
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from nas.cli import main

CORPUS = Path(__file__).resolve().parent / "corpus"
ROOT = CORPUS.parent.parent
SENTINEL = "pwned"
DEFAULT_SECONDS = 5.0


# ---------------------------------------------------------------------------------------------- setups
# Files too large, too special (FIFOs) or too stateful (a live run) to keep in git, made in the working directory.
# Each returns None, or a check to run once the case has finished.


def _deep(path: Path, depth: int) -> None:
    path.write_text("[" * depth + "]" * depth)


def _sparse(path: Path, size: int) -> None:
    with path.open("wb") as f:
        f.truncate(size)


def _fifo_imagefolder(path: Path) -> None:
    shutil.copytree(CORPUS / "data/imagefolder/corrupt/dog", path / "dog")
    (path / "cat").mkdir()
    os.mkfifo(path / "cat" / "0.png")


def _fifo_cifar(path: Path) -> None:
    path.mkdir()
    os.mkfifo(path / "data_batch_1")
    shutil.copy(CORPUS / "data/cifar10/list/test_batch", path / "test_batch")


def _torn_run(path: Path) -> None:
    shutil.copytree(CORPUS / "run/torn", path)


def _live_search(path: Path) -> Callable[[], None]:
    """A search running in another process, with its run directory at `path`; the check: it finishes cleanly."""
    argv = ["search", "--target-latency", "80ms", "--evaluator", "zero-cost", "--trials", "4", "--window", "none"]
    argv += ["--time-budget", "none", "--data", "synthetic:40,20", "--out-dir", str(path.parent), "--name", path.name]
    first = _spawn(argv, path.parent.parent)
    deadline = time.monotonic() + 60
    while not any((path / "trials").glob("*.json")):
        if first.poll() is not None or time.monotonic() > deadline:
            first.kill()
            raise AssertionError(f"the first search did not start a trial: {first.communicate()[1][-2000:]}")
        time.sleep(0.2)

    def check() -> None:
        try:
            _, err = first.communicate(timeout=120)
        finally:
            _kill(first)
        assert first.returncode == 0 and "Traceback" not in err, f"the first search broke:\n{err[-3000:]}"

    return check


SETUPS: dict[str, Callable[..., Callable[[], None] | None]] = {
    "deep_json": _deep,
    "deep_yaml": _deep,
    "sparse": _sparse,
    "dir": lambda path: path.mkdir(),
    "file": lambda path: path.write_text("a file\n"),
    "fifo": lambda path: os.mkfifo(path),
    "fifo_imagefolder": _fifo_imagefolder,
    "fifo_cifar": _fifo_cifar,
    "torn_run": _torn_run,
    "live_search": _live_search,
}


# ---------------------------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    id: str
    argv: tuple[str, ...]
    setup: tuple = ()
    expect: str = "error"
    match: str | None = None
    excludes: str | None = None
    seconds: float = DEFAULT_SECONDS
    process: bool = False
    slow: bool = False
    xfail: str | None = None


def load_cases() -> list[Case]:
    raw = yaml.safe_load((CORPUS / "cases.yaml").read_text())
    cases = [Case(**{**c, "argv": tuple(c["argv"]), "setup": tuple(c.get("setup", ()))}) for c in raw]
    ids = [c.id for c in cases]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    return cases


def _params() -> Iterator[Any]:
    for case in load_cases():
        marks = [pytest.mark.xfail(strict=True, reason=f"fixed on the {case.xfail} branch")] if case.xfail else []
        marks += [pytest.mark.slow] if case.slow else []
        yield pytest.param(case, id=case.id, marks=marks)


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its size and mtime (directories too), to see what a command left."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            st = p.lstat()
            out[str(p.relative_to(root))] = (st.st_size if not p.is_dir() else 0, st.st_mtime_ns)
    return out


# ---------------------------------------------------------------------------------------------- runners


@dataclass
class Outcome:
    code: int | None
    out: str
    err: str
    seconds: float  # CPU time
    wall: float
    traceback: str = ""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class _Timeout(BaseException):  # not an Exception: no `except Exception` in the code under test swallows it
    pass


@contextmanager
def _alarm(seconds: float) -> Iterator[None]:
    def fire(*_: Any) -> None:
        raise _Timeout

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _run_here(argv: list[str], seconds: float, capsys: pytest.CaptureFixture) -> Outcome:
    tb, code, caught = "", None, []
    start, cpu = time.perf_counter(), time.process_time() + _children_cpu()
    try:
        # Warnings are stderr lines to a user of the command line: recorded, and shown as such below.
        with warnings.catch_warnings(record=True) as caught, _alarm(3 * seconds):
            warnings.simplefilter("always")
            code = main(argv)
    except SystemExit as err:
        code = err.code if isinstance(err.code, int) else 2
    except _Timeout:
        tb = f"still running after {3 * seconds:g} s; stopped"
    except BaseException:  # what escapes `main` is exactly what the case must not produce
        tb = traceback.format_exc()
    cpu = time.process_time() + _children_cpu() - cpu
    captured = capsys.readouterr()
    shown = "".join(warnings.formatwarning(w.message, w.category, w.filename, w.lineno) for w in caught)
    return Outcome(code, captured.out, shown + captured.err, cpu, time.perf_counter() - start, tb)


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _spawn(argv: list[str], cwd: Path) -> subprocess.Popen:
    code = "import sys; from nas.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.Popen(
        [sys.executable, "-c", code, *argv],
        cwd=cwd,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: killed with every worker it started
    )


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def _run_child(argv: list[str], seconds: float, cwd: Path) -> Outcome:
    start, cpu = time.perf_counter(), _children_cpu()
    proc = _spawn(argv, cwd)
    try:
        out, err = proc.communicate(timeout=3 * seconds)
        tb = ""
    except subprocess.TimeoutExpired:
        _kill(proc)
        out, err = proc.communicate()
        tb = f"still running after {3 * seconds:g} s; killed"
    return Outcome(proc.returncode, out, err, _children_cpu() - cpu, time.perf_counter() - start, tb)


@pytest.fixture(scope="module", autouse=True)
def _warm() -> None:
    """Import what the commands import, so that a case's time is its own work, not the first import of torch."""
    from nas.cli import parser

    for module in ("nas.export", "nas.model", "nas.search", "nas.latency", "nas.accuracy"):
        importlib.import_module(module)
    parser()


# ---------------------------------------------------------------------------------------------- the test


@pytest.mark.parametrize("case", list(_params()))
def test_corpus_case(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    check_after = None
    if case.setup:
        kind, name, *args = case.setup
        target = work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        made = SETUPS[kind](target, *args)
        check_after = made if callable(made) else None
    before, corpus_before = _tree(work), _tree(CORPUS)
    argv = [a.replace("{corpus}", str(CORPUS)) for a in case.argv]
    result = _run_child(argv, case.seconds, work) if case.process else _run_here(argv, case.seconds, capsys)
    if check_after:
        check_after()
    shown = f"argv: nas {' '.join(case.argv)}\nexit: {result.code}\nstderr:\n{result.err[-3000:]}\n{result.traceback}"

    assert not (work / SENTINEL).exists() and not (ROOT / SENTINEL).exists(), "an input ran code\n" + shown
    assert not result.traceback and "Traceback" not in result.err, shown
    if case.expect == "ok" or (case.expect == "either" and result.code == 0):
        assert result.code == 0, shown
        if case.match:
            assert re.search(case.match, result.out), f"stdout does not match {case.match!r}:\n{result.out}"
        if case.excludes:
            assert not re.search(case.excludes, result.out), f"stdout matches {case.excludes!r}:\n{result.out}"
    else:
        lines = result.err.strip().splitlines()
        errors = [line for line in lines if line.startswith("nas: error: ")]
        assert result.code == 2, shown
        assert len(errors) == 1 and lines[-1] == errors[0], shown
        if case.match:
            assert re.search(case.match, errors[0]), f"the error does not match {case.match!r}:\n{errors[0]}"
        assert _tree(work) == before, f"left behind: {sorted(set(_tree(work)) - set(before))}\n{shown}"
    assert _tree(CORPUS) == corpus_before, "the command changed the corpus\n" + shown
    took = f"took {result.seconds:.1f} s of CPU, {result.wall:.1f} s of wall time (limit {case.seconds:g} s)"
    assert result.seconds < case.seconds, f"{took}\n{shown}"
