"""The upgrade check: one dataset, catalogue and protocol on two PostgreSQL majors, measured side by
side on one machine — the check's machinery (``check``) with the base side on the old major's server
(``runs.sides``) — and what moving from one to the other changes, cell by cell.

Judged as a check is: time on the pairs (``timegate``: a sign test at ``alpha`` over the cells, the
factor and the floor; a finding must show again in pairs taken on fresh connections), and verdicts
where both majors decided, and the new major's isolation check (a policy variant that let one user see
or change another's rows fails it whatever the old major did). Only those decide: exit 1 when a cell
got slower, its verdict went pass → fail or its isolation check failed. Plans, buffers, misestimates,
spills and rows are what a new major is expected to
change: the deterministic gates word them, and they are reported as changes, not regressions — what
a new plan costs is what the time gate measures.

Per cell: the plan on each major and what the new one has that the old did not (a skip scan, an
Incremental Sort, a Memoize...), median buffers, the p95 of each side's pairs and their ratio with an
interval. Each side's p95 has a distribution-free interval at ``P95_CONFIDENCE`` (order statistics,
``stats.quantile_ci``); both hold at once with probability at least 1 − 2 × (1 − P95_CONFIDENCE),
whatever the dependence between the sides (Bonferroni), and then the ratio lies between low ÷ high and
high ÷ low: at least ``RATIO_CONFIDENCE``. A side needs ``RATIO_PAIRS`` pairs for an upper bound.

A plan that differs between the majors is not always the upgrade's: ANALYZE reads a random sample, and
a plan near a cost tipping point flips with it (``Cell.stability``: the plans of a few parameter sets
before and after each re-ANALYZE). Where the plan one major ran is among those the other showed across
its stability rounds and the plans flipped across them, the difference is the statistics', not the
major's: ``unstable_on`` says on which majors ("both": the plans flipped on each), and such a cell is
reported as unstable, not as a plan change the upgrade caused. Plans that differ only by parameter
set (two plans, none flipping) do not count: a major that changed one of them changed the cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from statistics import median
from typing import Literal

from bench.catalogue.files import Catalogue
from bench.judge.check import Before, CheckThresholds, Confirm, MeasureSides, check
from bench.judge.compare import Comparison
from bench.judge.gates import Finding, Kind
from bench.judge.stats import quantile_ci
from bench.results import Cell, Environment, PairedSamples, PlanFacts, Quantile, Results

P95_CONFIDENCE = 0.975
RATIO_CONFIDENCE = 1 - 2 * (1 - P95_CONFIDENCE)
RATIO_PAIRS = 86  # the fewest pairs whose largest sample bounds a p95 at 97.5%: 0.95 ** 86 < 0.0125
GATED = (Kind.SLA, Kind.TIME, Kind.ISOLATION)  # what decides an upgrade check; the other findings are changes
SKIP_SCAN = "more index searches than loops (skip scan)"
# The kinds of finding a plan's shape makes: for a cell whose plan flips on both majors, not the upgrade's.
PLAN_SHAPE = (Kind.SEQ_SCAN, Kind.SORT_ADDED, Kind.INDEX_DROPPED, Kind.PLAN_CHANGED)
Unstable = Literal["both", "old", "new"]  # which majors were seen to plan the cell the other's way too
UNSTABLE_ON_BOTH = "unstable on both majors"


@dataclass(frozen=True)
class UpgradeCell:
    """One cell on both majors."""

    scenario: str
    variant: str
    plan_from: str
    plan_to: str
    new_in_plan: list[str]  # what the new major's plan has that the old one's did not
    buffers_from: float | None  # median shared buffers of the explained samples
    buffers_to: float | None
    p95_from: Quantile | None  # of the side's pairs (None: none, a statement timeout ended them)
    p95_to: Quantile | None
    p95_ratio: Quantile | None  # new ÷ old, with its interval where both sides have one
    verdict_from: str
    verdict_to: str
    unstable_on: Unstable | None = None  # the plans differ, and that major (or both) also planned the other's

    @property
    def plan_changed(self) -> bool:
        return self.plan_from != self.plan_to

    @property
    def upgrade_plan_change(self) -> bool:
        """The plans differ and neither major was seen to plan the cell the other's way."""
        return self.plan_changed and self.unstable_on is None


def plan_text(plan: PlanFacts) -> str:
    """A plan in one line: its node types and the indexes it used."""
    return f"{' → '.join(plan.node_types)} [{', '.join(plan.indexes) or 'no index'}]"


def plan_traits(plan: PlanFacts) -> list[str]:
    """Its node types, indexes, and a skip scan: an index scan that descended into its index more often
    than it was started (PostgreSQL 18's EXPLAIN counts the searches; an = ANY list does too)."""
    skip = [SKIP_SCAN] if any((n.index_searches or 0) > n.loops for n in plan.nodes) else []
    return [*plan.node_types, *(f"index {i}" for i in plan.indexes), *skip]


def p95_ratio(base_ms: list[float], head_ms: list[float]) -> tuple[Quantile, Quantile, Quantile]:
    """Each side's p95 at ``P95_CONFIDENCE``, and head ÷ base with an interval at ``RATIO_CONFIDENCE``
    where both sides have one."""
    base, head = quantile_ci(base_ms, 0.95, P95_CONFIDENCE), quantile_ci(head_ms, 0.95, P95_CONFIDENCE)
    value = round(head.value / max(base.value, 1e-9), 4)
    if head.low is None or head.high is None or not base.low or not base.high:
        return base, head, Quantile(value=value, low=None, high=None)
    return base, head, Quantile(value=value, low=round(head.low / base.high, 4), high=round(head.high / base.low, 4))


def seen_plans(cell: Cell) -> frozenset[str] | None:
    """The plans a major showed for ``cell``: the one most of its explained samples ran and every one its
    stability rounds' parameter sets were planned with (None: no stability rounds, nothing to tell by)."""
    if cell.stability is None:
        return None
    return frozenset({cell.plan.fingerprint, *cell.stability.plans})


def unstable_on(base: Cell, head: Cell) -> Unstable | None:
    """Where a plan that differs between the majors flips with ANALYZE's sample rather than with the major:
    the plan one major ran is among those the other showed, and the plans flipped across re-ANALYZEs
    (``Stability.flipped``) on both majors ("both") or on the one that showed the other's ("old", "new").
    None when the plans are the same, when neither showed the other's, when the one that did never
    flipped (its plans differ by parameter set, not by sample: the difference is the upgrade's), or when a
    side has no stability rounds to tell by."""
    old, new = seen_plans(base), seen_plans(head)
    if base.plan.fingerprint == head.plan.fingerprint or old is None or new is None:
        return None
    assert base.stability is not None and head.stability is not None  # seen_plans says so
    on_old = head.plan.fingerprint in old and base.stability.flipped > 0
    on_new = base.plan.fingerprint in new and head.stability.flipped > 0
    if (on_old or on_new) and base.stability.flipped and head.stability.flipped:
        return "both"
    return "old" if on_old else "new" if on_new else None


def _buffers(cell: Cell) -> float | None:
    return median(cell.samples.buffers) if cell.samples.buffers else None


def upgrade_cell(base: Cell, head: Cell, pairs: PairedSamples | None) -> UpgradeCell:
    timed = pairs is not None and bool(pairs.base_ms)
    p95s = p95_ratio(pairs.base_ms, pairs.head_ms) if pairs is not None and timed else (None, None, None)
    old = set(plan_traits(base.plan))
    plan_from, plan_to = plan_text(base.plan), plan_text(head.plan)
    return UpgradeCell(
        scenario=head.scenario,
        variant=head.variant,
        plan_from=plan_from,
        plan_to=plan_to,
        new_in_plan=[t for t in plan_traits(head.plan) if t not in old],
        buffers_from=_buffers(base),
        buffers_to=_buffers(head),
        p95_from=p95s[0],
        p95_to=p95s[1],
        p95_ratio=p95s[2],
        verdict_from=base.verdict,
        verdict_to=head.verdict,
        unstable_on=unstable_on(base, head) if plan_from != plan_to else None,
    )


def is_upgrade(res: Results) -> bool:
    """A check whose base side ran on another server: an upgrade check."""
    return res.side_by_side is not None and res.side_by_side.base_environment is not None


def majors(res: Results) -> tuple[Environment, Environment]:
    """The old major's server and the new one's."""
    assert res.side_by_side is not None and res.side_by_side.base_environment is not None, "an upgrade check"
    return res.side_by_side.base_environment, res.environment


def upgrade_cells(res: Results) -> list[UpgradeCell]:
    """Every cell both majors measured, in the head's order."""
    sbs = res.side_by_side
    assert sbs is not None, "an upgrade check carries its base side"
    pairs = {(p.scenario, p.variant): p for p in sbs.cells}
    return [
        upgrade_cell(base, head, pairs.get((head.scenario, head.variant)))
        for head in res.cells
        if (base := sbs.base_cell(head.scenario, head.variant, head)) is not head
    ]


def unstable_label(which: Unstable, old: str = "the old major", new: str = "the new major") -> str:
    """ "unstable on both majors", or "unstable on PostgreSQL 17.10" where only that one was seen to flip."""
    return UNSTABLE_ON_BOTH if which == "both" else f"unstable on {old if which == 'old' else new}"


def unstable_text(which: Unstable, old: str = "the old major", new: str = "the new major") -> str:
    """The label and what it rests on: which major planned the cell the other's way too."""
    if which == "both":
        return f"{UNSTABLE_ON_BOTH} (each flipped plans across its re-ANALYZEs, one's plan among the other's)"
    side, other = (old, new) if which == "old" else (new, old)
    return f"unstable on {side} (it flipped plans across its re-ANALYZEs, {other}'s among them)"


def decisive(findings: list[Finding], unstable: Mapping[tuple[str, str], Unstable] | None = None) -> list[Finding]:
    """``findings`` as an upgrade check weighs them: a regression only in time, verdicts and isolation,
    every other one a change; a plan finding of a cell whose plan flips with ANALYZE's sample
    (``unstable``, by scenario and variant) says so: the statistics changed it, not the upgrade."""
    weighed = [
        f if f.kind in GATED or f.direction != "regression" else replace(f, direction="change") for f in findings
    ]
    flips = unstable or {}
    return [
        replace(f, message=f"{f.message}; not the upgrade's: {unstable_text(which)}")
        if f.kind in PLAN_SHAPE and (which := flips.get((f.scenario, f.variant))) is not None
        else f
        for f in weighed
    ]


def upgrade_check(
    catalogue: Catalogue,
    old: str,
    measure: MeasureSides,
    confirm: Confirm,
    th: CheckThresholds,
) -> tuple[Results | None, Comparison]:
    """Measure ``catalogue`` on both majors (``measure``'s base side on the old one, ``old`` naming it),
    judge it as a check, and keep as regressions only time, verdicts and isolation failures."""
    head, result = check(catalogue, Before(catalogue, old), measure, confirm, th)
    cells = upgrade_cells(head) if head is not None else []
    result.findings = decisive(
        result.findings, {(c.scenario, c.variant): c.unstable_on for c in cells if c.unstable_on}
    )
    result.notes.append(
        "what decides: time (side by side), verdicts (pass → fail) and isolation (a policy that leaks on the new "
        "major); plans, buffers, estimates, spills and rows are a new major's changes, shown, not judged"
    )
    return head, result


def old_run(res: Results) -> Results:
    """The old major's side as a run of its own: its server and its cells (what it would recommend)."""
    sbs, (old, _) = res.side_by_side, majors(res)
    assert sbs is not None
    return res.model_copy(
        update={"environment": old, "cells": [sbs.base_cell(c.scenario, c.variant, c) for c in res.cells]}
    )


@dataclass(frozen=True)
class IndexUse:
    """An index whose use differs between the majors: the scenarios whose plan used it on each."""

    variant: str
    index: str
    old: list[str]
    new: list[str]


def index_use(res: Results) -> list[IndexUse]:
    """Every variant's indexes that one major's plans use for other scenarios than the other's
    (measured: the plan most explained samples of a cell ran) — an index advised or recommended on
    one major that the other does not use shows here."""
    olds = old_run(res).cells
    found = []
    for variant in res.variants:
        for index in (i.name for i in variant.indexes):
            old, new = (
                [c.scenario for c in cells if c.variant == variant.name and index in c.plan.indexes]
                for cells in (olds, res.cells)
            )
            if old != new:
                found.append(IndexUse(variant.name, index, old, new))
    return found
