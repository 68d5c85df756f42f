"""Plans people can read: each cell's timed plans (``Cell.plans``) as trees, and the difference
between two plans, node by node — what the report's plan sections draw (``_plans.html.j2``) and what
a check's Markdown summary links to.

A tree node shows its own time (its total less its children's: where the time went), its total,
rows actual against estimated with the misestimate factor, loops, buffers, its index and
conditions, and the rows its filters threw away; the path from the root to the node with the most
time of its own is the hottest path. Times follow EXPLAIN ANALYZE: per loop, so a node's total is
its per-loop time × its loops, shared out among the processes of a parallel plan.

A diff pairs two plans' nodes: the roots, then each matched node's children in order, matched by
what they do (a scan by its relation, any other node by its type) with ``difflib``'s longest
matching blocks. A matched pair is *changed* where its node type, index, estimated rows or buffers
differ; a node only one side has *vanished* or *appeared* with its whole subtree.

A scenario's section draws the diff of every two of its measurements whose plans differ, each
diff once: measurements with the same plans (a write scenario's under most variants, measured apart
for their write cost) give the same diff against a third, which the page draws once and the two
menus find for each pair it serves (``ScenarioPlans``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from functools import cached_property
from typing import Literal

from bench.measure.plan import MISESTIMATE_FLAGS, misestimate
from bench.results import Cell, PlanNode, TimedPlan

Change = Literal["same", "changed", "vanished", "appeared"]
# what a diff compares of two matched nodes, and the words it shows for each
COMPARED = ("node", "index", "estimate", "buffers")


def plan_ms(value: float) -> str:
    """Milliseconds as a plan shows them: three decimals under 10 ms (index lookups take microseconds)."""
    return f"{value:.3f}" if value < 10 else f"{value:.1f}"


def count(value: float) -> str:
    """Rows and blocks: whole where they are (rows per loop can be fractional: 0.5 of a row per loop)."""
    return f"{value:,.0f}" if value == int(value) or value >= 100 else f"{value:,.2f}"


@dataclass
class NodeView:
    """A node as a tree or a diff draws it."""

    node: PlanNode
    depth: int
    total_ms: float | None  # every loop, shared out among a parallel plan's processes
    self_ms: float | None  # the total less the children's
    hot: bool = False  # on the path from the root to the node with the most time of its own
    hottest: bool = False  # that node
    children: list[NodeView] = field(default_factory=list)

    @property
    def title(self) -> str:
        """What the node does and on what: "Index Scan Backward using ix on tasks t", "Hash Join (Left)"."""
        n = self.node
        kind = f"{n.strategy} {n.node_type}" if n.strategy and n.strategy != "Plain" else n.node_type
        if n.scan_direction == "Backward":
            kind += " Backward"
        if n.join_type and n.join_type != "Inner":
            kind += f" ({n.join_type})"
        using = f" using {n.index}" if n.index and n.relation else (f" on {n.index}" if n.index else "")
        on = f" on {n.relation}" + (f" {n.alias}" if n.alias else "") if n.relation else ""
        return kind + using + on

    @property
    def role(self) -> str:
        """Where it sits when that is not the obvious: "InitPlan 1", "SubPlan 2", "CTE recent"."""
        n = self.node
        return n.subplan_name or (n.parent_relationship if n.parent_relationship in ("InitPlan", "SubPlan") else "")

    @property
    def executed(self) -> bool:
        return self.node.actual_rows is not None and self.node.loops > 0

    @property
    def misestimate(self) -> float:
        return misestimate(self.node.actual_rows or 0.0, self.node.plan_rows) if self.executed else 1.0

    @property
    def misestimate_flag(self) -> int:
        """PEV2's badges: 10, 100, 1000 times off, or 0."""
        return next((int(f) for f in MISESTIMATE_FLAGS if self.misestimate >= f), 0)

    @property
    def rows(self) -> str:
        """Rows actual against estimated, per loop: "20 of 20 estimated", "5,000 of 12 estimated (×417 under)"."""
        n = self.node
        if n.actual_rows is None:
            return f"{count(n.plan_rows)} estimated"
        if n.loops == 0:
            return f"never executed ({count(n.plan_rows)} estimated)"
        off = self.misestimate
        said = "" if off < 2 else f" (×{off:,.0f} {'under' if n.actual_rows > n.plan_rows else 'over'})"
        return f"{count(n.actual_rows)} of {count(n.plan_rows)} estimated{said}"

    @property
    def buffers(self) -> str:
        """Shared blocks hit, read, dirtied and written (every loop, the children's included), temp blocks."""
        n = self.node
        parts = [f"hit {n.shared_hit:,}"] + [
            f"{name} {value:,}"
            for name, value in (
                ("read", n.shared_read),
                ("dirtied", n.shared_dirtied),
                ("written", n.shared_written),
                ("temp read", n.temp_read),
                ("temp written", n.temp_written),
            )
            if value
        ]
        return " · ".join(parts)

    @property
    def removed(self) -> list[str]:
        """Rows thrown away, with the condition that threw them: "Filter: 4,980 rows removed per loop"."""
        return [
            f"{what}: {count(rows)} {'row' if rows == 1 else 'rows'} removed"
            + (" per loop" if self.node.loops > 1 else "")
            for what, rows in self.node.rows_removed.items()
        ]

    def walk(self) -> Iterator[NodeView]:
        yield self
        for child in self.children:
            yield from child.walk()


def _view(node: PlanNode, depth: int, processes: int) -> NodeView:
    """``node`` and its children with their times. A node under a Gather ran in every process at once:
    its loops count them, so its per-loop time × loops is shared out among them to be wall time."""
    inner = node.workers + 1 if node.workers else processes
    children = [_view(child, depth + 1, inner) for child in node.children]
    if node.total_ms is None:
        return NodeView(node, depth, None, None, children=children)
    total = node.total_ms * node.loops / processes
    own = total - sum(c.total_ms or 0.0 for c in children)
    return NodeView(node, depth, total, max(own, 0.0), children=children)


def tree(plan: TimedPlan) -> NodeView:
    """The plan's root as drawn, its hottest path marked (where nodes were timed)."""
    root = _view(plan.root, 0, 1)
    hottest = max(root.walk(), key=lambda v: v.self_ms or 0.0)
    if hottest.self_ms:
        hottest.hottest = _mark_path(root, hottest)
    return root


def _mark_path(view: NodeView, target: NodeView) -> bool:
    """Mark the nodes from ``view`` down to ``target``; whether ``target`` is below ``view``."""
    view.hot = view is target or any(_mark_path(child, target) for child in view.children)
    return view.hot


def plan_label(plan: TimedPlan) -> str:
    """What a plan is: "power users", "generic plan (ordinary users' values)", with how it was read."""
    who = (
        f"generic plan (prepared statement; {plan.user_class} users' values)"
        if plan.generic
        else f"{plan.user_class} users"
    )
    if plan.timed_out_ms is not None:
        return f"{who}: estimated only (EXPLAIN ANALYZE reached the {plan.timed_out_ms} ms statement timeout)"
    if plan.execution_ms is None:
        return f"{who}: estimated only"
    return f"{who}: execution {plan_ms(plan.execution_ms)} ms, planning {plan_ms(plan.planning_ms or 0.0)} ms"


@dataclass(frozen=True)
class DiffRow:
    """One line of a diff: a node of the left plan, of the right plan, or of both (matched)."""

    depth: int
    left: NodeView | None
    right: NodeView | None
    change: Change
    changed: tuple[str, ...] = ()  # of COMPARED, what differs between the matched nodes


def _key(node: PlanNode) -> str:
    """What matches two nodes: a scan reads a relation, whatever the way; anything else is its type."""
    return f"scan {node.relation}" if node.relation else node.node_type


def _compared(node: PlanNode) -> dict[str, tuple[object, ...]]:
    return {
        "node": (node.node_type, node.join_type, node.strategy, node.scan_direction),
        "index": (node.index,),
        "estimate": (node.plan_rows,),
        "buffers": (node.shared_hit + node.shared_read,),
    }


def _differences(a: PlanNode, b: PlanNode) -> tuple[str, ...]:
    mine, theirs = _compared(a), _compared(b)
    return tuple(name for name in COMPARED if mine[name] != theirs[name])


def _one_side(view: NodeView, change: Change) -> Iterator[DiffRow]:
    for v in view.walk():
        yield DiffRow(v.depth, v if change == "vanished" else None, v if change == "appeared" else None, change)


def _align(left: list[NodeView], right: list[NodeView]) -> Iterator[DiffRow]:
    matcher = SequenceMatcher(None, [_key(v.node) for v in left], [_key(v.node) for v in right], autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            for a, b in zip(left[i1:i2], right[j1:j2], strict=True):
                changed = _differences(a.node, b.node)
                yield DiffRow(a.depth, a, b, "changed" if changed else "same", changed)
                yield from _align(a.children, b.children)
            continue
        for a in left[i1:i2]:
            yield from _one_side(a, "vanished")
        for b in right[j1:j2]:
            yield from _one_side(b, "appeared")


def diff(left: TimedPlan, right: TimedPlan) -> list[DiffRow]:
    """The two plans' nodes side by side, in tree order (see the module docstring)."""
    return list(_align([tree(left)], [tree(right)]))


@dataclass(frozen=True)
class PlanPair:
    """The same user class's plans (or both generic plans) of two cells, and their diff."""

    label: str
    left: TimedPlan | None
    right: TimedPlan | None
    rows: list[DiffRow]

    @property
    def changes(self) -> int:
        return sum(r.change != "same" for r in self.rows)


def _pair_key(plan: TimedPlan) -> str:
    """Plans that face each other in a diff: the same class's, or the generic plans (whichever
    class's values ran them)."""
    return "generic plan" if plan.generic else f"{plan.user_class} users"


def cell_diff(left: Cell, right: Cell) -> list[PlanPair]:
    """Each user class's plans of two cells side by side, then the generic plans: a plan only one
    side has (a generic plan that differs on one side only) is all vanished or all appeared."""
    mine, theirs = {_pair_key(p): p for p in left.plans}, {_pair_key(p): p for p in right.plans}
    pairs = []
    for key in dict.fromkeys([*mine, *theirs]):
        a, b = mine.get(key), theirs.get(key)
        if a and b:
            rows = diff(a, b)
        elif a:
            rows = list(_one_side(tree(a), "vanished"))
        else:
            assert b is not None  # the key came from one side or the other
            rows = list(_one_side(tree(b), "appeared"))
        pairs.append(PlanPair(key, a, b, rows))
    return pairs


def _line(view: NodeView, depth: int) -> str:
    """A node on one line of a text diff: what it does, rows, buffers."""
    return f"{'  ' * depth}{view.title} · rows {view.rows} · buffers {view.buffers}"


def diff_lines(pairs: list[PlanPair]) -> list[str]:
    """Two cells' plans as a unified diff a pull request shows (a ``diff`` code block colours it): a
    line per node, "-" only on the left, "+" only on the right, a changed node as both."""
    lines = []
    for pair in pairs:
        lines.append(f"@@ {pair.label}: {pair.changes} node(s) appeared, vanished or changed @@")
        for row in pair.rows:
            if row.change != "appeared" and row.left:
                lines.append(("  " if row.change == "same" else "- ") + _line(row.left, row.depth))
            if row.change in ("appeared", "changed") and row.right:
                lines.append("+ " + _line(row.right, row.depth))
    return lines


@dataclass(frozen=True)
class Measurement:
    """A cell measured for itself, and every variant whose cell shares it (the same plans and indexes)."""

    cell: Cell
    variants: list[str]


Drawn = tuple[tuple[object, ...], ...]


def drawn(pairs: list[PlanPair]) -> Drawn:
    """What a variant diff draws of ``pairs`` (``_plans.html.j2``'s ``diff`` without times): two
    diffs that draw the same are drawn once. Each class's label and count, and per row its depth,
    change, the facts that differ and each side's node, rows and buffers."""

    def side(view: NodeView | None) -> tuple[str, ...]:
        return (view.title, view.rows, view.buffers) if view else ()

    return tuple(
        (p.label, p.changes, *((r.depth, r.change, r.changed, side(r.left), side(r.right)) for r in p.rows))
        for p in pairs
    )


@dataclass(frozen=True)
class VariantDiff:
    """A diff as a scenario's section draws it, once for every two measurements it is the diff of:
    ``between`` holds their indexes in ``ScenarioPlans.measurements``, the left one first (the one
    listed first); ``left`` and ``right`` are the first two."""

    left: Measurement
    right: Measurement
    pairs: list[PlanPair]
    between: list[tuple[int, int]]


@dataclass(frozen=True)
class ScenarioPlans:
    """A scenario's plans: one tree per measurement, the diff of every two measurements whose plans
    differ (node type, index, estimated rows or buffers of a node) drawn once however many pairs it
    is the diff of, and which two a reader sees first (the baseline variant's against the fastest's)."""

    scenario: str
    measurements: list[Measurement]
    measured_as: dict[str, str]  # variant → the variant whose measurement its cell is
    diffs: list[VariantDiff]
    first: tuple[str, str]

    @cached_property
    def index(self) -> dict[str, int]:
        """Variant → the index of its measurement in ``measurements``."""
        at = {m.cell.variant: i for i, m in enumerate(self.measurements)}
        return {v: at[m] for v, m in self.measured_as.items()}

    def shown(self, left: str, right: str) -> tuple[VariantDiff | None, str, str]:
        """The diff drawn for two variants, or None (one measurement, or plans that differ in nothing
        a diff compares), and the two in its order: the one whose measurement is listed first on
        the left (what the page's script does when the menus change)."""
        i, j = self.index[left], self.index[right]
        pair = (min(i, j), max(i, j))
        return next((d for d in self.diffs if pair in d.between), None), *((left, right) if i <= j else (right, left))

    def name(self, variant: str) -> str:
        """A variant as a diff's columns name it: "composite", "covering (measured as baseline)"."""
        measured = self.measured_as[variant]
        return variant if measured == variant else f"{variant} (measured as {measured})"


def _drawn_once(measurements: list[Measurement]) -> list[VariantDiff]:
    """Every two measurements' diff where their plans differ, each diff drawn once (``drawn``)."""
    diffs: dict[Drawn, VariantDiff] = {}
    for i, a in enumerate(measurements):
        for j in range(i + 1, len(measurements)):
            pairs = cell_diff(a.cell, measurements[j].cell)
            if not any(p.changes for p in pairs):
                continue  # the same plans: nothing to mark
            key = drawn(pairs)
            if key in diffs:
                diffs[key].between.append((i, j))
            else:
                diffs[key] = VariantDiff(a, measurements[j], pairs, [(i, j)])
    return list(diffs.values())


def scenario_plans(cells: list[Cell], baseline: str) -> ScenarioPlans:
    """``cells``: one scenario's, in variant order. The diff shown first is the baseline variant's
    against the fastest variant's (the plan that made the difference), or the first two measured."""
    measured_as = {c.variant: c.shared_with or c.variant for c in cells}
    measurements = [
        Measurement(c, [v for v, m in measured_as.items() if m == c.variant]) for c in cells if not c.shared_with
    ]
    fastest = min(cells, key=lambda c: c.decided_p95).variant
    start = baseline if baseline in measured_as else cells[0].variant
    if measured_as[fastest] == measured_as[start]:
        fastest = next((m.cell.variant for m in measurements if m.cell.variant != measured_as[start]), fastest)
    return ScenarioPlans(cells[0].scenario, measurements, measured_as, _drawn_once(measurements), (start, fastest))


@dataclass(frozen=True)
class SideDiff:
    """A check's base and head plans of one cell the base side measured for itself."""

    base: Cell
    head: Cell
    pairs: list[PlanPair]

    @property
    def anchor(self) -> str:
        return diff_anchor(self.head.scenario, self.head.variant)


def diff_anchor(scenario: str, variant: str) -> str:
    """The id of a check's base-against-head plans in index.html, which its Markdown summary links to."""
    return f"base-head-{scenario}-{variant}"


def side_diffs(base_cells: list[Cell], head: dict[tuple[str, str], Cell]) -> list[SideDiff]:
    """Base against head for every cell both sides measured apart (the others are one measurement)."""
    return [SideDiff(b, h, cell_diff(b, h)) for b in base_cells if (h := head.get((b.scenario, b.variant))) is not None]
