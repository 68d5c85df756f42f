"""``advice.json``: what an advise run found, next to the ``results.json`` of its final comparison
run (one directory). The advise report is rendered from the two. Versioned like ``results.json``
(``bench.versioned``): bump ADVICE_VERSION on any change an older reader would misread, add a line
to the history and an ``_update_to_N`` step; ``load`` reads every version below and refuses others.

Format history:
- 1 (2026-11-30): the search, its trials and steps, the contenders, the Pareto front, deploy costs
  and the shipped files; no ``schema_version`` (a file without one is read as version 1).
- 2 (2026-12-06): ``schema_version``; ``seconds`` per phase to the millisecond (was 0.1 s).
- 3 (2026-12-06): the server the advice holds for (``server``, "PostgreSQL 17.10", and
  ``server_major``): the planner differs between majors, so a set found on one may not hold on
  another. An older file's is null (not recorded; its results.json beside it names the server).
- 4 (2026-12-06): ``policy``: the row-level security policy variant the search held
  (``advise --policy``), its statements, the columns its policies fix and the advised indexes
  leading with one; null without one (an older file's too: no policy was held).
- 5 (2026-12-06): ``settings.screen_per_scenario``, the candidates screened per failing scenario
  (``advise --screen-per-scenario``); an older file's is 6, what every earlier search screened.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel

from bench.versioned import Format

ADVICE_FILE = "advice.json"
ADVICE_VERSION = 5


class Hypo(BaseModel):
    size_bytes: int  # HypoPG's estimate
    used_by: list[str]  # scenarios whose estimated plan used the hypothetical index
    cost_without: dict[str, float]
    cost_with: dict[str, float]


class CandidateInfo(BaseModel):
    name: str
    table: str
    using: str
    ddl: str
    extensions: list[str]
    serves: dict[str, int]  # scenario -> score (see candidates.score)
    sources: list[str]
    screened: bool  # built alone in the screening phase
    size_bytes: int | None = None  # measured, once built
    build_seconds: float | None = None
    measured_with: list[str] = []  # the scenarios it serves that its screening measured
    plans: list[str] = []  # of those, the ones whose measured plan used it
    hypo: Hypo | None = None


class CostsInfo(BaseModel):
    index_bytes: int
    build_seconds: float
    wal_per_write: float | None
    write_p95_ms: float | None
    objective: float


class TrialInfo(BaseModel):
    number: int
    purpose: str
    indexes: list[str]
    measured: list[str]
    builds: int
    seconds: float
    failing: list[str] | None  # None: not every scenario known for this set
    worst_ratio: float | None  # worst p95 ÷ SLA over every scenario (None: not every scenario known)
    costs: CostsInfo | None


class StepInfo(BaseModel):
    phase: str
    candidate: str | None
    trial: int
    note: str


class Miss(BaseModel):
    scenario: str
    why: str


class Contender(BaseModel):
    """One index set of the final comparison (all measured in one run, same options)."""

    variant: str
    description: str
    statements: list[str]
    costs: CostsInfo
    worst_ratio: float  # worst p95 (of any user class) ÷ the scenario's SLA
    worst_scenario: str
    misses: list[Miss]  # scenarios not passing with headroom, and why


class Point(BaseModel):
    label: str
    worst_ratio: float
    index_bytes: int
    wal_per_write: float | None
    build_seconds: float
    front: bool  # on the Pareto front (no other point is at least as good on all four, better on one)


class WriterStats(BaseModel):
    statements: int
    p50_ms: float
    p95_ms: float
    max_ms: float


class DeployInfo(BaseModel):
    index: str
    table: str
    build_s: float
    concurrent_build_s: float
    writers: int
    before: WriterStats | None
    during_build: WriterStats | None
    during_concurrent_build: WriterStats | None
    blocked_ms: float | None


class Settings(BaseModel):
    headroom: float
    measured_tasks_per_user: int  # the largest user class's size in the dataset (power users)
    target_tasks_per_user: int
    growth: dict[str, float]  # scenario -> p95 growth factor to the target size
    growth_source: str
    effective_sla_ms: dict[str, float]  # SLA ÷ (headroom × growth): what the search must meet
    objective: str
    max_builds: int | None
    screen_per_scenario: int  # candidates screened per scenario failing at baseline
    time_budget_s: float | None
    hypopg: str  # used, or why not


class PolicyColumns(BaseModel):
    policy: str
    table: str
    columns: list[str]  # what its USING fixes by equality: an access on its table as if it wrote them


class PolicyInfo(BaseModel):
    """The policy variant every trial and contender ran under (``advise --policy``)."""

    variant: str
    claim: str  # the setting each sample set to its user's id
    statements: list[str]  # ENABLE ROW LEVEL SECURITY and CREATE POLICY, the canonical text applied
    columns: list[PolicyColumns]
    serving: dict[str, list[str]]  # advised index -> the policies one of whose columns leads its key


class Advice(BaseModel):
    schema_version: int = ADVICE_VERSION
    run_id: str  # the final comparison run's
    dataset: str
    settings: Settings
    candidates: list[CandidateInfo]
    trials: list[TrialInfo]
    steps: list[StepInfo]
    failing_at_baseline: list[str]
    advised: list[str]  # candidate names
    advised_ddl: list[str]
    stopped: str | None
    real_builds: int  # indexes built by the search's trials (the final run and deploy not counted)
    contenders: list[Contender]
    pareto: list[Point]
    deploy: list[DeployInfo]
    shipped: dict[str, str]  # form -> file written
    seconds: dict[str, float]  # wall seconds per phase, and total
    server: str | None = None  # the server the search measured on, e.g. "PostgreSQL 17.10" (None: older file)
    server_major: int | None = None
    policy: PolicyInfo | None = None  # None: index sets alone, the scenarios with their own user filter


def _update_to_2(raw: dict[str, Any]) -> dict[str, Any]:
    """Nothing to convert: version 2 only writes its version, and its seconds more precisely."""
    return raw


def _update_to_3(raw: dict[str, Any]) -> dict[str, Any]:
    """Nothing to convert: an older file did not record its server (null)."""
    return raw


def _update_to_4(raw: dict[str, Any]) -> dict[str, Any]:
    """Nothing to convert: an older advise held no policy (null)."""
    return raw


def _update_to_5(raw: dict[str, Any]) -> dict[str, Any]:
    """An older search screened 6 candidates per failing scenario (not an option then)."""
    settings = raw.get("settings")
    return {**raw, "settings": {**settings, "screen_per_scenario": 6}} if isinstance(settings, dict) else raw


# version -> the step that brings a file of that version to the next one
FORMAT = Format(
    "advice",
    Advice,
    ADVICE_VERSION,
    {1: _update_to_2, 2: _update_to_3, 3: _update_to_4, 4: _update_to_5},
    unversioned=1,
)


def load(path: Path) -> Advice:
    """An advise run directory's or a file's advice, of any version ``FORMAT`` reads."""
    return FORMAT.load(path / ADVICE_FILE if path.is_dir() else path)
