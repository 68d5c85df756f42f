"""How a run measures, as the command line sets it: ``RunOptions`` (the matrix's engine), ``PairOptions``
(side-by-side pairs), the statement timeout they derive from a cell's SLA and the plan-cache modes.

Standard library only: every ``taskbench`` command reads its option defaults from here as it starts,
before it imports the engine (``runner``, ``paired``) that uses them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from bench.errors import InputError

if TYPE_CHECKING:
    from bench.results import PlanCache

DEFAULT_FACTOR = 20.0  # a cell's statement timeout: this many times its SLA ...
MIN_TIMEOUT_MS = 100  # ... and never under this, where a scheduler's hiccup alone would reach it


def statement_timeout_ms(factor: float, sla_ms: float) -> int:
    """The statement_timeout every execution of a cell runs under (warm-up, samples, EXPLAIN, cold
    samples, pairs): far above its SLA, so only a query no user could wait for reaches it."""
    return max(MIN_TIMEOUT_MS, round(factor * sla_ms))


# Each --plan-cache mode and the plan_cache_mode it sets on the samples' connection (``plancache``).
PLAN_CACHE: dict[PlanCache, str] = {"driver": "auto", "custom": "force_custom_plan", "generic": "force_generic_plan"}
DEFAULT_PLAN_CACHE: PlanCache = "driver"


def plan_cache(mode: str) -> PlanCache:
    """A --plan-cache value checked."""
    found = next((m for m in PLAN_CACHE if m == mode), None)
    if found is None:
        raise ValueError(f"--plan-cache must be one of {', '.join(PLAN_CACHE)}, not {mode!r}")
    return found


@dataclass(frozen=True)
class RunOptions:
    seed: int = 1
    explain_samples: int = 20  # K: the first K samples also run EXPLAIN (ANALYZE, BUFFERS)
    warmup_seconds: float = 0.5  # warm-up per cell: plain executions for this long, 1 to runner.WARMUP_MAX of them
    cell_budget: float = 20.0  # seconds of measuring, once every class reached its first pass look; then inconclusive
    # an early fail (bench.judge.sequential.CONFIRM_BEFORE) is measured again from nothing after this
    # pause, which a burst of other work on the machine should not outlast (recorded in the protocol)
    confirm_pause_s: float = 2.0
    min_samples: int = 0  # per class, taken for the estimates even after the verdict (scale's curves)
    cold_samples: int = 5  # per cell; 0 skips the cold pass
    stability_rounds: int = 3  # re-ANALYZEs; 0 skips the check
    concurrent: bool = False  # measure even while another measurement holds the server (recorded)
    lock_wait: float = 10.0  # seconds to wait for another measurement on the server to finish
    timeout_factor: float = DEFAULT_FACTOR  # a cell's statement_timeout: this many times its SLA
    share: bool = True  # a cell whose plans and indexes equal a measured one's shares its samples (``sharing``),
    # and an isolation check that finished is lent to the variants with the same policies
    # how the samples' prepared statements are planned (``plancache``): as the driver does it, always
    # custom (as behind a transaction pooler without prepared statements), or always generic
    plan_cache: str = DEFAULT_PLAN_CACHE

    def __post_init__(self) -> None:
        if self.explain_samples < 1:  # a cell's plan comes from its explained samples
            raise InputError("at least one sample per cell must run EXPLAIN ANALYZE (--explain-samples 1 or more)")
        if self.timeout_factor <= 1:
            raise InputError("--timeout-factor must be more than 1: at 1 every sample over the SLA would time out")
        try:
            plan_cache(self.plan_cache)
        except ValueError as exc:
            raise InputError(str(exc)) from None

    def statement_timeout_ms(self, sla_ms: float) -> int:
        return statement_timeout_ms(self.timeout_factor, sla_ms)


@dataclass(frozen=True)
class PairOptions:
    pairs: int = 30  # per cell: enough for the sign test to call a cell at 1% over 500 cells (2^-30)
    timeout_factor: float = DEFAULT_FACTOR  # each execution's statement timeout, as the matrix's cells
    warmup: int = 2  # unrecorded rounds (an execution per side and cell) at the least
    warmup_seconds: float = 0.5  # and unrecorded rounds until this much time has passed
    seed: int = 1
    concurrent: bool = False
    lock_wait: float = 10.0
    plan_cache: str = DEFAULT_PLAN_CACHE  # the samples' prepared statements planned as the matrix's (``plancache``)
