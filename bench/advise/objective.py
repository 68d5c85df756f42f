"""What "cheapest" means: one number per index set, a weighted sum of what the set costs beyond the
baseline schema, every term measured.

The unit is what one megabyte of index costs; the default weights say what else is worth as much:

- 1 MB of index (disk, shared buffers, backups, replicas carry it);
- 50 bytes more WAL per write statement (mean over the write scenarios of the median per statement:
  replication, archiving and checkpoints carry every byte of it, on every write, for ever);
- 0.1 ms more on the write scenarios' p95 (mean over them): what the app's writes feel;
- 2 seconds of build time (paid once per deploy, and again on every rebuild).

WAL is weighted above latency because it is the steadier figure of the two (the same rows give the
same bytes, while a write's p95 moves with the machine by more than one index adds).
"""

from __future__ import annotations

from dataclasses import dataclass
from statistics import mean

from bench.advise.options import Objective
from bench.judge.writecost import wal_per_statement
from bench.results import Cell


@dataclass(frozen=True)
class Costs:
    """What an index set costs, measured (``None`` where the set had no write cell measured)."""

    index_bytes: int
    build_seconds: float
    wal_per_write: float | None
    write_p95_ms: float | None

    def value(self, objective: Objective, base: Costs) -> float:
        """The objective: this set's cost beyond ``base`` (the baseline schema's), weighted.
        Write terms below the baseline's count as zero: an index cannot make writes cheaper, so
        a lower figure is the machine's noise, not a credit."""
        wal = max((self.wal_per_write or 0.0) - (base.wal_per_write or 0.0), 0.0)
        write_ms = max((self.write_p95_ms or 0.0) - (base.write_p95_ms or 0.0), 0.0)
        return (
            objective.per_mb * self.index_bytes / 1e6
            + objective.per_wal_byte * wal
            + objective.per_write_ms * write_ms
            + objective.per_build_s * self.build_seconds
        )


def write_figures(cells: list[Cell]) -> tuple[float | None, float | None]:
    """WAL bytes per write statement and write p95 (ms), each the mean over the write cells given."""
    writes = [c for c in cells if c.kind == "write"]
    wal = [w for c in writes if (w := wal_per_statement(c)) is not None]
    return (mean(wal) if wal else None, mean(c.client.p95.value for c in writes) if writes else None)
