"""What a variant's indexes cost the app's writes, read from its write cells.

Each write scenario is a cell like any read (client p95 against its SLA), and each of its explained
samples records the WAL the statement wrote before it was rolled back. The WAL is the steadier figure of
the two (the same rows give the same WAL bytes, while latencies move with the machine), so the
trade-off chart and the recommendation rank the write cost by WAL bytes per write statement
against the ``baseline`` variant's.
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import median

from bench.catalogue.options import BASELINE_VARIANT
from bench.results import Cell, Results


@dataclass(frozen=True)
class WriteCost:
    variant: str
    cells: list[Cell]  # the variant's write cells, in catalogue order
    wal_bytes: float  # mean over the write scenarios of the median WAL bytes per statement
    worst_p95_ratio: float  # worst client p95 ÷ SLA over the write scenarios (each cell's deciding class)


def wal_per_statement(cell: Cell) -> float | None:
    """The median WAL bytes of the cell's statements that copied no full page: a checkpoint just
    before a statement adds a page's worth that says nothing of the statement (and a server that
    drops databases checkpoints often). All of them where each one did, or the run did not say."""
    samples = cell.samples
    if not samples.wal_bytes:
        return None
    clean = (
        [b for b, fpi in zip(samples.wal_bytes, samples.wal_fpi, strict=True) if fpi == 0] if samples.wal_fpi else []
    )
    return float(median(clean or samples.wal_bytes))


def write_cost(res: Results, variant: str) -> WriteCost | None:
    """None when the run measured no write scenario under ``variant``."""
    cells = [c for c in res.cells if c.variant == variant and c.kind == "write" and c.samples.wal_bytes]
    if not cells:
        return None
    wal = [w for c in cells if (w := wal_per_statement(c)) is not None]
    return WriteCost(variant, cells, round(sum(wal) / len(wal), 1), max(c.decided_p95 / c.sla_ms for c in cells))


def wal_ratio(res: Results, variant: str) -> float | None:
    """WAL bytes per write statement under ``variant`` ÷ the baseline variant's (None: not measured)."""
    mine, base = write_cost(res, variant), write_cost(res, BASELINE_VARIANT)
    return mine.wal_bytes / base.wal_bytes if mine and base and base.wal_bytes else None
