"""Facts from EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON): what a plan did, and its fingerprint.

The fingerprint hashes the plan's shape only (node types, relations, indexes, join and sort
keys), never numbers, so the same plan on another machine or run has the same fingerprint.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

from bench.catalogue.policies import CLAIM_FUNCTION
from bench.results import NodeFacts, PlanFacts, PlanNode

_SHAPE_KEYS = (
    "Node Type",
    "Relation Name",
    "Index Name",
    "Join Type",
    "Scan Direction",
    "Sort Key",
    "Strategy",
    "Parent Relationship",
    "Partial Mode",
)
MISESTIMATE_FLAGS = (1000.0, 100.0, 10.0)  # PEV2's badges
# Per-node timing is off: the clock calls around every row would inflate the execution time the
# samples report, and the facts kept here (rows, loops, buffers, spills) do not need it.
EXPLAIN_ANALYZE = "EXPLAIN (ANALYZE, BUFFERS, TIMING OFF, FORMAT JSON) "
EXPLAIN_PLAN = "EXPLAIN (FORMAT JSON) "  # the plan alone: nothing is executed
# A write's also counts the WAL the statement itself generated (PostgreSQL 13+): the server's insert
# position, read before and after, counts every other session's writes too (medians up to 24 kB
# were recorded so while other work wrote).
EXPLAIN_ANALYZE_WAL = "EXPLAIN (ANALYZE, BUFFERS, WAL, TIMING OFF, FORMAT JSON) "
# Once per user class after a cell's samples, for the report's plan trees: every node timed.
EXPLAIN_TIMED = "EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) "


def walk(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from walk(child)


def _shape(node: dict[str, Any]) -> list[Any]:
    return [[node.get(k) for k in _SHAPE_KEYS], [_shape(c) for c in node.get("Plans", [])]]


def fingerprint(root: dict[str, Any]) -> str:
    return hashlib.sha1(json.dumps(_shape(root)).encode()).hexdigest()[:12]


def misestimate(actual_rows: float, plan_rows: float) -> float:
    """How many times the row estimate was off, either way (q-error; rows below one count as one)."""
    actual, planned = max(actual_rows, 1.0), max(plan_rows, 1.0)
    return max(actual / planned, planned / actual)


def _misestimate(node: dict[str, Any]) -> float:
    if "Actual Rows" not in node:  # a plan without ANALYZE (a statement cut off by its timeout): no actuals
        return 1.0
    return misestimate(float(node.get("Actual Rows", 0.0)), float(node.get("Plan Rows", 0.0)))


def _node_facts(node: dict[str, Any]) -> NodeFacts:
    return NodeFacts(
        node_type=node["Node Type"],
        relation=node.get("Relation Name"),
        index=node.get("Index Name"),
        actual_rows=float(node.get("Actual Rows", 0.0)),
        plan_rows=float(node.get("Plan Rows", 0.0)),
        loops=int(node.get("Actual Loops", 1)),
        misestimate=round(_misestimate(node), 2),
        shared_hit=int(node.get("Shared Hit Blocks", 0)),
        shared_read=int(node.get("Shared Read Blocks", 0)),
        heap_fetches=int(node.get("Heap Fetches", 0)),
        rows_removed=_removed(node),
        temp_blocks=_temp(node),
        index_searches=node.get("Index Searches"),
    )


_REMOVED_BY = "Rows Removed by "
_REMOVED = tuple(_REMOVED_BY + what for what in ("Filter", "Index Recheck", "Join Filter"))


def _removed(node: dict[str, Any]) -> float:
    return float(sum(node.get(key, 0) for key in _REMOVED))


def _temp(node: dict[str, Any]) -> int:
    return int(node.get("Temp Read Blocks", 0)) + int(node.get("Temp Written Blocks", 0))


_FILTERS = ("Filter", "Join Filter")


def _claim_filter(node: dict[str, Any]) -> bool:
    """The node's filter reads a policy's claim for every row (an index condition reads it once)."""
    return any(f"{CLAIM_FUNCTION}(" in str(node.get(key, "")) for key in _FILTERS)


def plan_facts(explain: list[dict[str, Any]] | dict[str, Any]) -> PlanFacts:
    """Facts from one EXPLAIN (FORMAT JSON) document (the list PostgreSQL returns, or its item)."""
    top = explain[0] if isinstance(explain, list) else explain
    root = top["Plan"]
    nodes = list(walk(root))
    types: list[str] = []
    for n in nodes:
        if n["Node Type"] not in types:
            types.append(n["Node Type"])
    worst = max(_misestimate(n) for n in nodes)
    return PlanFacts(
        fingerprint=fingerprint(root),
        node_types=types,
        indexes=sorted({n["Index Name"] for n in nodes if n.get("Index Name")}),
        seq_scans=sorted({n.get("Relation Name", "?") for n in nodes if n["Node Type"] == "Seq Scan"}),
        sorts=sum(1 for n in nodes if n["Node Type"] in ("Sort", "Incremental Sort")),
        sort_spills=sum(1 for n in nodes if n.get("Sort Space Type") == "Disk"),
        hash_spills=sum(1 for n in nodes if int(n.get("Hash Batches", 1)) > 1),
        heap_fetches=sum(int(n.get("Heap Fetches", 0)) for n in nodes),
        lossy_heap_blocks=sum(int(n.get("Lossy Heap Blocks", 0)) for n in nodes),
        max_misestimate=round(worst, 2),
        misestimate_flag=next((int(f) for f in MISESTIMATE_FLAGS if worst >= f), 0),
        shared_hit=int(root.get("Shared Hit Blocks", 0)),
        shared_read=int(root.get("Shared Read Blocks", 0)),
        temp_blocks=_temp(root),
        rows_removed=sum(_removed(n) for n in nodes),
        init_plans=sum(1 for n in nodes if n.get("Parent Relationship") == "InitPlan"),
        sub_plans=sum(1 for n in nodes if n.get("Parent Relationship") == "SubPlan"),
        claim_filters=sum(1 for n in nodes if _claim_filter(n)),
        nodes=[_node_facts(n) for n in nodes],
    )


# What a plan tree shows of a node beside its figures: conditions, keys and how a sort or hash went.
_DETAILS = (
    "Operation",
    "Index Cond",
    "Recheck Cond",
    "TID Cond",
    "Hash Cond",
    "Merge Cond",
    "Join Filter",
    "Filter",
    "One-Time Filter",
    "Function Name",
    "CTE Name",
    "Sort Key",
    "Presorted Key",
    "Group Key",
    "Sort Method",
    "Sort Space Type",
    "Sort Space Used",
    "Hash Batches",
    "Peak Memory Usage",
    "Heap Fetches",
    "Exact Heap Blocks",
    "Lossy Heap Blocks",
    "Cache Key",
    "Workers Planned",
)


def _text(value: Any) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


def _optional(node: dict[str, Any], key: str) -> float | None:
    return float(node[key]) if key in node else None


def plan_node(node: dict[str, Any]) -> PlanNode:
    """A node of an EXPLAIN (FORMAT JSON) plan and its children, as the report's plan trees show them."""
    alias = node.get("Alias")
    return PlanNode(
        node_type=node["Node Type"],
        relation=node.get("Relation Name"),
        alias=alias if alias != node.get("Relation Name") else None,
        index=node.get("Index Name"),
        join_type=node.get("Join Type"),
        strategy=node.get("Strategy"),
        scan_direction=node.get("Scan Direction"),
        parent_relationship=node.get("Parent Relationship"),
        subplan_name=node.get("Subplan Name"),
        cost=float(node.get("Total Cost", 0.0)),
        plan_rows=float(node.get("Plan Rows", 0.0)),
        actual_rows=_optional(node, "Actual Rows"),
        loops=int(node.get("Actual Loops", 0)),
        startup_ms=_optional(node, "Actual Startup Time"),
        total_ms=_optional(node, "Actual Total Time"),
        workers=int(node.get("Workers Launched", 0)),
        shared_hit=int(node.get("Shared Hit Blocks", 0)),
        shared_read=int(node.get("Shared Read Blocks", 0)),
        shared_dirtied=int(node.get("Shared Dirtied Blocks", 0)),
        shared_written=int(node.get("Shared Written Blocks", 0)),
        temp_read=int(node.get("Temp Read Blocks", 0)),
        temp_written=int(node.get("Temp Written Blocks", 0)),
        details={key: _text(node[key]) for key in _DETAILS if key in node},
        rows_removed={key.removeprefix(_REMOVED_BY): float(node[key]) for key in _REMOVED if node.get(key)},
        children=[plan_node(child) for child in node.get("Plans", [])],
    )


def plan_tree(explain: list[dict[str, Any]] | dict[str, Any]) -> PlanNode:
    """The root node of one EXPLAIN (FORMAT JSON) document (the list PostgreSQL returns, or its item)."""
    top = explain[0] if isinstance(explain, list) else explain
    return plan_node(top["Plan"])


def wal(explain: list[dict[str, Any]] | dict[str, Any]) -> tuple[int, int]:
    """The WAL the statement generated (EXPLAIN's WAL option; the root node counts its children's):
    its bytes, and how many full-page images are among them (the first change to a page after a
    checkpoint copies the whole page: kilobytes that say when the last checkpoint was, not what
    the statement costs)."""
    top = explain[0] if isinstance(explain, list) else explain
    return int(top["Plan"].get("WAL Bytes", 0)), int(top["Plan"].get("WAL FPI", 0))


def timings(explain: list[dict[str, Any]] | dict[str, Any]) -> tuple[float, float]:
    """(execution ms, planning ms) as the server measured them."""
    top = explain[0] if isinstance(explain, list) else explain
    return float(top.get("Execution Time", 0.0)), float(top.get("Planning Time", 0.0))
