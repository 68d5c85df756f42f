"""The kinds of run as the command line sets them: ``LoadOptions`` and the defaults of ``taskbench
load``, ``scale`` and ``validate`` (the cross-check). ``RunOptions``, the engine's, is
``bench.measure.options``'s; ``ScaleOptions`` and ``CrossCheckOptions`` are built by their commands
from these.

Standard library only: each command reads its option defaults from here as it starts, before it
imports its run (``load``, ``scale``, ``crosscheck``)."""

from __future__ import annotations

from dataclasses import dataclass

from bench.catalogue.options import BASELINE_VARIANT

# taskbench load
LOAD_VARIANT = "recommended"  # what an app would ship: the load is measured under it


@dataclass(frozen=True)
class LoadOptions:
    clients: int = 4
    duration: float = 10.0  # seconds of measured load
    rate: float | None = None  # arrivals per second over all clients; None: closed loop
    warmup: float = 1.0  # seconds of load before measuring, not recorded
    seed: int = 1
    param_sets: int = 500  # per scenario, shared with pgbench
    pgbench_rounds: int = 2  # alternating harness/pgbench rounds for the comparison (0: none)
    jobs: int = 0  # processes the clients are spread over (0: one per CPU, at most one per client)
    concurrent: bool = False  # measure even while another measurement holds the server (recorded)
    lock_wait: float = 10.0  # seconds to wait for another measurement on the server to finish


# taskbench scale
SCALE_SIZES = (1_000, 10_000, 50_000, 100_000)
SCALE_USERS = 4
# The sequential test stops a clearly failing cell at a handful of samples, too few for a curve's p50
# and p95: a scale run keeps sampling each class up to this many for the estimates (--min-samples).
SCALE_MIN_SAMPLES = 100
# keyset_page_deep needs users with more than 1,000 tasks, so it cannot join the 1k size.
SCALE_SCENARIOS = ("open_task_count", "recent_tasks", "pending_tasks", "due_next_7_days")
SCALE_VARIANTS = (BASELINE_VARIANT, "composite", "recommended")

# taskbench validate: the harness against pgbench
CROSSCHECK_SCENARIOS = (
    "task_by_id",
    "open_task_count",
    "recent_tasks",
    "pending_tasks",
    "keyset_page_deep",
    "last_messages",
)
CROSSCHECK_VARIANT = BASELINE_VARIANT  # no index but the models' own: the queries' plans as the app ships them
CROSSCHECK_TRANSACTIONS = 200
