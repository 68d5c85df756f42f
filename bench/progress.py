"""Progress for long work: a rich bar (rows/s, ETA) on a terminal, plain periodic lines otherwise;
and where the time went, phase by phase (``Clock``)."""

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

STEP = " · "
"""A label may name the step under way after this separator ("measure cells · composite: cold
samples"): the part before it is one bar, counted and timed as one, and the step shows beside it."""


def no_progress(label: str, done: int, total: int | None) -> None:
    return None


class Clock:
    """Seconds spent per phase of a run (a phase entered again adds to its time): the answer to
    "where does the time go", recorded in results.json and advice.json."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.on_phase: Callable[[str], None] = lambda name: None  # progress: the phase under way
        self._started = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the clock was made, phases or not."""
        return round(time.perf_counter() - self._started, 3)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.on_phase(name)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = round(self.seconds.get(name, 0.0) + time.perf_counter() - started, 3)


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
                work = label.partition(STEP)[0]
                if work not in tasks:
                    tasks[work] = (bar.add_task(label, total=total, rate=""), time.perf_counter())
                task_id, started = tasks[work]
                rate = done / max(time.perf_counter() - started, 1e-9)
                bar.update(
                    task_id, description=label, completed=done, total=total, rate=f"{rate:,.0f} {unit_of(work)}/s"
                )

            yield advance
        return

    last: dict[str, tuple[float, str, int]] = {}  # per bar: when it last printed, the step and count it showed
    started: dict[str, float] = {}

    def plain(label: str, done: int, total: int | None) -> None:
        # a log has no bar: a line every interval_s, and at once when a step starts or the work is done
        work, _, step = label.partition(STEP)
        now = time.perf_counter()
        started.setdefault(work, now)
        printed, shown, count = last.get(work, (-interval_s, "", -1))
        finished = total is not None and done >= total
        if step == shown and now - printed < interval_s and not (finished and done != count):
            return
        last[work] = (now, step, done)
        elapsed = now - started[work]
        rate = done / max(elapsed, 1e-9)
        of = f"/{total:,}" if total is not None else ""
        eta = f", ETA {_duration((total - done) / rate)}" if total is not None and done and not finished else ""
        per_s = f"{rate:,.0f}" if rate >= 10 else f"{rate:.2f}"  # cells come a few a second, rows by thousands
        print(f"{label}: {done:,}{of} {unit_of(work)} ({per_s} {unit_of(work)}/s{eta})", file=sys.stderr, flush=True)

    yield plain


def _duration(seconds: float) -> str:
    """E.g. "45 s", "3 min 20 s", "1 h 05 min"."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"
