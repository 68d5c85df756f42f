"""The gates' settings, as the command line sets them: the deterministic gates' thresholds
(``GateThresholds``), the time gate's (``TimeThresholds``) and the pairs an upgrade check
takes.

Standard library only: ``taskbench compare``, ``check`` and ``upgrade-check`` read their option
defaults from here as they start, before they import the gates (``gates``, ``upgrade``)."""

from __future__ import annotations

from dataclasses import dataclass

UPGRADE_PAIRS = 100  # pairs per cell an upgrade check takes: enough for every p95 to have its interval


@dataclass(frozen=True)
class GateThresholds:
    buffer_tolerance: float = 0.10  # relative rise in median buffers per query
    buffer_floor: int = 2  # ... and at least this many buffers (a 1 → 2 rise is no news)
    misestimate_growth: float = 2.0  # a node's q-error at least doubled ...
    misestimate_floor: float = 10.0  # ... and now at least this (PEV2's first badge)
    rows_removed_growth: float = 0.5  # rows removed by filters rose by half ...
    rows_removed_floor: float = 100.0  # ... and by at least this many rows per execution


@dataclass(frozen=True)
class TimeThresholds:
    factor: float = 1.2  # median paired ratio head ÷ base that counts as slower
    alpha: float = 0.01  # false alarms of a whole check, at most (split over its cells)
    floor_ms: float = 0.05  # median paired difference below which nothing counts
