"""What to ship: the cheapest variant that meets every SLA, and how to adopt it in the models.

"Cheapest" is by total index size, then by write cost (WAL bytes per write statement against the
baseline variant's, from the write scenarios): the two costs a team pays for an index every day.
A variant meets every SLA when every one of its cells passed (an inconclusive cell is not a
proven pass) and it measured every scenario the app sends with its own user filter: a variant with
policies measured under the policy scope "relying" ran the scenarios relying on them only, and the
app would send the others under its policies too, unmeasured. Where no variant does, the answer
is which scenarios fail under every variant, by how much at best, and which variant comes closest.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bench.catalogue.sql import parse_index
from bench.judge.writecost import wal_ratio
from bench.results import Cell, Results, VariantResult


@dataclass
class Shortfall:
    scenario: str
    sla_ms: float
    best_p95_ms: float
    best_variant: str

    @property
    def over_by(self) -> float:
        return self.best_p95_ms / self.sla_ms


@dataclass
class Recommendation:
    variant: VariantResult | None  # None: no variant meets every SLA
    closest: VariantResult | None = None  # most cells passing, when none meets all
    shortfalls: list[Shortfall] = field(default_factory=list)  # scenarios failing under every variant
    table_args: dict[str, str] = field(default_factory=dict)  # table -> SQLModel __table_args__ source
    server: str = ""  # the server it holds for ("PostgreSQL 18.6"): another major may plan otherwise


def table_args(variant: VariantResult) -> dict[str, str]:
    """Per table, the ``__table_args__`` entries that create the variant's indexes from the models."""
    per_table: dict[str, list[str]] = {}
    for index in map(parse_index, variant.statements):
        per_table.setdefault(index.table, []).append(index.sqlalchemy())
    return {
        table: "__table_args__ = (\n" + "".join(f"    {c},\n" for c in constructs) + ")"
        for table, constructs in per_table.items()
    }


def _cost_key(res: Results, variant: VariantResult) -> tuple[float, float]:
    """Index size, then the write cost as the trade-off chart shows it (1.0 where not measured)."""
    return (variant.index_size_bytes, wal_ratio(res, variant.name) or 1.0)


def _cells(res: Results, variant: str) -> list[Cell]:
    return [c for c in res.cells if c.variant == variant]


def _complete(res: Results, variant: str) -> bool:
    """``variant`` measured every scenario the run measured with its own user filter (module docstring)."""
    explicit = {c.scenario for c in res.cells if c.explicit is None}
    return explicit <= {c.scenario for c in _cells(res, variant)}


def recommend(res: Results) -> Recommendation:
    meeting = [
        v
        for v in res.variants
        if _cells(res, v.name) and _complete(res, v.name) and all(c.verdict == "pass" for c in _cells(res, v.name))
    ]
    if meeting:
        best = min(meeting, key=lambda v: _cost_key(res, v))
        return Recommendation(variant=best, table_args=table_args(best), server=res.environment.server)
    closest = max(
        res.variants,
        key=lambda v: (sum(c.verdict == "pass" for c in _cells(res, v.name)), [-x for x in _cost_key(res, v)]),
    )
    shortfalls = []
    for scenario in dict.fromkeys(c.scenario for c in res.cells):
        cells = [c for c in res.cells if c.scenario == scenario]
        if all(c.verdict != "pass" for c in cells):
            best_cell = min(cells, key=lambda c: c.client.p95.value)
            shortfalls.append(Shortfall(scenario, best_cell.sla_ms, best_cell.client.p95.value, best_cell.variant))
    return Recommendation(
        variant=None,
        closest=closest,
        shortfalls=shortfalls,
        table_args=table_args(closest),
        server=res.environment.server,
    )
