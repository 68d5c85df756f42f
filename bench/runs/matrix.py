"""The matrix: every scenario of a catalogue under every variant, as ``taskbench run`` and ``bench``
measure it (and scale at each size, advise's final measurement, a shard's share).

The sampling itself is the engine's (``measure.runner``); a run of its own adds the server's
measurement lock around it and records what it was measured beside (``conditions``).
"""

from __future__ import annotations

from pathlib import Path

from bench.catalogue.files import Catalogue
from bench.measure.lock import measurement_lock
from bench.measure.options import RunOptions
from bench.measure.runner import measure_unlocked, prepared
from bench.progress import Advance, no_progress
from bench.results import Results
from bench.targets.target import Target

VERDICTS = ("pass", "fail", "borderline", "inconclusive")
DEFAULTS = RunOptions()


def measure(
    target: Target, catalogue: Catalogue, opts: RunOptions = DEFAULTS, advance: Advance = no_progress
) -> Results:
    """Every cell of ``catalogue`` on scratch copies of ``target``, under the measurement lock."""
    ready = prepared(target, catalogue)  # a mistake in a scenario file stops the run before any lock
    # The lock before the copy: copying the database is heavy I/O another run would measure.
    with measurement_lock(target, "run", opts.concurrent, opts.lock_wait) as measuring:
        res = measure_unlocked(target, catalogue, opts, ready, advance)
        return res.model_copy(update={"conditions": measuring.finish()})


def render(res: Results) -> list[str]:
    """A line per cell: its verdict in words."""
    return [f"  {c.scenario} × {c.variant}: {c.verdict_text}" for c in res.cells]


def summary(res: Results, path: Path) -> str:
    """The one line a run ends with, even a quiet one: its verdicts counted, and where it was saved."""
    counts = {v: sum(1 for c in res.cells if c.verdict == v) for v in VERDICTS}
    return (
        f"{len(res.cells)} cells: {counts['pass']} pass, {counts['fail']} fail, {counts['borderline']} borderline, "
        f"{counts['inconclusive']} inconclusive → {path}"
    )
