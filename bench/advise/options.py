"""How ``taskbench advise`` searches, as the command line sets it: ``AdviseOptions`` and what
"cheapest" weighs (``Objective``; ``objective`` computes it from measured costs).

No heavy import: the command reads its option defaults from here as it starts, before it imports
the search (``run``)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.measure.options import RunOptions


@dataclass(frozen=True)
class Objective:
    per_mb: float = 1.0
    per_wal_byte: float = 0.02
    per_write_ms: float = 10.0
    per_build_s: float = 0.5

    def describe(self) -> str:
        return (
            f"{self.per_mb:g} per MB of index + {self.per_wal_byte:g} per byte of WAL per write + "
            f"{self.per_write_ms:g} per ms of write p95 + {self.per_build_s:g} per build second"
        )


# The search's measurements: three explained samples tell the plan; a borderline cell stops
# undecided after two seconds (and is no pass); no cold pass, no stability check.
SEARCH_RUN = RunOptions(explain_samples=3, warmup_seconds=0.1, cell_budget=2.0, cold_samples=0, stability_rounds=0)
# Candidates screened (each built and measured alone) per scenario failing at baseline, best-scored
# first: the search's breadth. The budgets (builds, seconds) cut the search wherever it is; fewer
# screens leave every phase after them to run.
SCREEN_PER_SCENARIO = 6
# The final comparison: the full protocol, with a cell budget that keeps a borderline cell of the
# weaker contenders from taking the run's time (it ends inconclusive, which is no pass).
FINAL_RUN = RunOptions(cell_budget=6.0)


@dataclass(frozen=True)
class AdviseOptions:
    headroom: float = 1.5
    target_tasks_per_user: int | None = None  # None: the power users' size in the dataset
    objective: Objective = field(default_factory=Objective)
    max_builds: int | None = 150
    screen_per_scenario: int = SCREEN_PER_SCENARIO
    time_budget_s: float | None = 360.0  # the search's; the final run and deploy come after it
    search_run: RunOptions = SEARCH_RUN
    final_run: RunOptions = FINAL_RUN
    growth_from: Path | None = None  # a results.json with scale fits
    growth_variant: str = "recommended"  # whose fitted exponents stand for an indexed plan
    hypopg: bool = True
    deploy: bool = True
    reference: str = "recommended"  # the catalogue variant the advice is compared with
    down_revision: str | None = None
    concurrent: bool = False  # measure even while another measurement holds the server
    policy: str | None = None  # a catalogue variant whose row-level security every trial holds
    # advise measures in many runs, each taking the server's measurement lock: between two of them
    # another measurement may take it, and advise then waits for it rather than fail half-way
    lock_wait: float = 900.0

    def measuring(self, opts: RunOptions) -> RunOptions:
        return replace(opts, concurrent=self.concurrent or opts.concurrent, lock_wait=self.lock_wait)
