"""The Pareto front over what an index set buys and costs: worst p95 ÷ SLA, index bytes, WAL per
write and build seconds, every one to be minimised."""

from __future__ import annotations

from collections.abc import Sequence

from bench.advise.model import Point


def _figures(point: Point) -> tuple[float, float, float, float]:
    return (point.worst_ratio, float(point.index_bytes), point.wal_per_write or 0.0, point.build_seconds)


def dominates(a: Point, b: Point) -> bool:
    """``a`` is at least as good as ``b`` on every figure and better on one."""
    fa, fb = _figures(a), _figures(b)
    return all(x <= y for x, y in zip(fa, fb, strict=True)) and fa != fb


def mark_front(points: Sequence[Point]) -> list[Point]:
    """The points, each marked whether it is on the front."""
    return [p.model_copy(update={"front": not any(dominates(q, p) for q in points)}) for p in points]
