"""The report's figures, from ``Results`` alone. Every latency axis shows the SLA, and pass / fail
is told by hatching, markers and text as well as colour (readable in greyscale and by the
colour-blind)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.collections import LineCollection, PolyCollection
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import LogFormatter

from bench.judge.writecost import wal_ratio
from bench.results import Cell, Results

_HATCH = {"pass": "", "fail": "xxx", "borderline": "///", "inconclusive": "..."}
_MARK = {"pass": "✓", "fail": "✗", "borderline": "≈", "inconclusive": "?"}


def _save(fig: Figure, path: Path) -> Path:
    # zlib's fastest level: the default matrix's three figures saved in 3.9 s instead of 5.4 s, the
    # files 13% larger (1.44 against 1.27 MB); the pixels are the same
    # tight_layout leaves a placeholder engine behind, for which savefig lays every artist out once
    # more before drawing it (text extents, ticks): the layout is done, so the figure drops it
    fig.set_layout_engine(None)
    fig.savefig(path, dpi=110, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    return path


class _Plain(LogFormatter):
    """The ticks a log axis labels by default (every decade; the others too where it spans few), each
    as a plain number ("0.1", "20"), as milliseconds and ratios are read: the default writes 10^-1 in
    mathtext, whose parsing took 15% of drawing a report's figures."""

    def __call__(self, x: float, pos: int | None = None) -> str:
        return f"{x:g}" if super().__call__(x, pos) else ""


def _log(*axes: Axis) -> None:
    """Each axis on a log scale, labelled by ``_Plain``."""
    for axis in axes:
        (axis.axes.set_xscale if axis is axis.axes.xaxis else axis.axes.set_yscale)("log")
        axis.set_major_formatter(_Plain())
        axis.set_minor_formatter(_Plain())


def _order(res: Results) -> tuple[list[str], list[str]]:
    scenarios = sorted(
        dict.fromkeys(c.scenario for c in res.cells),
        key=lambda s: (next(c.sla_ms for c in res.cells if c.scenario == s), s),
    )
    return scenarios, [v.name for v in res.variants]


@dataclass
class _Boxes:
    """Horizontal box plots (box p25–p75, median, whiskers and caps at p5 and p95) drawn as a few
    collections per axes: matplotlib's ``boxplot`` makes seven artists for each box, and the default
    matrix's 330 boxes took 3 s to make and as long again to draw."""

    shapes: dict[tuple[Any, str], list[list[tuple[float, float]]]] = field(default_factory=dict)
    whiskers: list[list[tuple[float, float]]] = field(default_factory=list)
    medians: list[list[tuple[float, float]]] = field(default_factory=list)

    def add(self, values: list[float], y: float, height: float, look: tuple[Any, str]) -> None:
        p5, p25, p50, p75, p95 = np.percentile(values, [5, 25, 50, 75, 95])
        low, high, cap = y - height / 2, y + height / 2, height / 4
        self.shapes.setdefault(look, []).append([(p25, low), (p75, low), (p75, high), (p25, high)])
        self.whiskers += [[(p5, y), (p25, y)], [(p75, y), (p95, y)]]  # then the caps
        self.whiskers += [[(x, y - cap), (x, y + cap)] for x in (p5, p95)]
        self.medians.append([(p50, low), (p50, high)])

    def draw(self, ax: Axes) -> None:
        for (colour, hatch), shapes in self.shapes.items():
            ax.add_collection(
                PolyCollection(shapes, facecolors=colour, edgecolors="black", linewidths=1.0, alpha=0.8, hatch=hatch)
            )
        ax.add_collection(LineCollection(self.whiskers, colors="black", linewidths=1.0))
        ax.add_collection(LineCollection(self.medians, colors="C1", linewidths=1.0))
        ax.autoscale_view()


def latency(res: Results, path: Path) -> Path:
    """Per SLA class, box plots of client latency per scenario × variant, with the SLA line."""
    classes = sorted(
        dict.fromkeys(c.sla_class for c in res.cells),
        key=lambda k: next(c.sla_ms for c in res.cells if c.sla_class == k),
    )
    variants = [v.name for v in res.variants]
    heights = [len({c.scenario for c in res.cells if c.sla_class == k}) for k in classes]
    fig, axes = plt.subplots(
        len(classes),
        1,
        figsize=(13, 1.4 * sum(heights) + 1.6 * len(classes)),
        squeeze=False,
        gridspec_kw={"height_ratios": heights},
    )
    colours = plt.get_cmap("tab20")
    for ax, cls in zip(axes[:, 0], classes, strict=True):
        cells = [c for c in res.cells if c.sla_class == cls]
        scenarios = sorted(dict.fromkeys(c.scenario for c in cells))
        width = 0.8 / max(len(variants), 1)
        boxes = _Boxes()
        for vi, variant in enumerate(variants):
            for si, scenario in enumerate(scenarios):
                cell = res.cell(scenario, variant)
                if cell is not None and cell.samples.client_ms:
                    # legend order, top to bottom
                    y = si - (vi - (len(variants) - 1) / 2) * width
                    boxes.add(cell.samples.client_ms, y, width * 0.85, (colours(vi % 20), _HATCH[cell.verdict]))
        boxes.draw(ax)
        ax.set_ylim(-0.6, len(scenarios) - 0.4)
        sla = cells[0].sla_ms
        ax.axvline(sla, color="crimson", linestyle="--", linewidth=1.6)
        ax.text(sla, len(scenarios) - 0.45, f" SLA {sla:.0f} ms", color="crimson", va="top", fontsize=9)
        _log(ax.xaxis)
        ax.set_yticks(range(len(scenarios)), scenarios, fontsize=9)
        ax.set_xlabel("client round trip (ms, log scale)")
        ax.set_title(
            f"{cls}: SLA {sla:.0f} ms — boxes p25–p75, whiskers p5–p95; hatched xxx = fails, "
            "/// = borderline, dotted = inconclusive",
            fontsize=10,
        )
        ax.grid(axis="x", alpha=0.3, which="both")
    handles = [Rectangle((0, 0), 1, 1, color=colours(i % 20), alpha=0.8) for i in range(len(variants))]
    columns = min(len(variants), 6)
    fig.legend(handles, variants, loc="upper center", ncols=columns, fontsize=9)
    # the legend's own height kept free at the top (5% of the figure, 2.8 inches over 16 variants, left 2 blank)
    rows = math.ceil(len(variants) / max(columns, 1))
    fig.tight_layout(rect=(0, 0, 1, 1 - (0.25 + 0.22 * rows) / fig.get_figheight()))
    return _save(fig, path)


def heatmap(res: Results, path: Path) -> Path:
    """Scenario × variant, colour = client p95 ÷ SLA of the class that decided the cell (log scale,
    white at 1), with the ratio, a ✓ / ✗ / ? mark and that class written in every cell."""
    scenarios, variants = _order(res)
    ratios = [[_ratio(res.cell(s, v)) for v in variants] for s in scenarios]
    logs = [[math.log10(r) if r else math.nan for r in row] for row in ratios]
    finite = [x for row in logs for x in row if not math.isnan(x)] or [0.0]
    span = max(abs(min(finite)), abs(max(finite)), 0.5)
    fig, ax = plt.subplots(figsize=(1.35 * len(variants) + 3.5, 0.42 * len(scenarios) + 2.2))
    image = ax.imshow(logs, cmap="RdYlGn_r", norm=TwoSlopeNorm(vmin=-span, vcenter=0.0, vmax=span), aspect="auto")
    for i, s in enumerate(scenarios):
        for j, v in enumerate(variants):
            cell, r = res.cell(s, v), ratios[i][j]
            if cell is not None and r is not None:
                # Which class decided, where there are several: "✗ power" is a fail the power users made.
                who = f" {cell.decided_by}" if len(cell.classes) > 1 else ""
                ax.text(j, i, f"{r:.2g} {_MARK[cell.verdict]}{who}", ha="center", va="center", fontsize=7)
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right", fontsize=9)
    ax.set_yticks(
        range(len(scenarios)),
        [f"{s} ({first.sla_ms:.0f} ms)" if (first := res.cell(s, variants[0])) else s for s in scenarios],
        fontsize=9,
    )
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    ticks = [t for t in (-3, -2, -1, 0, 1, 2, 3) if -span <= t <= span]
    bar.set_ticks(ticks, labels=[f"{10**t:g}×" for t in ticks])
    bar.set_label("client p95 ÷ SLA (log)")
    ax.set_title(
        "p95 ÷ SLA of the class that decided each cell, named beside the verdict\n"
        "(< 1 meets the SLA; ✓ pass: the last class to pass, ✗ fail: the first to fail, ≈ borderline, ? inconclusive)",
        fontsize=10,
    )
    fig.tight_layout()
    return _save(fig, path)


def _ratio(cell: Cell | None) -> float | None:
    return cell.decided_p95 / cell.sla_ms if cell else None


@dataclass
class _Point:
    variant: str
    size_mb: float
    wal_ratio: float | None  # WAL bytes per write statement against the baseline variant's
    worst: float  # worst client p95 ÷ SLA over the variant's cells (each cell's deciding class)
    passed: int
    cells: int


def _points(res: Results) -> list[_Point]:
    points = []
    for v in res.variants:
        cells = [c for c in res.cells if c.variant == v.name]
        if cells:
            points.append(
                _Point(
                    v.name,
                    v.index_size_bytes / 1e6,
                    wal_ratio(res, v.name),
                    max(c.decided_p95 / c.sla_ms for c in cells),
                    sum(c.verdict == "pass" for c in cells),
                    len(cells),
                )
            )
    return points


def tradeoff(res: Results, path: Path) -> Path:
    """One point per variant: its worst p95 ÷ SLA against index size and against write tax.
    Filled circles meet every SLA; the dotted line is the Pareto front (nothing cheaper is faster)."""
    points = _points(res)
    fig, axes = plt.subplots(1, 2, figsize=(14, 5.5))
    labels: list[list[Any]] = []
    costs: list[tuple[Axes, str, Callable[[_Point], float | None]]] = [
        (axes[0], "total index size (MB)", lambda p: p.size_mb),
        (axes[1], "write cost: WAL bytes per write statement ÷ baseline's", lambda p: p.wal_ratio),
    ]
    for ax, label, cost in costs:
        shown = [(p, x) for p in points if (x := cost(p)) is not None]
        labels.append([])
        for rank, (p, x) in enumerate(sorted(shown, key=lambda px: (px[0].worst, px[1]))):
            meets = p.passed == p.cells
            ax.scatter(
                [x],
                [p.worst],
                s=70,
                marker="o" if meets else "s",
                facecolors="tab:green" if meets else "none",
                edgecolors="tab:green" if meets else "tab:red",
                linewidths=1.8,
                zorder=3,
            )
            labels[-1].append(
                ax.annotate(
                    f"{p.variant} ({p.passed}/{p.cells})",
                    (x, p.worst),
                    textcoords="offset points",
                    xytext=(7, 5 if rank % 2 else -11),
                    fontsize=8,
                    arrowprops={"arrowstyle": "-", "color": "grey", "linewidth": 0.6, "shrinkA": 0, "shrinkB": 5},
                )
            )
        front = _pareto([(x, p.worst) for p, x in shown])
        if len(front) > 1:
            ax.plot(*zip(*front, strict=True), color="grey", linestyle=":", zorder=2)
        if not shown:
            ax.text(0.5, 0.5, "not measured (no write scenario in the run)", ha="center", transform=ax.transAxes)
        ax.axhline(1.0, color="crimson", linestyle="--", linewidth=1.4, label="SLA (p95 = SLA)")
        _log(ax.yaxis)
        ax.set_xlabel(label)
        ax.set_ylabel("worst client p95 ÷ SLA over all scenarios (log)")
        ax.legend(loc="lower left", fontsize=8)
        ax.grid(alpha=0.3, which="both")
    fig.suptitle(
        "Trade-off per variant — filled circle: meets every SLA; hollow square: does not "
        "(passing cells / all cells); dotted: Pareto front",
        fontsize=10,
    )
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    for texts in labels:
        _spread(fig, texts)
    return _save(fig, path)


def _spread(fig: Any, texts: list[Any]) -> None:
    """Move a label down, a step at a time, while it overlaps one already placed: variants with
    near-equal cost and latency would otherwise print their names over each other."""
    renderer = fig.canvas.get_renderer()
    placed: list[Any] = []
    for text in texts:
        for _ in range(6):
            box = text.get_window_extent(renderer)
            if not any(box.overlaps(other) for other in placed):
                break
            x, y = text.xyann
            text.xyann = (x, y - 9)
        placed.append(text.get_window_extent(renderer))


def _pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points no other point beats on both cost (x) and latency (y), by increasing cost."""
    front: list[tuple[float, float]] = []
    for x, y in sorted(points):
        if not front or y < front[-1][1]:
            front.append((x, y))
    return front


_VERDICT_MARKER = {"pass": "o", "fail": "X", "borderline": "D", "inconclusive": "s"}


def scale_curves(res: Results, path: Path) -> Path:
    """Per scenario, a row of two panels against tasks per user (log-log), a line per variant:
    client p95 — markers say the verdict at each size (● pass, ✕ fail, ◆ borderline, ■ inconclusive; hollow
    where it fails), the SLA is the dashed line, a dotted tail runs to the estimated crossing when
    it is extrapolated — and the buffers each execution touches, the machine-independent cost."""
    assert res.scale is not None
    scale = res.scale
    scenarios = list(dict.fromkeys(p.scenario for p in scale.points))
    variants = list(dict.fromkeys(p.variant for p in scale.points))
    fig, axes = plt.subplots(len(scenarios), 2, figsize=(13, 3.8 * len(scenarios) + 0.9), squeeze=False)
    colours = plt.get_cmap("tab10")
    styles = ["-", "--", "-.", ":"]
    for (ax, bx), scenario in zip(axes, scenarios, strict=True):
        for vi, variant in enumerate(variants):
            series = sorted(
                (p for p in scale.points if p.scenario == scenario and p.variant == variant),
                key=lambda p: p.tasks_per_user,
            )
            if not series:
                continue
            xs, ys = [p.tasks_per_user for p in series], [p.p95_ms for p in series]
            look = {"color": colours(vi % 10), "linewidth": 1.6}
            ax.plot(xs, ys, styles[vi % 4], label=variant, **look)
            counted = [p for p in series if p.buffers is not None]  # a point that timed out has none
            bx.plot(
                [p.tasks_per_user for p in counted],
                [max(p.buffers or 0.0, 0.5) for p in counted],
                styles[vi % 4],
                marker="o",
                markersize=5,
                **look,
            )
            for p in series:
                ax.plot(
                    p.tasks_per_user,
                    p.p95_ms,
                    _VERDICT_MARKER[p.verdict],
                    color=colours(vi % 10),
                    markersize=8,
                    markerfacecolor="white" if p.verdict == "fail" else colours(vi % 10),
                )
            fit = next((f for f in scale.fits if f.scenario == scenario and f.variant == variant), None)
            if fit and fit.crossing == "extrapolated" and fit.crossing_tasks_per_user:
                ax.plot([xs[-1], fit.crossing_tasks_per_user], [ys[-1], fit.sla_ms], ":", color=colours(vi % 10))
                ax.plot(fit.crossing_tasks_per_user, fit.sla_ms, "*", color=colours(vi % 10), markersize=11)
        sla = next(f.sla_ms for f in scale.fits if f.scenario == scenario)
        ax.axhline(sla, color="crimson", linestyle="--", linewidth=1.4)
        ax.text(
            0.01, sla, f"SLA {sla:.0f} ms", color="crimson", va="bottom", fontsize=9, transform=ax.get_yaxis_transform()
        )
        ax.set_title(f"{scenario}: client p95", fontsize=11)
        ax.set_ylabel("client p95 (ms, log)")
        bx.set_title(f"{scenario}: shared buffers per execution", fontsize=11)
        bx.set_ylabel("buffers hit + read (log)")
        for a in (ax, bx):
            _log(a.xaxis, a.yaxis)
            a.set_xlabel("tasks per user (log)")
            a.grid(alpha=0.3, which="both")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncols=min(len(variants), 5), fontsize=9)
    fig.suptitle(
        "How cost grows with data: ● pass  ✕ fail (hollow)  ◆ borderline  ■ inconclusive; ★ = estimated SLA crossing",
        y=0.005,
        va="bottom",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.02, 1, 1 - 0.5 / fig.get_figheight()))
    return _save(fig, path)


def load_latency(res: Results, path: Path) -> Path:
    """Under load: p50 / p95 / p99 per scenario against its SLA, with the share of requests over it."""
    assert res.load is not None
    rows = [s for s in res.load.scenarios if s.latency]
    fig, ax = plt.subplots(figsize=(11, 0.55 * len(rows) + 1.8))
    for i, s in enumerate(rows):
        q = s.latency
        assert q is not None  # rows are the scenarios with a latency
        over = s.over_sla > 0.05
        ax.plot([q.p50.value, q.p99.value], [i, i], color="0.4", linewidth=2)
        ax.plot(q.p50.value, i, "o", color="tab:blue", markersize=7)
        ax.plot(
            q.p95.value,
            i,
            "D",
            color="tab:red" if over else "tab:green",
            markersize=8,
            markerfacecolor="white" if over else None,
        )
        ax.plot(q.p99.value, i, "|", color="black", markersize=14)
        ax.plot(s.sla_ms, i, "v", color="crimson", markersize=9)
        ax.text(max(q.p99.value, s.sla_ms) * 1.15, i, f"{s.over_sla:.1%} over SLA", va="center", fontsize=9)
    ax.set_yticks(range(len(rows)), [s.scenario for s in rows], fontsize=9)
    _log(ax.xaxis)
    ax.set_xlabel("latency under load (ms, log): ● p50  ◆ p95 (hollow: >5% over SLA)  | p99   ▼ SLA")
    rate = f"{res.load.rate:g}/s" if res.load.rate else "closed loop"
    ax.set_title(
        f"{res.load.clients} clients, {rate}, variant {res.load.variant}: {res.load.throughput:,.0f} requests/s",
        fontsize=10,
    )
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.set_xlim(right=ax.get_xlim()[1] * 4)
    fig.tight_layout()
    return _save(fig, path)
