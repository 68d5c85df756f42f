"""The deterministic gates: what the plan, its buffers, its warning signs, its rows and its SLA
verdict say about one cell, against the same cell of the baseline.

Each gate is one function of (baseline cell, current cell, thresholds) that returns findings; a
finding carries a kind from the closed set ``Kind`` beside its message, so tests, annotations and
reports can tell them apart without reading the wording. These facts are machine-independent for
the same data and PostgreSQL major (plans, buffers and result rows of the same parameter sets are
identical sample by sample between identical runs), so they are judged against committed files.
Time is not judged here: it is compared only between samples taken side by side (``timegate``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from statistics import median
from typing import Literal

from bench.judge.options import GateThresholds
from bench.judge.rls import isolation_failures
from bench.results import Cell, Results

SCAN_NODES = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")


class Kind(str, Enum):
    SLA = "sla"  # the SLA verdict went pass → fail (or back)
    SEQ_SCAN = "seq_scan"  # an index scan became a Seq Scan
    SORT_ADDED = "sort_added"  # a new Sort node (the index no longer delivers the order)
    INDEX_DROPPED = "index_dropped"  # an index the plan used is no longer used
    PLAN_CHANGED = "plan_changed"  # any other plan change: a change, judged by what came with it
    BUFFERS = "buffers"  # shared buffers per query rose
    MISESTIMATE = "misestimate"  # a node's row estimate got much worse (q-error)
    SPILL = "spill"  # a sort or hash went to disk where it did not
    ROWS_REMOVED = "rows_removed"  # rows read only to be filtered away grew
    RESULTS = "results"  # the same parameters returned other rows
    TIME = "time"  # slower, side by side (see timegate)
    MISSING = "missing"  # a baseline cell this run did not measure
    ISOLATION = "isolation"  # a policy showed or changed another user's rows: judged alone, not against a base


# The findings a plan shows node by node (its shape, buffers, estimates, spills, filters): a check's
# report draws the base and head plans of each cell that has one.
PLAN_KINDS = frozenset(
    {
        Kind.SEQ_SCAN,
        Kind.SORT_ADDED,
        Kind.INDEX_DROPPED,
        Kind.PLAN_CHANGED,
        Kind.BUFFERS,
        Kind.MISESTIMATE,
        Kind.SPILL,
        Kind.ROWS_REMOVED,
    }
)

Direction = Literal["regression", "improvement", "change"]


@dataclass(frozen=True)
class Finding:
    kind: Kind
    scenario: str
    variant: str
    message: str
    direction: Direction = "regression"


DEFAULT_GATES = GateThresholds()
Gate = Callable[[Cell, Cell, GateThresholds], list[Finding]]


def _finding(cur: Cell, kind: Kind, message: str, direction: Direction = "regression") -> Finding:
    return Finding(kind, cur.scenario, cur.variant, message, direction)


def sla_gate(base: Cell, cur: Cell, th: GateThresholds) -> list[Finding]:
    if base.verdict == "pass" and cur.verdict == "fail":
        return [
            _finding(cur, Kind.SLA, f"SLA {cur.sla_ms:.0f} ms: pass → {cur.verdict_text} (was {base.verdict_text})")
        ]
    if base.verdict == "fail" and cur.verdict == "pass":
        return [_finding(cur, Kind.SLA, f"SLA {cur.sla_ms:.0f} ms: fail → pass", "improvement")]
    return []


def plan_gate(base: Cell, cur: Cell, th: GateThresholds) -> list[Finding]:
    """What the plan lost that the baseline's had; any other change is listed as a change, never
    as an improvement: a new plan is better or worse only by what was measured with it."""
    if base.plan.fingerprint == cur.plan.fingerprint:
        return []
    out = []
    lost_seq = sorted(set(cur.plan.seq_scans) - set(base.plan.seq_scans))
    if lost_seq and any(t in SCAN_NODES for t in base.plan.node_types):
        out.append(
            _finding(
                cur,
                Kind.SEQ_SCAN,
                f"index scan → Seq Scan on {', '.join(lost_seq)}"
                f" (baseline used {', '.join(base.plan.indexes) or 'an index'})",
            )
        )
    if cur.plan.sorts > base.plan.sorts:
        out.append(_finding(cur, Kind.SORT_ADDED, f"new Sort node ({base.plan.sorts} → {cur.plan.sorts})"))
    lost_idx = sorted(set(base.plan.indexes) - set(cur.plan.indexes))
    if lost_idx and not lost_seq:
        out.append(
            _finding(
                cur,
                Kind.INDEX_DROPPED,
                f"index {', '.join(lost_idx)} no longer used (now: {', '.join(cur.plan.indexes) or 'none'})",
            )
        )
    if not out:
        out.append(
            _finding(
                cur,
                Kind.PLAN_CHANGED,
                f"plan changed: {' → '.join(cur.plan.node_types)} [{', '.join(cur.plan.indexes)}]",
                "change",
            )
        )
    return out


def _same_shape(base: Cell, cur: Cell) -> bool:
    """Same plan shape: its nodes pair up one to one."""
    return base.plan.fingerprint == cur.plan.fingerprint and len(base.plan.nodes) == len(cur.plan.nodes)


def _worst_node(base: Cell, cur: Cell) -> str:
    """Which plan node's buffers rose most."""
    if not _same_shape(base, cur):
        return ""
    pairs = [
        (c.shared_hit + c.shared_read - b.shared_hit - b.shared_read, b, c)
        for b, c in zip(base.plan.nodes, cur.plan.nodes, strict=True)
    ]
    rise, b, c = max(pairs, key=lambda p: p[0])
    if rise <= 0:
        return ""
    where = f" on {c.relation}" if c.relation else ""
    using = f" using {c.index}" if c.index else ""
    return f"; most at {c.node_type}{where}{using}: {b.shared_hit + b.shared_read} → {c.shared_hit + c.shared_read}"


def buffers_gate(base: Cell, cur: Cell, th: GateThresholds) -> list[Finding]:
    if not base.samples.buffers or not cur.samples.buffers:
        return []
    b, c = median(base.samples.buffers), median(cur.samples.buffers)
    if c > b * (1 + th.buffer_tolerance) and c - b >= th.buffer_floor:
        return [
            _finding(
                cur,
                Kind.BUFFERS,
                f"buffers per query {b:.0f} → {c:.0f} (+{(c / max(b, 1) - 1):.0%}){_worst_node(base, cur)}",
            )
        ]
    if b > c * (1 + th.buffer_tolerance) and b - c >= th.buffer_floor:
        return [_finding(cur, Kind.BUFFERS, f"buffers per query {b:.0f} → {c:.0f}", "improvement")]
    return []


def misestimate_gate(base: Cell, cur: Cell, th: GateThresholds) -> list[Finding]:
    """A node whose row estimate went at least ``misestimate_growth`` times further off and is now off by
    ``misestimate_floor`` or more: the planner is choosing on wrong numbers. Nodes pair up when the
    plan kept its shape; otherwise the plans' worst nodes are compared."""
    if _same_shape(base, cur):
        pairs = list(zip(base.plan.nodes, cur.plan.nodes, strict=True))
    else:
        worst = (max(base.plan.nodes, key=lambda n: n.misestimate), max(cur.plan.nodes, key=lambda n: n.misestimate))
        pairs = [worst] if base.plan.nodes and cur.plan.nodes else []
    for b, c in pairs:
        if c.misestimate >= th.misestimate_floor and c.misestimate >= b.misestimate * th.misestimate_growth:
            where = f" on {c.relation}" if c.relation else ""
            return [
                _finding(
                    cur,
                    Kind.MISESTIMATE,
                    f"row estimate of {c.node_type}{where} off ×{c.misestimate:.0f} "
                    f"(was ×{b.misestimate:.0f}): estimated {c.plan_rows:.0f}, "
                    f"actual {c.actual_rows:.0f}",
                )
            ]
    return []


def _spilled(cell: Cell) -> list[int]:
    """Temp blocks per explained sample (older files: the representative plan's)."""
    return cell.samples.temp_blocks or [cell.plan.temp_blocks]


def spill_gate(base: Cell, cur: Cell, th: GateThresholds) -> list[Finding]:
    """Any explained sample spilling where none of the reference's did: a power user's sort can spill
    while an ordinary user's, the plan most samples ran, fits in work_mem."""
    spills = [b for b in _spilled(cur) if b > 0]
    if spills and not any(_spilled(base)):
        return [
            _finding(
                cur,
                Kind.SPILL,
                f"{len(spills)} of {len(_spilled(cur))} explained samples now spill to disk "
                f"(up to {max(spills)} temp blocks: work_mem too small for a sort or hash)",
            )
        ]
    return []


def rows_removed_gate(base: Cell, cur: Cell, th: GateThresholds) -> list[Finding]:
    b, c = base.plan.rows_removed, cur.plan.rows_removed
    if c - b >= th.rows_removed_floor and c > b * (1 + th.rows_removed_growth):
        return [
            _finding(
                cur,
                Kind.ROWS_REMOVED,
                f"rows removed by filters {b:.0f} → {c:.0f} per execution (read, then thrown away)",
            )
        ]
    return []


def results_gate(base: Cell, cur: Cell, th: GateThresholds) -> list[Finding]:
    """The same parameter sets (the first samples draw them from a fixed stream) must return the
    same rows: a rewrite that changes what users see is a regression whatever its speed."""
    pairs = list(zip(base.samples.result_hashes, cur.samples.result_hashes, strict=False))
    differ = sum(b != c for b, c in pairs)
    if differ:
        return [
            _finding(
                cur, Kind.RESULTS, f"{differ} of {len(pairs)} parameter sets returned other rows than the baseline's"
            )
        ]
    return []


CELL_GATES: tuple[Gate, ...] = (
    sla_gate,
    plan_gate,
    buffers_gate,
    misestimate_gate,
    spill_gate,
    rows_removed_gate,
    results_gate,
)


def isolation_findings(res: Results) -> list[Finding]:
    """Every cell whose isolation check failed (``Cell.isolation``): a regression whatever the other
    side did, since a policy that lets one user see another's rows is wrong in any run."""
    return [
        _finding(cell, Kind.ISOLATION, f"isolation failure: {cell.isolation.describe()}")
        for cell in isolation_failures(res)
        if cell.isolation is not None  # what failed it
    ]


def judge_cell(base: Cell, cur: Cell, th: GateThresholds = DEFAULT_GATES) -> list[Finding]:
    return [f for gate in CELL_GATES for f in gate(base, cur, th)]
