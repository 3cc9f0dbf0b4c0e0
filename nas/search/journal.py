"""The study's journal file (`study.journal`): Optuna's one-JSON-object-per-line log, written through Optuna's
public `BaseJournalBackend` interface, and repaired before a resume when a kill or power cut tore its end.

Why a backend of our own: Optuna's `JournalFileBackend` fsyncs every append, and a search appends one line per
suggested parameter (30 per trial in the default space); its reader also accepts a torn last line silently, so
the next append glues a new line onto it and the file becomes unreadable. Here a line reaches the OS before
`append_logs` returns (a killed process loses nothing; a power cut can lose the last lines, which `repair`
then drops), and a line without its newline is never read as a log. One process writes a run (`RunLock`);
`flock` on the file still serialises appends within it. The format is Optuna's, so `optuna-dashboard` and
`optuna.storages.journal.JournalFileBackend` read the file as before.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from optuna.storages.journal import BaseJournalBackend

from nas.errors import NasError


class JournalFile(BaseJournalBackend):
    """Append-only JSON lines; `read_logs` resumes from the byte offset of the last log it returned."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.touch(exist_ok=True)
        self._offsets: dict[int, int] = {0: 0}  # log number → byte offset where it starts

    def read_logs(self, log_number_from: int) -> Iterator[dict[str, Any]]:
        if log_number_from in self._offsets:
            number, offset = log_number_from, self._offsets[log_number_from]
        else:
            number, offset = 0, 0
        with open(self.path, "rb") as f:
            f.seek(offset)
            for line in f:
                if not line.endswith(b"\n"):
                    return  # a line still being written (or torn): not a log yet
                offset += len(line)
                try:
                    log = json.loads(line)
                except json.JSONDecodeError:
                    raise NasError(
                        f"{self.path}: log line {number + 1} is damaged; `--resume` repairs the file"
                    ) from None
                number += 1
                self._offsets[number] = offset
                if number > log_number_from:
                    yield log

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        import fcntl

        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
        with open(self.path, "ab") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                f.write(text.encode("utf-8"))
                f.flush()
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@dataclass
class Repair:
    """What `repair` did to a journal: lines kept, lines salvaged from glued-together lines, lines dropped."""

    path: Path
    backup: Path
    kept: int
    salvaged: int
    dropped: int
    dropped_bytes: int

    def describe(self) -> str:
        salvaged = f", {self.salvaged} recovered from behind a torn one" if self.salvaged else ""
        return (
            f"{self.path.name} was damaged (a kill or power cut mid-write): kept {self.kept} complete log lines"
            f"{salvaged}, dropped {self.dropped} torn ({self.dropped_bytes} bytes); "
            f"the original is saved as {self.backup.name}"
        )


def _salvage(line: bytes) -> bytes | None:
    """The complete log at the end of a line that an append glued onto a torn one, if there is one."""
    start = line.find(b'{"op_code"', 1)
    while start != -1:
        try:
            json.loads(line[start:])
            return line[start:]
        except json.JSONDecodeError:
            start = line.find(b'{"op_code"', start + 1)
    return None


def repair(path: Path) -> Repair | None:
    """Make a journal readable before it is opened: keep every complete log line, drop a torn tail (and the
    torn part of a line that an older version appended onto one), back the original up beside it. None if
    the file was whole. Call it only while holding the run's lock."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    kept: list[bytes] = []
    salvaged = dropped = 0
    dropped_bytes = len(tail)
    if tail:
        dropped += 1
    for line in lines:
        try:
            json.loads(line)
            kept.append(line)
            continue
        except json.JSONDecodeError:
            pass
        rest = _salvage(line)
        if rest is not None:
            kept.append(rest)
            salvaged += 1
            dropped += 1  # the torn fragment in front of it
            dropped_bytes += len(line) - len(rest)
        else:
            dropped += 1
            dropped_bytes += len(line) + 1
    if not dropped and not salvaged:
        return None
    backup = path.with_name(f"{path.name}.damaged-{time.strftime('%Y%m%d-%H%M%S')}")
    backup.write_bytes(data)
    tmp = path.with_name(f".{path.name}.repair.tmp")
    tmp.write_bytes(b"".join(line + b"\n" for line in kept))
    os.replace(tmp, path)
    return Repair(path, backup, len(kept) - salvaged, salvaged, dropped, dropped_bytes)
