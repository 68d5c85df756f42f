"""What every run's summary says about the conditions it measured under."""

from __future__ import annotations

from bench.results import Results


def notes(res: Results) -> list[str]:
    """A line for each time the numbers were taken beside other work: another measurement, a busy
    machine (for a merged run, each shard's own)."""
    lines = []
    measured = [("", res.conditions), *((f"shard {s.shard.index}/{s.shard.count}: ", s.conditions) for s in res.shards)]
    for where, conditions in measured:
        if conditions and conditions.lock != "held":
            lines.append(f"{where}measured concurrently: {conditions.lock}")
        if conditions and conditions.busy:
            lines.append(
                f"{where}busy machine: load {conditions.load_before[0]:g} before and {conditions.load_after[0]:g} "
                f"after measuring on {conditions.cpus} CPUs — other work shared them, so times may be slow"
            )
    return lines
