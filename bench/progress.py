"""Progress for long work: a rich bar (rows/s, ETA) on a terminal, plain periodic lines otherwise."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

# advance(label, done, total): `done` is cumulative; total may be None when unknown.
Advance = Callable[[str, int, "int | None"], None]


def no_progress(label: str, done: int, total: int | None) -> None:
    return None


@contextmanager
def progress(
    enabled: bool = True, unit: str = "rows", interval_s: float = 5.0, units: dict[str, str] | None = None
) -> Iterator[Advance]:
    """``units`` names the unit of labels that start with a key (``{"seed": "rows"}``) where one
    bar shows several kinds of work."""
    if not enabled:
        yield no_progress
        return

    def unit_of(label: str) -> str:
        return next((u for prefix, u in (units or {}).items() if label.startswith(prefix)), unit)

    console = Console(stderr=True)
    if console.is_terminal:
        with Progress(
            TextColumn("{task.description:<28}"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=False,
        ) as bar:
            tasks: dict[str, tuple[TaskID, float]] = {}

            def advance(label: str, done: int, total: int | None) -> None:
                if label not in tasks:
                    tasks[label] = (bar.add_task(label, total=total, rate=""), time.perf_counter())
                task_id, started = tasks[label]
                rate = done / max(time.perf_counter() - started, 1e-9)
                bar.update(task_id, completed=done, total=total, rate=f"{rate:,.0f} {unit_of(label)}/s")

            yield advance
        return

    last: dict[str, float] = {}
    started: dict[str, float] = {}

    def plain(label: str, done: int, total: int | None) -> None:
        now = time.perf_counter()
        started.setdefault(label, now)
        finished = total is not None and done >= total
        if not finished and now - last.get(label, 0.0) < interval_s:
            return
        last[label] = now
        rate = done / max(now - started[label], 1e-9)
        of = f"/{total:,}" if total is not None else ""
        print(f"{label}: {done:,}{of} {unit_of(label)} ({rate:,.0f} {unit_of(label)}/s)", file=sys.stderr, flush=True)

    yield plain
