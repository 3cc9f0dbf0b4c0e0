"""The one shape of progress bar every long command shows: on stderr (stdout stays for results and --json),
with the count done, the time spent and the time left."""

from __future__ import annotations

from typing import Any


def progress_bar(label: str, *, unit: str = "", disable: bool = False, time_left: bool = True) -> Any:
    """A `rich.progress.Progress`: `label` may use the task's fields (`{task.description}`, `{task.fields[x]}`);
    `unit` follows the count ("steps"); `time_left=False` for work whose end is set by a clock, not a count."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    columns: list[Any] = [TextColumn(label), BarColumn(), MofNCompleteColumn()]
    if unit:
        columns.append(TextColumn(unit))
    columns.append(TimeElapsedColumn())
    if time_left:
        columns += [TextColumn("left"), TimeRemainingColumn()]
    return Progress(*columns, console=Console(stderr=True), disable=disable)
