"""What row-level security costs and what it needs, from a run's cells.

The cost of isolation by RLS is a ratio of p95s, per user class: a scenario relying on the policies
(``Cell.explicit`` names its twin) under a policy variant, against its explicit twin (its own
``user_id`` filter) under the variant of the run with the same indexes and no policies — the query
the app runs today, on the same indexes. Both p95s are from cells of one run, on one machine.

The interval: each p95 has a distribution-free order-statistic interval at 95% (``stats``, the one
the report shows beside every p95); the ratio's interval is [low of one ÷ high of the other, high ÷
low], which holds the true ratio whenever both intervals hold their p95, so at least 90% of the
time (Bonferroni: 1 − 5% − 5%); ``tests/test_rls_cost.py`` checks it by simulation. A 95% interval
of a p95 needs 77 samples of a class, the first look at which a class can pass: a class stopped
before (an early fail) has a ratio without an interval. A 95% interval of the ratio would need
97.5% intervals, 100 samples a class: more than a passing cell takes.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.catalogue.sql import parse_index
from bench.judge.stats import quantile_ci
from bench.results import Cell, Results, VariantResult

RATIO_CONFIDENCE = 0.90
_EACH = 1 - (1 - RATIO_CONFIDENCE) / 2  # each p95's interval: the two miss at most 2.5% each


@dataclass(frozen=True)
class Ratio:
    """RLS p95 ÷ explicit p95 for one user class, with its interval (None: too few samples)."""

    user_class: str
    value: float
    low: float | None
    high: float | None

    def text(self) -> str:
        interval = "" if self.low is None or self.high is None else f" [{self.low:.2f}, {self.high:.2f}]"
        return f"×{self.value:.2f}{interval}"


@dataclass(frozen=True)
class RlsCost:
    """One scenario relying on RLS under one policy variant, against its explicit twin."""

    cell: Cell
    explicit: Cell | None  # None: the run has no variant with the same indexes and no policies
    ratios: list[Ratio]  # one per user class both cells sampled

    @property
    def worst(self) -> Ratio | None:
        return max(self.ratios, key=lambda r: r.value, default=None)


@dataclass(frozen=True)
class PolicyForm:
    """What a policy variant's RLS cells did: how many passed (isolation included), the indexes
    their plans used, the tables they read by Seq Scan, and how the claim was evaluated."""

    variant: VariantResult
    compared_with: str | None  # the variant with the same indexes and no policies
    passed: int
    cells: int
    indexes: list[str]
    seq_scans: list[str]
    init_plans: int  # RLS cells whose plan evaluates a sub-select once per query
    claim_filters: int  # RLS cells whose plan calls the claim for every row a node reads


def p95_ratio(user_class: str, rls: list[float], explicit: list[float]) -> Ratio:
    """The ratio of two p95s with an interval of at least RATIO_CONFIDENCE (module docstring)."""
    a, b = quantile_ci(rls, 0.95, _EACH), quantile_ci(explicit, 0.95, _EACH)
    value = a.value / b.value if b.value > 0 else float("inf")
    if a.low is None or a.high is None or not b.low or not b.high:
        return Ratio(user_class, value, None, None)
    return Ratio(user_class, value, a.low / b.high, a.high / b.low)


def _indexes(variant: VariantResult) -> frozenset[str]:
    return frozenset(parse_index(statement).fingerprint() for statement in variant.statements)


def index_twin(res: Results, variant: VariantResult) -> str | None:
    """The variant of ``res`` with the same indexes as ``variant`` and no policies."""
    built = _indexes(variant)
    return next((v.name for v in res.variants if not v.policies and _indexes(v) == built), None)


def _by_class(cell: Cell) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    for ms, user_class in zip(cell.samples.client_ms, cell.samples.user_class, strict=True):
        samples.setdefault(user_class, []).append(ms)
    return samples


def rls_costs(res: Results) -> list[RlsCost]:
    """Every cell of a scenario relying on RLS, against its explicit twin (module docstring)."""
    variants = {v.name: v for v in res.variants}
    costs = []
    for cell in res.cells:
        if cell.explicit is None or cell.variant not in variants:
            continue
        twin_variant = index_twin(res, variants[cell.variant])
        twin = res.cell(cell.explicit, twin_variant) if twin_variant else None
        ratios = []
        if twin is not None:
            theirs = _by_class(twin)
            ratios = [p95_ratio(k, mine, theirs[k]) for k, mine in _by_class(cell).items() if k in theirs]
        costs.append(RlsCost(cell, twin, ratios))
    return costs


def costliest(costs: list[RlsCost]) -> list[RlsCost]:
    """Per SLA class and policy variant, the scenario whose worst class pays the most: what the
    class's promise costs under that form (costs without a twin to compare are left out)."""
    chosen: dict[tuple[str, str], RlsCost] = {}
    for cost in costs:
        worst = cost.worst
        if worst is None:
            continue
        key = (cost.cell.sla_class, cost.cell.variant)
        held = chosen.get(key)
        if held is None or worst.value > (held.worst.value if held.worst else 0.0):
            chosen[key] = cost
    return sorted(chosen.values(), key=lambda c: (c.cell.sla_ms, c.cell.sla_class, c.cell.variant))


def policy_forms(res: Results) -> list[PolicyForm]:
    """Per policy variant, what its RLS cells did and used (``PolicyForm``)."""
    forms = []
    for variant in res.variants:
        if not variant.policies:
            continue
        cells = [c for c in res.cells if c.variant == variant.name and c.explicit is not None]
        forms.append(
            PolicyForm(
                variant=variant,
                compared_with=index_twin(res, variant),
                passed=sum(c.verdict == "pass" for c in cells),
                cells=len(cells),
                indexes=sorted({i for c in cells for i in c.plan.indexes}),
                seq_scans=sorted({t for c in cells for t in c.plan.seq_scans}),
                init_plans=sum(c.plan.init_plans > 0 for c in cells),
                claim_filters=sum(c.plan.claim_filters > 0 for c in cells),
            )
        )
    return forms


def isolation_failures(res: Results) -> list[Cell]:
    """The cells whose isolation check failed: a policy showed or changed another user's rows."""
    return [c for c in res.cells if c.isolation is not None and c.isolation.failed]
