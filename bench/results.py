"""``results.json``: the one contract between ``run`` and ``report`` / ``compare``. Versioned.

Bump SCHEMA_VERSION on any change that an older reader would misread, add a line to the history
below and an ``_update_to_N`` migration: ``load`` brings every older version it knows up to date
step by step and refuses any other version with a clear message instead of guessing
(``bench.versioned``, which reads ``advice.json`` the same way).

Format history:
- 2 (2026-11): the matrix: variants with their costs, cells with raw samples, plan facts, verdicts.
- 3 (2026-11): optional sections: connection probe, scale, load.
- 4 (2026-11-30): write scenarios are cells (``kind``: read or write, each sample rolled back,
  WAL bytes per statement); the per-variant throughput "write tax" (``variants[].write``,
  ``config.write_rows``) is gone: it moved by ±20% between runs.
- 5 (2026-12-01): the sampling protocol is recorded (``protocol``): a sequential test on the
  samples over the SLA per user class (``cells[].classes``, ``decided_by``), EXPLAIN ANALYZE on the
  first K samples only (``samples.execution_ms`` ... hold K entries; ``samples.user_class`` and
  ``samples.at_s`` one per sample); ``config`` keeps what is not protocol (its samples,
  max_samples, warmup, confidence and early_look moved into an older file's ``protocol``);
  ``conditions``: the measurement lock and the machine's load before and after.
- 6 (2026-12-01): what a later check needs to measure this run's SQL again beside a newer one:
  ``cells[].scenario_sql`` (the file's SQL, :name binds) and ``cells[].params``; the schema the
  models produced (``schema_ddl``); a hash of each explained sample's rows and its temp blocks
  (``samples.result_hashes``, ``samples.temp_blocks``); ``side_by_side``: a check's paired
  base/head samples and its calibration workload.
- 7 (2026-12-02): sharded runs (``taskbench run --shard i/N``, ``merge``): a shard's file is marked
  with its ``shard`` (index, count, the plan, the catalogue's fingerprint, what balanced the split,
  and the calibration workload sampled before and after it measured); a merged file records its
  ``shards`` (each one's run, target, machine, conditions and calibration).
- 8 (2026-12-02): an explicit run ``kind`` (matrix, scale or load), each with a ``config`` of its
  own: a matrix's and a scale run's seed, cold samples and stability rounds; a load run's clients,
  processes, duration, rate, warm-up, seed, parameter sets and pgbench rounds (no more the matrix's
  settings it never used). Older files get the kind from their sections and a load run's config
  from its ``load`` section (what that does not hold is null: not recorded).
- 9 (2026-12-06): planner settings as PostgreSQL shows them, in their real unit
  (``effective_cache_size``: ``4GB``, where 8 kB pages were glued to their unit as ``5242888kB``);
  a check's ``side_by_side`` holds both sides measured now: the base side's own cells
  (``base_cells``), what only the base has (``gone``) and the pairs taken again to confirm a time
  regression (``confirmation``); its ``incomparable`` is gone (each side is timed with its own
  parameters).
- 10 (2026-12-06): statement timeouts: each cell records the one its executions ran under
  (``statement_timeout_ms``); a class cut off by it stops with ``stopped_by: timeout`` (a fail), and
  a cell that timed out before any EXPLAIN ANALYZE finished has no ``execution`` summary (null) and
  its estimated plan, and its scale point no ``execution_p50_ms`` or ``buffers``; a check's pairs of
  such a cell stop there (``side_by_side.cells[].timed_out``), and time does not judge it.
- 11 (2026-12-06): a cell whose plans and used index definitions are those of a cell measured under
  an earlier variant shares its measurement (``cells[].shared_with``: that variant; the samples,
  verdict and cold samples are its, ``seconds`` 0). A write's ``samples.wal_bytes`` are its explained
  samples' own (EXPLAIN's WAL option), one per explained sample, with the full-page images among them
  (``samples.wal_fpi``); an older file's per-sample figures (the server's insert position, which
  counted other sessions' writes too) keep their first K. A cell of several classes has its ``client``
  figures weighted by each class's share of the users, without intervals (they were the classes'
  turns, half and half); a class whose early fail was measured again says at which n
  (``refailed_at``); verdicts may be ``borderline``.
- 12 (2026-12-06): plans people can read: each cell's ``plans``, one per user class (EXPLAIN
  ANALYZE with per-node timing on the class's first parameter set, after its samples) and the
  generic plan where its shape differs from theirs, each a tree of nodes with their times, rows,
  loops, buffers, conditions and rows removed. An older file has none (the report says so).
- 13 (2026-12-06): ORM scenarios (Python files built with the app's models, ``bench.catalogue.orm``):
  such a cell records what it sends (``cells[].orm``: the driver whose dialect compiled it, its
  hand-written twin, each statement's SQL as the driver sends it and what each ``$n`` takes), and
  its ``sql`` and ``scenario_sql`` are its first statement's. An older file has no ORM cells.
- 14 (2026-12-06): the plan that was timed. The run's plan-cache behaviour (``protocol.plan_cache``:
  ``driver``, as asyncpg reuses its prepared statements and PostgreSQL switches one to its generic
  plan; ``custom``; ``generic``); per user class, how many timed executions ran a custom and how
  many the generic plan (``cells[].classes[].custom_plans``, ``generic_plans``); a read cell's
  generic plan beside its custom ones (``cells[].generic``: its shape against the explained samples'
  custom plans, and their parameters timed through a custom and through the generic plan). An older
  file was measured as the driver does it; its counts and generic plans are null.
- 15 (2026-12-06): the server's major and minor as a number (``environment.server_version_num``,
  170010 for 17.10) and what it has of what the harness uses (``environment.features``: skip scan,
  pg_buffercache_evict_all, pg_restore_attribute_stats, the extensions...); a plan node's index
  searches (``nodes[].index_searches``, PostgreSQL 18's EXPLAIN; null before); a check whose base
  side ran on another server, an upgrade check, records that server's environment
  (``side_by_side.base_environment``). An older file has none of them (null, []).
- 16 (2026-12-06): row-level security: a variant records its policy statements (``policies``) and the
  claim its samples set per sample (``claim``); a cell measured under one says so (``claim``), a
  scenario relying on the policies names its explicit twin (``explicit``) and carries its isolation
  check (``isolation``: rows against the explicit filter's, user A's ids under user B's claim); a
  failed check fails the cell whatever its latency. Plan facts count InitPlans, SubPlans and the
  filters that evaluate the claim row by row (``init_plans``, ``sub_plans``, ``claim_filters``).
- 17 (2026-12-06): which scenarios the variants with policies measured (``config.policy_scope``):
  those relying on the policies only (``relying``, the default since) or every scenario (``all``,
  what every older run did).
- 18 (2026-12-06): a generic plan's timed pairs name their user class (``generic.classes``): a class's
  pairs stop once they cannot call the generic plan slower, so they are no longer the first explained
  samples in order (older files: those, as they were).
- 19 (2026-12-07): an isolation check says whether a statement of it timed out (``isolation.timed_out``)
  and, where a variant with the same policies ran it, which one (``isolation.checked_under``): a check
  that finished is run once per scenario and set of policies. Older files: every check its own, a cut-off
  one told by its example only (false).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, model_validator

from bench import output
from bench.errors import InputError
from bench.output import RESULTS_FILE
from bench.versioned import Format

SCHEMA_VERSION = 19
ScenarioKind = Literal["read", "write"]
# borderline: the test stopped at the line (its p95 interval straddles the SLA); inconclusive: the
# time budget stopped it before it could say
Verdict = Literal["pass", "fail", "borderline", "inconclusive"]


# The statistics and plan facts a cell holds are declared here, with the rest of the contract, and
# computed by their stages (judge.stats.summarize, measure.plan.plan_facts): the data model imports
# no stage, so a stage never drags in another through it.
class Quantile(BaseModel):
    value: float
    low: float | None  # None: too few samples for a bound at this confidence
    high: float | None

    @property
    def interval(self) -> str:
        """The interval as "[low, high]" (ms), or "" where the samples give no two-sided interval."""
        return "" if self.low is None or self.high is None else f"[{self.low:.2f}, {self.high:.2f}]"

    def ratio_text(self, reference: float) -> str:
        """The quantile as times ``reference``: its interval "0.86–1.07" where there is one, else its value."""
        if self.low is None or self.high is None:
            return f"{self.value / reference:.2f}"
        return f"{self.low / reference:.2f}–{self.high / reference:.2f}"


class Summary(BaseModel):
    n: int
    mean: float
    p50: Quantile
    p95: Quantile
    p99: Quantile


class NodeFacts(BaseModel):
    node_type: str
    relation: str | None = None
    index: str | None = None
    actual_rows: float = 0.0
    plan_rows: float = 0.0
    loops: int = 1
    misestimate: float = 1.0  # max(actual/estimated, estimated/actual), per loop
    shared_hit: int = 0
    shared_read: int = 0
    heap_fetches: int = 0
    rows_removed: float = 0.0  # by a filter or recheck, per loop: rows read only to be thrown away
    temp_blocks: int = 0  # temp blocks read + written: a sort or hash that spilled to disk
    # descents into the index over all loops (PostgreSQL 18's EXPLAIN; None before): more than one a
    # loop is a skip scan or an = ANY list
    index_searches: int | None = None


class PlanFacts(BaseModel):
    """What a plan did (EXPLAIN ANALYZE), and its fingerprint: its shape only, never numbers."""

    fingerprint: str
    node_types: list[str]
    indexes: list[str]
    seq_scans: list[str]  # relations read by a Seq Scan
    sorts: int = 0
    sort_spills: int = 0  # sorts that went to disk
    hash_spills: int = 0  # hashes that needed more than one batch
    heap_fetches: int = 0
    lossy_heap_blocks: int = 0
    max_misestimate: float = 1.0
    misestimate_flag: int = 0  # 0, 10, 100 or 1000 (the largest threshold reached)
    shared_hit: int = 0  # whole plan (the root node's counters include its children)
    shared_read: int = 0
    temp_blocks: int = 0  # whole plan
    rows_removed: float = 0.0  # summed over the nodes
    init_plans: int = 0  # sub-selects evaluated once per query (a claim wrapped in (SELECT ...))
    sub_plans: int = 0  # sub-selects evaluated per row of their parent (a correlated EXISTS, say)
    claim_filters: int = 0  # nodes whose filter calls current_setting for every row it reads
    nodes: list[NodeFacts]


class PlanNode(BaseModel):
    """One node of a plan as EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) printed it, with its children:
    what a person reads to see where the time went. Per-loop figures stay per loop, as PostgreSQL
    gives them; the text fields are the server's, so they are untrusted (a filter's constant can be
    any string) and only ever shown escaped."""

    node_type: str
    relation: str | None = None
    alias: str | None = None  # when it is not the relation's own name (a self-join, a subquery)
    index: str | None = None
    join_type: str | None = None
    strategy: str | None = None  # an Aggregate's (Plain, Sorted, Hashed, Mixed)
    scan_direction: str | None = None  # "Backward": an index read from its end
    parent_relationship: str | None = None  # Outer, Inner, InitPlan, SubPlan, Member...
    subplan_name: str | None = None  # "InitPlan 1", "CTE recent"
    cost: float = 0.0  # the planner's total cost
    plan_rows: float = 0.0  # estimated rows per loop
    actual_rows: float | None = None  # per loop; None: not executed (an estimated plan, or a branch never run)
    loops: int = 0
    startup_ms: float | None = None  # per loop, as EXPLAIN ANALYZE's timing measured it
    total_ms: float | None = None  # per loop, the node and its children
    workers: int = 0  # parallel workers launched (Gather, Gather Merge)
    shared_hit: int = 0  # blocks, every loop together, the node and its children
    shared_read: int = 0
    shared_dirtied: int = 0
    shared_written: int = 0
    temp_read: int = 0
    temp_written: int = 0
    # "Index Cond", "Filter", "Sort Key", "Sort Method"...: PostgreSQL's text, in its order
    details: dict[str, str] = {}
    # "Filter", "Index Recheck", "Join Filter": rows read only to be thrown away, per loop
    rows_removed: dict[str, float] = {}
    children: list[PlanNode] = []


class TimedPlan(BaseModel):
    """A cell's plan with every node timed: EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) with per-node
    timing, run once per user class after the cell's samples, on the class's first parameter set
    (the same in every run). The samples' own EXPLAINs time nothing per node: the clock calls would
    slow the execution times they record."""

    user_class: str  # whose parameters ran it
    # the plan a prepared statement switches to once PostgreSQL finds a generic plan no costlier than
    # the custom ones (plan_cache_mode = auto, from the sixth execution): planned for any values
    generic: bool = False
    execution_ms: float | None = None  # None: estimated only
    planning_ms: float | None = None
    # why it is estimated only: the statement timeout cut its EXPLAIN ANALYZE off (milliseconds)
    timed_out_ms: int | None = None
    root: PlanNode


class IndexCost(BaseModel):
    name: str
    table: str
    size_bytes: int
    build_seconds: float


class VariantResult(BaseModel):
    name: str
    description: str
    statements: list[str]
    indexes: list[IndexCost]
    index_size_bytes: int
    build_seconds: float
    policies: list[str] = []  # row-level security statements, as executed
    claim: str | None = None  # the setting each sample sets to its user's id; None: no policies


class IsolationCheck(BaseModel):
    """Does a policy isolate? A scenario relying on it, run as the sampler role with a user's claim,
    against its explicit twin (its own user filter) run by the tables' owner, for the same parameters."""

    parameter_sets: int  # own-user parameter sets compared by their rows' hashes
    differing: int  # ... whose rows were not the explicit filter's
    cross_user: int  # user A's parameter sets run with user B's claim
    leaks: int  # ... that returned or changed rows the explicit filter for user B does not
    refused: int = 0  # ... that the policy refused outright (a write's WITH CHECK)
    example: str | None = None  # the first failure, in words
    timed_out: bool = False  # a statement of the check was cut off by its timeout (the check fails)
    # the variant this check ran under, when it ran under another with the same policies (rows do not
    # depend on indexes: a check that finished holds for every variant with its policies); None: its own
    checked_under: str | None = None

    @property
    def failed(self) -> bool:
        return self.differing > 0 or self.leaks > 0

    def describe(self) -> str:
        refused = f", {self.refused} refused by the policy" if self.refused else ""
        under = f" (checked under {self.checked_under}: the same policies)" if self.checked_under else ""
        return (
            f"{self.differing}/{self.parameter_sets} parameter sets with other rows than the explicit filter, "
            f"{self.leaks}/{self.cross_user} leaks under another user's claim{refused}{under}"
        )


class Samples(BaseModel):
    """A cell's samples in the order they were taken. Every sample has a client time, a user class
    and a start time; only the first K (``explained``) also ran EXPLAIN ANALYZE, so the server-side
    lists hold K entries, paired index by index with the first K client times."""

    client_ms: list[float]  # round trip of the plain query, as the app sees it; the verdict's data
    user_class: list[str]  # the class each sample's user was drawn from
    at_s: list[float]  # when each sample started, seconds after the run's measuring began
    execution_ms: list[float]  # EXPLAIN ANALYZE execution time (server side), first K samples
    planning_ms: list[float]  # first K samples
    buffers: list[int]  # shared hit + read, whole plan, first K samples
    plan_fingerprints: list[str]  # first K samples
    wal_bytes: list[int] = []  # write scenarios: WAL each explained sample's statement generated (rolled back)
    wal_fpi: list[int] = []  # ... and how many full-page images that WAL held (a checkpoint had just passed)
    result_hashes: list[str] = []  # reads: the rows each explained sample returned (``rows.result_hash``)
    temp_blocks: list[int] = []  # temp blocks each explained sample read and wrote: a spill, whoever's query it was

    @model_validator(mode="after")
    def _lengths(self) -> Samples:
        n, k = len(self.client_ms), len(self.execution_ms)
        if len(self.user_class) != n or len(self.at_s) not in (0, n):
            raise ValueError(f"user_class and at_s must have one entry per sample ({n})")
        if any(
            len(kept) not in (0, k) for kept in (self.result_hashes, self.temp_blocks, self.wal_bytes, self.wal_fpi)
        ):
            raise ValueError(
                f"result_hashes, temp_blocks, wal_bytes and wal_fpi must have one entry per explained sample ({k})"
            )
        if not (len(self.planning_ms) == len(self.buffers) == len(self.plan_fingerprints) == k <= n):
            raise ValueError(
                f"execution_ms, planning_ms, buffers and plan_fingerprints must have the same "
                f"length, at most the {n} samples"
            )
        return self

    @property
    def explained(self) -> int:
        """K: how many (first) samples ran EXPLAIN ANALYZE too."""
        return len(self.execution_ms)


class ColdSamples(BaseModel):
    """Executions right after PostgreSQL's shared buffers were emptied (see ColdCache)."""

    client_ms: list[float]
    execution_ms: list[float]
    shared_read: list[int]  # blocks that had to come from outside shared buffers


class Stability(BaseModel):
    """Plans of a few fixed parameter sets, before and after each of ``rounds`` re-ANALYZEs."""

    rounds: int
    plans: list[str]  # distinct fingerprints seen
    flipped: int  # parameter sets whose plan changed across rounds


StopReason = Literal["boundary", "borderline", "cap", "budget", "cell", "timeout"]
_STOPPED = {
    "timeout": "; timed out",
    "borderline": "; at the line",
    "cap": "; the last look",
    "budget": "; time budget spent",
    "cell": "; the cell was decided first",
}


class ClassVerdict(BaseModel):
    """The sequential test's verdict for one user class of a cell."""

    user_class: str  # ordinary, power, or all (a dataset without power users)
    users: int  # users of this class the scenario could draw
    samples: int  # samples taken (more than n when a minimum was asked for the estimates)
    n: int  # samples when the class stopped or was decided
    exceedances: int  # of those n, how many were over the SLA
    decision: Verdict
    stopped_by: StopReason  # boundary: a pass or fail; else why it ended without one
    # an early fail at this n was measured again from nothing after a pause: n and exceedances are the
    # second test's, and its verdict is the class's
    refailed_at: int | None = None
    p95: Quantile  # client p95 of the class's samples, with its interval where one exists
    # of its timed executions, how many ran a custom plan and how many the generic one
    # (pg_prepared_statements); None: not counted (an older run, or behind a pooler)
    custom_plans: int | None = None
    generic_plans: int | None = None

    def describe(self, sla_ms: float, timeout_ms: int | None = None) -> str:
        """E.g. "fail at n = 4 (4/4 over 50 ms)", "fail at n = 1 (1/1 over 50 ms; timed out at 1000 ms)"."""
        decision = "undecided" if self.stopped_by == "cell" else self.decision
        stopped = _STOPPED.get(self.stopped_by, "")
        if self.stopped_by == "timeout" and timeout_ms is not None:
            stopped += f" at {timeout_ms} ms"
        if self.refailed_at is not None:
            stopped += f"; measured again after a fail at n = {self.refailed_at}"
        if self.decision == "borderline":  # how near the line: the p95's interval against the SLA
            stopped += f"; p95 {self.p95.ratio_text(sla_ms)} × SLA"
        return f"{decision} at n = {self.n} ({self.exceedances}/{self.n} over {sla_ms:g} ms{stopped})"


Driver = Literal["asyncpg", "psycopg"]
PolicyScope = Literal["relying", "all"]  # the scenarios a policy variant measured (``Catalogue.under``)
PlanCache = Literal["driver", "custom", "generic"]


class GenericCheck(BaseModel):
    """A cell's generic plan (the one its prepared statement may switch to) against its custom plans
    (``bench.measure.plancache``): its shape beside each explained sample's, and for a read each
    explained sample's parameters timed through a custom and through the generic plan (client ms, the
    pairs taken one right after the other), as long as both finished and the class's pairs could
    still call it slower; a write's are not timed."""

    fingerprint: str  # the (first) statement's generic plan
    node_types: list[str]
    fingerprints: list[str]  # per explained sample, its statement's generic plan (beside samples.plan_fingerprints)
    differs: bool  # its shape is not the custom plan's for some explained sample
    custom_ms: list[float]
    generic_ms: list[float]
    classes: list[str]  # per pair, its user class (a class's pairs stop once they cannot call it slower)
    slower: list[str] = []  # the user classes it is slower for (plancache.slower_classes)
    timed_out: bool = False  # an execution through it reached the statement timeout: the pairs stop there


class OrmBind(BaseModel):
    """What one ``$n`` of a statement the ORM compiled takes (``bench.catalogue.orm``): a declared
    parameter (``param``; ``element``: one element of a list parameter an ``in_()`` expanded), a JSON
    document around parameters (``template``, sent as JSON text), or a constant SQLAlchemy bound."""

    model_config = ConfigDict(frozen=True)

    param: str | None = None
    element: int | None = None
    template: Any = None  # a JSON document whose {"taskbench.param": name, "element": i} are parameters
    as_json: bool = False  # sent as JSON text: SQLAlchemy's serializer of a JSON bind
    value: str | int | float | bool | None = None


class OrmStatement(BaseModel):
    """One statement an ORM scenario sends, as the driver sends it: its text ($1, $2...) and binds."""

    model_config = ConfigDict(frozen=True)

    lengths: dict[str, int] = {}  # the list parameters' lengths it is for ({}: any; in_() sends a bind per element)
    sql: str
    binds: list[OrmBind]


class OrmBuilt(BaseModel):
    """An ORM scenario compiled: by which driver's dialect, beside which hand-written scenario, and the
    statement (one per list length) it sends."""

    model_config = ConfigDict(frozen=True)

    driver: Driver
    twin: str | None = None  # the hand-written scenario it stands beside
    # the twin it draws its parameters as (the same sets, so rows and plans pair), when it declares the
    # twin's drawn parameters in the twin's order
    draws_as: str | None = None
    statements: list[OrmStatement]


class Cell(BaseModel):
    scenario: str
    variant: str
    sla_class: str
    sla_ms: float
    sql: str  # as executed: binds as $1, $2...
    kind: ScenarioKind = "read"
    scenario_sql: str = ""  # as the scenario file wrote it (:name binds): what a later check runs as "before"
    orm: OrmBuilt | None = None  # an ORM scenario: the statements it sends (what a later check runs as "before")
    params: dict[str, str | int | float | bool] = {}  # the file's [params]: how each bind is drawn
    warmup: int  # warm-up executions run before the samples
    samples: Samples
    # every sample: one class's with intervals; several classes' weighted by their share of the users,
    # without intervals (each class's own p95 has one)
    client: Summary
    execution: Summary | None  # the explained samples; None when it timed out before one finished
    verdict: Verdict  # every class passed / some class failed / neither
    classes: list[ClassVerdict]
    decided_by: str  # the class whose verdict made the cell's (the last to pass, the first to fail)
    seconds: float | None = None  # time spent measuring the cell: warm-up, samples, EXPLAINs
    plan: PlanFacts  # the plan most explained samples ran
    plan_count: int  # distinct plans seen across samples (parameters can change the plan)
    # each class's plan, timed node by node, and the generic plan where its shape is not that class's
    # (none in a file older than version 12)
    plans: list[TimedPlan] = []
    generic: GenericCheck | None = None  # a read cell's generic plan against its custom ones (None: not checked)
    statement_timeout_ms: int | None = None  # every execution's limit (None: a run before timeouts)
    # the variant whose measurement this cell shares: the same plans and index definitions (``sharing``)
    shared_with: str | None = None
    cold: ColdSamples | None = None
    stability: Stability | None = None
    claim: str | None = None  # run as the sampler role with this setting set to each sample's user
    explicit: str | None = None  # the scenario relies on row-level security; its explicit twin
    isolation: IsolationCheck | None = None  # a scenario relying on row-level security: the check

    @property
    def deciding(self) -> ClassVerdict:
        return next(c for c in self.classes if c.user_class == self.decided_by)

    @property
    def decided_p95(self) -> float:
        """The p95 the verdict speaks of: the deciding class's. All samples together are a mix of the
        classes the protocol chose (one each in turn), not the mix of the app's users."""
        return self.deciding.p95.value

    @property
    def verdict_text(self) -> str:
        """The verdict as it was reached: the deciding class's, e.g. "fail at n = 4 (4/4 over 50 ms) —
        power users". A pass needs every class to pass, so it names each, the deciding class first:
        "pass at n = 77 (0/77 over 50 ms) — power users; pass at n = 40 (0/40 over 50 ms) — ordinary users"."""
        shared = f" (same plans as {self.shared_with}: its samples)" if self.shared_with else ""
        if self.isolation is not None and self.isolation.failed:
            shared += f"; isolation failure: {self.isolation.describe()}"
        if len(self.classes) == 1:
            return self.deciding.describe(self.sla_ms, self.statement_timeout_ms) + shared
        others = [c for c in self.classes if c is not self.deciding] if self.verdict == "pass" else []
        return (
            "; ".join(
                f"{c.describe(self.sla_ms, self.statement_timeout_ms)} — {c.user_class} users"
                for c in (self.deciding, *others)
            )
            + shared
        )

    @property
    def timed_out(self) -> bool:
        return any(c.stopped_by == "timeout" for c in self.classes)


class ServerFeature(BaseModel):
    """Something the harness uses or the planner does that not every server has, and whether this one has it."""

    name: str
    available: bool
    use: str  # what it is for, and what is done without it


class Environment(BaseModel):
    target_kind: str
    target: str  # redacted URL
    server_version: str
    server_major: int
    settings: dict[str, str]
    harness_version: str
    git_commit: str
    machine: dict[str, Any]
    server_version_num: int | None = None  # major and minor, e.g. 170010 (None: an older file)
    features: list[ServerFeature] = []  # ([]: an older file)

    @property
    def server(self) -> str:
        """The server as a report names it: "PostgreSQL 17.10"."""
        return f"PostgreSQL {self.server_version.split()[0]}"


class Dataset(BaseModel):
    fingerprint: str
    profile: dict[str, Any]
    row_counts: dict[str, int]

    @property
    def anchor_date(self) -> date:
        """The profile's "today": dates in the data and in the scenarios' parameters count from it."""
        return date.fromisoformat(self.profile["anchor_date"])


RunKind = Literal["matrix", "scale", "load"]
RUN_KINDS: tuple[RunKind, ...] = ("matrix", "scale", "load")


class _CellSettings(BaseModel):
    """How a run that measures cells measured them, beyond the sampling protocol."""

    seed: int
    cold_samples: int
    stability_rounds: int
    # under a variant with policies: the scenarios relying on them only, or every scenario
    policy_scope: PolicyScope = "all"


class MatrixConfig(_CellSettings):
    """A matrix run (``taskbench run``, ``bench``, ``check``): every scenario under every variant."""

    kind: Literal["matrix"] = Field("matrix", exclude=True)  # written once, as the run's ``kind``


class ScaleConfig(_CellSettings):
    """A scale run: a matrix run at each size with these settings (the sizes and users are ``scale``'s)."""

    kind: Literal["scale"] = Field("scale", exclude=True)


class LoadConfig(BaseModel):
    """A load run (``taskbench load``): what it was asked to do. None: not recorded (an older file)."""

    kind: Literal["load"] = Field("load", exclude=True)
    clients: int
    jobs: int | None  # client processes the clients were spread over
    duration_s: float | None  # of measured load (``load.duration_s`` is what it took, first send to last reply)
    rate: float | None  # arrivals per second over all clients; None: closed loop, as fast as possible
    warmup_s: float | None  # of load before measuring, not recorded
    seed: int
    param_sets: int | None  # pre-drawn per scenario, shared with pgbench
    pgbench_rounds: int  # alternating harness/pgbench rounds (0: no comparison)


RunConfig = Annotated[MatrixConfig | ScaleConfig | LoadConfig, Field(discriminator="kind")]


class Protocol(BaseModel):
    """How a cell's samples were drawn, taken and judged. Milliseconds are only comparable between
    runs of one protocol (name and version): the protocol decides whose queries a cell's samples are
    (classes stratified or not), how many there are and what ran between them."""

    name: str
    version: int
    classes: list[str]  # user classes sampled apart and judged one by one ([]: none)
    explain_samples: int | None  # K: samples that ran EXPLAIN ANALYZE too (None: every one)
    warmup: str  # the warm-up rule
    cell_budget_s: float | None  # seconds a cell may take before it stops inconclusive (None: no budget)
    min_samples: int = 0  # per class, taken for the estimates even after the verdict
    # how the samples' prepared statements were planned: as the driver does it (PostgreSQL may switch
    # to the generic plan from the sixth execution), always custom, or always generic
    plan_cache: PlanCache = "driver"
    parameters: dict[str, Any]  # the test itself: its design per number of classes, or an older protocol's settings


BUSY_LOAD_PER_CPU = 0.5


class Conditions(BaseModel):
    """How alone the measurement was: the server's measurement lock and the machine's load."""

    concurrent: bool  # --concurrent: measured whether or not another measurement held the server
    lock: str  # how the lock went: held, or held by another measurement (only with --concurrent)
    cpus: int
    load_before: list[float]  # os.getloadavg() (1, 5, 15 minutes) just before measuring
    load_after: list[float]  # ... and just after

    @property
    def busy(self) -> bool:
        """More than half of the CPUs' worth of other work before or after measuring. After, the
        1-minute load includes this run's own process (the client or its server backend: one of the
        two runs at a time), so one is taken off it; before, it may still hold a run that ended less
        than a minute ago, which is why the line is at half the CPUs and not lower."""
        return max(self.load_before[0], self.load_after[0] - 1) / max(self.cpus, 1) > BUSY_LOAD_PER_CPU


class ColdCache(BaseModel):
    available: bool
    method: str  # how the cache was emptied, or why it could not be


class ConnectionProbe(BaseModel):
    """The first contact with the target, kept apart from the warm samples: on Neon the first
    query may wake a suspended compute."""

    host_kind: str  # direct, pooler or socket
    connect_ms: float
    first_query_ms: float
    warm_query_ms: float  # median of the next few trivial queries, for scale


class ScalePoint(BaseModel):
    scenario: str
    variant: str
    tasks_per_user: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    execution_p50_ms: float | None  # None: every execution timed out (``Cell.execution``)
    buffers: float | None  # median shared buffers (hit + read) per execution; None as above
    verdict: Verdict
    samples: int


# A scale run extrapolates a cell's SLA crossing up to this many times its largest size; a crossing
# further out is "beyond" (runs.scale.sla_crossing): what ScaleFit.crossing means, so it is kept here.
CROSSING_FAR = 10


class ScaleFit(BaseModel):
    scenario: str
    variant: str
    sla_ms: float
    exponent: float  # p50 ∝ size^exponent, least squares over every size (p50: the steadier quantile)
    r2: float
    buffers_exponent: float
    crossing_tasks_per_user: float | None  # where p95 reaches the SLA (see scale.sla_crossing)
    crossing: str  # already, measured, extrapolated, flat or beyond

    def describe_crossing(self) -> str:
        """Where the cell crosses its SLA, as the report and the terminal say it: "≈ 25,000 (extrapolated)"."""
        n = f"{self.crossing_tasks_per_user or 0:,.0f}"
        return {
            "already": f"≤ {n} (over at the smallest size)",
            "measured": f"≈ {n} (between measured sizes)",
            "extrapolated": f"≈ {n} (extrapolated)",
            "flat": "– (not growing)",
            "beyond": f"beyond {CROSSING_FAR}× the largest size measured",
        }[self.crossing]


class ScaleResults(BaseModel):
    users: int
    sizes: list[int]
    points: list[ScalePoint]
    fits: list[ScaleFit]


class LoadScenario(BaseModel):
    scenario: str
    sla_ms: float
    weight: float
    requests: int
    errors: int
    latency: Summary | None  # from the scheduled start under a fixed rate (as pgbench -R), else the send
    over_sla: float  # share of requests slower than the SLA (as pgbench -L counts late ones)


class PgbenchLoad(BaseModel):
    """pgbench on the same mix, clients, duration and parameter sets, in the same run (medians of
    alternating rounds)."""

    rounds: int
    tps: float
    transactions: int
    latency_avg_ms: float
    lookup_share: float  # of pgbench's statement time, spent fetching the parameter set (see pgbench.py)
    cpu_ms_per_tx: float  # pgbench's own CPU time per transaction (user + system)
    harness_tps: float  # the harness doing the same per transaction: the lookup, then the scenario
    harness_cpu_ms_per_tx: float  # the harness's client processes' CPU time per transaction
    ratio: float  # harness_tps ÷ tps


class LoadResults(BaseModel):
    variant: str
    clients: int
    duration_s: float  # from the first send to the last completion
    rate: float | None  # requested arrivals per second (None: closed loop, as fast as possible)
    requests: int
    errors: int
    unsent: int = 0  # fixed rate: arrivals still due at the end that a behind-schedule client never sent
    throughput: float  # completed requests per second
    lag_ms: Summary | None  # scheduled start → send, under a fixed rate
    scenarios: list[LoadScenario]
    pgbench: PgbenchLoad | None = None


class PairedSamples(BaseModel):
    """One cell measured side by side: the base's SQL and variant against the head's, pair by pair
    with the same parameters (see ``bench.measure.paired``)."""

    scenario: str
    variant: str
    base_ms: list[float]
    head_ms: list[float]
    differing_rows: int | None  # pairs whose two sides returned other rows (None: a write, not compared)
    timed_out: bool = False  # a side reached the statement timeout: the pairs stop there, time is not judged


class SideBySide(BaseModel):
    """A check's two sides, measured on one server in one job: the base side's own cells (where its
    request, indexes or schema differ from the head's; the others are the head's cells, measured
    once for both), and the pairs the time gate judges."""

    pairs: int  # per cell
    calibration_base_ms: dict[str, list[float]]  # per calibration item, the base side's samples
    calibration_head_ms: dict[str, list[float]]
    cells: list[PairedSamples]
    new: list[str]  # scenarios and variants only the head has: nothing to measure them beside
    gone: list[str] = []  # scenarios and variants only the base has
    base_cells: list[Cell] = []  # the base side's measured cells
    # None: the base side ran on the models' schema; else it was rebuilt from the reference run's
    # recorded DDL (the models changed since), and these are what the rows could not supply
    rebuilt_schema: list[str] | None = None
    # pairs taken again on fresh connections for cells the first pairs found slower: a time
    # regression must show in both (``bench.judge.check``)
    confirmation: list[PairedSamples] = []
    # the base side's server when it is not the head's (an upgrade check: another major); None: the same
    base_environment: Environment | None = None

    def base_cell(self, scenario: str, variant: str, head: Cell) -> Cell:
        """The base side's cell: its own when it measured one, else the head's (the same cell)."""
        return next((c for c in self.base_cells if (c.scenario, c.variant) == (scenario, variant)), head)


class Calibration(BaseModel):
    """The calibration workload (``bench.measure.calibration``) sampled on a shard's target just before
    and just after it measured: how fast that machine was and how steady (its noise). Shards are
    never compared with each other by time; this says what each one measured under."""

    before_ms: dict[str, list[float]]  # per calibration item, its samples
    after_ms: dict[str, list[float]]


class Shard(BaseModel):
    """What a shard's results file is marked with: which share of which matrix it measured."""

    index: int  # i of --shard i/N, from 1
    count: int  # N
    plan: dict[str, int]  # variant → the shard that measures it, in catalogue order (the same in every shard)
    catalogue: str  # fingerprint of the catalogue that was split (scenarios' SQL, params, kind, SLA; statements)
    weights: str  # what balanced the split: a previous run's durations, or equal weights and why
    calibration: Calibration

    @property
    def variants(self) -> list[str]:
        """The variants this shard measures, in catalogue order."""
        return [v for v, i in self.plan.items() if i == self.index]


class ShardRun(BaseModel):
    """One shard of a merged run, as it measured."""

    shard: Shard
    run_id: str
    created_at: datetime
    target: str  # redacted
    machine: dict[str, Any]
    conditions: Conditions | None
    connection: ConnectionProbe | None
    phase_seconds: dict[str, float]


class BaselineInfo(BaseModel):
    """Set when a run is saved as the committed baseline: why, and from which run."""

    reason: str
    saved_at: datetime
    from_run: str


class Results(BaseModel):
    schema_version: int = SCHEMA_VERSION
    run_id: str
    created_at: datetime
    environment: Environment
    dataset: Dataset
    config: RunConfig  # the run's own kind of settings; its kind is written once, at the top (``kind``)
    protocol: Protocol | None = None  # None: a run without cells (load)
    conditions: Conditions | None = None  # None: older files
    cold_cache: ColdCache
    variants: list[VariantResult]
    cells: list[Cell]
    phase_seconds: dict[str, float]  # where the run's time went
    connection: ConnectionProbe | None = None
    scale: ScaleResults | None = None
    load: LoadResults | None = None
    baseline: BaselineInfo | None = None
    schema_ddl: str = ""  # the DDL the models produced for this run ("" in older files)
    side_by_side: SideBySide | None = None  # a check's paired base/head timings
    shard: Shard | None = None  # a shard's file: the share of the matrix it measured
    shards: list[ShardRun] = []  # a merged run: the shards it was made from, by index

    @model_validator(mode="before")
    @classmethod
    def _config_of_kind(cls, data: Any) -> Any:
        """The file says its kind once, at the top: the config is read as that kind's."""
        if isinstance(data, dict) and isinstance(data.get("config"), dict) and "kind" in data:
            data = {**data, "config": {**data["config"], "kind": data["kind"]}}
        return data

    @computed_field  # type: ignore[prop-decorator]  # pydantic's documented form; mypy does not know it
    @property
    def kind(self) -> RunKind:
        """matrix, scale or load: which command's run this is, and so which sections it has."""
        return self.config.kind

    def cell(self, scenario: str, variant: str) -> Cell | None:
        return next((c for c in self.cells if c.scenario == scenario and c.variant == variant), None)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def write(results: Results, run_dir: Path) -> Path:
    """Write ``run_dir/results.json`` atomically: a reader never sees half a file. When that fails
    the results go to the system's temporary directory, named in the error (output.rescue)."""
    path = run_dir / RESULTS_FILE
    text = results.model_dump_json(indent=1)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        return output.write_text(path, text)
    except OSError as exc:
        raise output.rescue(text, RESULTS_FILE, path, exc) from None


def save(results: Results, reports_dir: Path) -> Path:
    """Write ``reports/<run-id>/results.json`` atomically and point ``reports/latest`` at it. When
    that fails nothing is left in ``reports_dir`` and the results go to the system's temporary
    directory, named in the error (output.rescue)."""
    text = results.model_dump_json(indent=1)
    run_dir = reports_dir / results.run_id
    suffix = 1
    while run_dir.exists():
        suffix += 1
        run_dir = reports_dir / f"{results.run_id}-{suffix}"
    made = False
    try:
        run_dir.mkdir(parents=True)
        made = True
        path = output.write_text(run_dir / RESULTS_FILE, text)
        latest = reports_dir / "latest"
        tmp_link = reports_dir / ".latest.tmp"
        if tmp_link.is_symlink() or tmp_link.exists():
            tmp_link.unlink()
        tmp_link.symlink_to(run_dir.name)
        os.replace(tmp_link, latest)
    except BaseException as exc:  # a failure or Ctrl-C: no run directory without its results
        if made:
            shutil.rmtree(run_dir, ignore_errors=True)
        if isinstance(exc, OSError):
            raise output.rescue(text, RESULTS_FILE, run_dir / RESULTS_FILE, exc) from None
        raise
    return path


def resolve(path: Path) -> Path:
    """Accept a run directory or a results file."""
    return path / RESULTS_FILE if path.is_dir() else path


def load(path: Path) -> Results:
    """A run directory's or a file's results, of any version ``FORMAT`` reads, in the current format."""
    return FORMAT.load(resolve(path))


def _update_to_3(raw: dict[str, Any]) -> dict[str, Any]:
    """Version 2 lacks only optional sections (connection probe, scale, load): they stay empty."""
    return raw


def _update_to_4(raw: dict[str, Any]) -> dict[str, Any]:
    """Drop the throughput write tax; every cell of an older file is a read."""
    for variant in raw.get("variants", []):
        if isinstance(variant, dict):
            variant.pop("write", None)
    if isinstance(raw.get("config"), dict):
        raw["config"].pop("write_rows", None)
    return raw


ORDER_STATISTIC = "order-statistic"


def _update_to_5(raw: dict[str, Any]) -> dict[str, Any]:
    """Record the protocol an older file was measured under (a p95 interval from order statistics,
    every sample with EXPLAIN ANALYZE, users drawn uniformly) and its cells in the new shape: one
    class, "all", whose decision is the old verdict at the samples taken."""
    config = raw.get("config", {})
    old = {k: config.pop(k) for k in ("samples", "max_samples", "warmup", "confidence", "early_look") if k in config}
    if raw.get("cells"):
        raw["protocol"] = {
            "name": ORDER_STATISTIC,
            "version": 1,
            "classes": [],
            "explain_samples": None,
            "warmup": f"{old.get('warmup')} executions, plain and EXPLAIN, from the sampling stream",
            "cell_budget_s": None,
            "parameters": {**old, "early_confidence": 0.99},
        }
    for cell in raw.get("cells", []):
        samples, n = cell["samples"], len(cell["samples"]["client_ms"])
        samples["user_class"], samples["at_s"] = ["all"] * n, []
        over = sum(ms > cell["sla_ms"] for ms in samples["client_ms"])
        cell["classes"] = [
            {
                "user_class": "all",
                "users": raw["dataset"]["row_counts"].get("users", 0),
                "samples": n,
                "n": n,
                "exceedances": over,
                "decision": cell["verdict"],
                "stopped_by": "cap" if cell["verdict"] == "inconclusive" else "boundary",
                "p95": cell["client"]["p95"],
            }
        ]
        cell["decided_by"] = "all"
    return raw


def _update_to_6(raw: dict[str, Any]) -> dict[str, Any]:
    """Nothing to convert: the new fields are empty in an older file (a check then says that such a
    baseline cannot be measured again beside the head, and why)."""
    return raw


def _update_to_7(raw: dict[str, Any]) -> dict[str, Any]:
    """Nothing to convert: an older file is neither a shard nor a merge of shards."""
    return raw


def _update_to_8(raw: dict[str, Any]) -> dict[str, Any]:
    """The run's kind from the sections an older file has; a load run's config from its ``load``
    section (its clients and rate; pgbench's rounds where it ran, else none), what that does not
    say left null; a matrix or scale run keeps its config."""
    load = raw.get("load")
    if isinstance(load, dict) and not raw.get("cells"):
        pgbench = load.get("pgbench")
        raw["kind"] = "load"
        raw["config"] = {
            "clients": load.get("clients"),
            "jobs": None,
            "duration_s": None,
            "rate": load.get("rate"),
            "warmup_s": None,
            "seed": raw.get("config", {}).get("seed"),
            "param_sets": None,
            "pgbench_rounds": pgbench.get("rounds", 0) if isinstance(pgbench, dict) else 0,
        }
    else:
        raw["kind"] = "scale" if raw.get("scale") else "matrix"
    return raw


# The units of the recorded settings that have one, as pg_settings gives them (fixed per setting):
# what an older file glued to the number.
_OLD_UNITS = {"effective_cache_size": "8kB", "shared_buffers": "8kB", "work_mem": "kB"}


def _update_to_9(raw: dict[str, Any]) -> dict[str, Any]:
    """Settings in their real unit; a check's side-by-side part loses what no longer exists."""
    settings = raw.get("environment", {}).get("settings", {})
    for name, unit in _OLD_UNITS.items():
        value = settings.get(name)
        if isinstance(value, str) and value.endswith(unit) and value[: -len(unit)].isdigit():
            settings[name] = setting_text(value[: -len(unit)], unit)
    if isinstance(raw.get("side_by_side"), dict):
        raw["side_by_side"].pop("incomparable", None)
    return raw


def _update_to_10(raw: dict[str, Any]) -> dict[str, Any]:
    """Nothing to convert: an older run had no statement timeouts (null), so none of its cells timed out."""
    return raw


def _update_to_11(raw: dict[str, Any]) -> dict[str, Any]:
    """An older run measured every cell itself; its WAL figures were per sample: the first K stay,
    beside the explained samples they were taken with."""
    sides = raw.get("side_by_side")
    base_cells = sides.get("base_cells", []) if isinstance(sides, dict) else []
    for cell in [*raw.get("cells", []), *base_cells]:
        samples = cell.get("samples", {}) if isinstance(cell, dict) else {}
        if isinstance(samples.get("wal_bytes"), list) and isinstance(samples.get("execution_ms"), list):
            samples["wal_bytes"] = samples["wal_bytes"][: len(samples["execution_ms"])]
    return raw


def _update_to_12(raw: dict[str, Any]) -> dict[str, Any]:
    """Nothing to convert: an older run recorded no timed plans (an empty list)."""
    return raw


def _update_to_13(raw: dict[str, Any]) -> dict[str, Any]:
    """Nothing to convert: an older run measured hand-written SQL only."""
    return raw


def _update_to_14(raw: dict[str, Any]) -> dict[str, Any]:
    """Nothing to convert: an older run was sampled as the driver does it (the default), its plan
    kinds not counted."""
    return raw


def _update_to_15(raw: dict[str, Any]) -> dict[str, Any]:
    """Nothing to convert: an older file says nothing of its server's features or index searches,
    and its base side, if any, ran on the head's server."""
    return raw


def _update_to_16(raw: dict[str, Any]) -> dict[str, Any]:
    """Nothing to convert: an older run had no policies, so every cell ran with the user filter of its SQL."""
    return raw


def _update_to_17(raw: dict[str, Any]) -> dict[str, Any]:
    """An older run measured every scenario under each variant with policies."""
    if isinstance(raw.get("config"), dict) and raw.get("kind") in ("matrix", "scale"):
        raw["config"].setdefault("policy_scope", "all")
    return raw


def _update_to_18(raw: dict[str, Any]) -> dict[str, Any]:
    """An older run timed the pairs of the first explained samples, one each, in order."""
    side_by_side = raw.get("side_by_side")
    base_cells = side_by_side.get("base_cells", []) if isinstance(side_by_side, dict) else []
    for cell in [*raw.get("cells", []), *base_cells]:
        generic = cell.get("generic") if isinstance(cell, dict) else None
        if isinstance(generic, dict) and isinstance(cell.get("samples"), dict):
            generic.setdefault("classes", cell["samples"].get("user_class", [])[: len(generic.get("custom_ms", []))])
    return raw


def _update_to_19(raw: dict[str, Any]) -> dict[str, Any]:
    """Nothing to fill in: an older run checked isolation under every policy variant (``checked_under``
    null), and told a check cut off by its timeout in its example only (``timed_out`` false)."""
    return raw


_BYTES = {"B": 1, "kB": 1024, "8kB": 8192, "MB": 1024**2, "GB": 1024**3, "TB": 1024**4}
_MS = {"ms": 1, "s": 1000, "min": 60_000, "h": 3_600_000, "d": 86_400_000}


def setting_text(setting: str, unit: str | None) -> str:
    """A setting as PostgreSQL's SHOW prints it: in the largest unit that divides it exactly
    (``524288`` of ``8kB`` → ``4GB``); a setting without a unit, or not a whole number, as it is."""
    for scale in (_BYTES, _MS):
        if unit in scale and setting.isdigit():
            base = int(setting) * scale[unit]
            if base == 0:
                return "0"
            shown = sorted((size, name) for name, size in scale.items() if name != "8kB")
            size, name = next((size, name) for size, name in reversed(shown) if base % size == 0)
            return f"{base // size}{name}"
    return setting if setting.startswith("-") else setting + (unit or "")


# version -> the step that brings a file of that version to the next one
_MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {
    2: _update_to_3,
    3: _update_to_4,
    4: _update_to_5,
    5: _update_to_6,
    6: _update_to_7,
    7: _update_to_8,
    8: _update_to_9,
    9: _update_to_10,
    10: _update_to_11,
    11: _update_to_12,
    12: _update_to_13,
    13: _update_to_14,
    14: _update_to_15,
    15: _update_to_16,
    16: _update_to_17,
    17: _update_to_18,
    18: _update_to_19,
}
FORMAT = Format("results", Results, SCHEMA_VERSION, _MIGRATIONS)


def save_baseline(run_path: Path, reason: str, to: Path) -> Results:
    """Copy a run's results to ``to`` (the committed baseline) with the reason it was taken."""
    if not reason.strip():
        raise InputError("a baseline needs a reason (--reason): what changed, and why this is the new normal")
    res = load(run_path)
    res = res.model_copy(
        update={"baseline": BaselineInfo(reason=reason.strip(), saved_at=datetime.now(UTC), from_run=res.run_id)}
    )
    text = res.model_dump_json(indent=1)
    try:
        to.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(to, text)
    except OSError as exc:
        raise output.rescue(text, to.name, to, exc) from None
    return res
