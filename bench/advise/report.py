"""The advise report: ``advise.md`` and ``advise.html`` (self-contained: the Pareto figure is inline
SVG) in the run's directory, from ``advice.json`` and the final run's ``results.json``. One view
feeds both templates, as in ``bench.report``, whose number formats it reuses."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment

from bench import output
from bench.advise.model import Advice, CandidateInfo
from bench.advise.ship import VARIANT_NAME
from bench.report.build import conditions, ms, size, template_environment
from bench.results import Results


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def pareto_svg(advice: Advice) -> str:
    """Worst p95 ÷ SLA against index size, every measured set; the front marked, contenders named."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    named = {c.variant for c in advice.contenders}
    for front, colour, label in ((False, "#bbbbbb", "measured set"), (True, "#1f77b4", "Pareto front")):
        points = [p for p in advice.pareto if p.front is front]
        ax.scatter(
            [p.index_bytes / 1e6 for p in points],
            [p.worst_ratio for p in points],
            c=colour,
            label=label,
            s=[30 + (p.wal_per_write or 0) / 20 for p in points],
            edgecolors="black",
            linewidths=0.4,
        )
    for p in advice.pareto:
        if p.label in named:
            ax.annotate(
                p.label, (p.index_bytes / 1e6, p.worst_ratio), textcoords="offset points", xytext=(5, 5), fontsize=8
            )
    ax.axhline(1.0, color="#d62728", linestyle="--", linewidth=1)
    ax.axhline(1.0 / advice.settings.headroom, color="#ff7f0e", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    ax.set_xlabel("index size (MB)")
    ax.set_ylabel("worst p95 ÷ SLA (log)")
    ax.set_title("Index sets measured: what they cost and the slowest scenario (marker area: WAL per write)")
    ax.legend(loc="upper right", fontsize=8)
    fig.tight_layout()
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg")
    plt.close(fig)
    svg = buffer.getvalue()
    return svg[svg.index("<svg") :]


def _view(advice: Advice, res: Results) -> dict[str, Any]:
    by_name: dict[str, CandidateInfo] = {c.name: c for c in advice.candidates}
    hypo = [c for c in advice.candidates if c.hypo is not None]
    return {
        "a": advice,
        "res": res,
        "env": res.environment,
        "candidates": by_name,
        "conditions": conditions(res),
        "advised": [by_name[n] for n in advice.advised],
        "contenders": advice.contenders,
        "front": [p for p in advice.pareto if p.front],
        "hypo": hypo,
        "screened": [c for c in advice.candidates if c.screened],
        "served": [c for c in advice.candidates if c.serves],
    }


@cache  # compiled once a process
def _templates() -> Environment:
    env = template_environment("bench.advise")
    env.filters.update(ms=ms, size=size, ratio=_ratio)
    return env


def write_report(run_dir: Path, advice: Advice, res: Results) -> list[Path]:
    view = _view(advice, res)
    templates = _templates()
    markdown = output.write_text(run_dir / "advise.md", templates.get_template("advise.md.j2").render(**view))
    page = templates.get_template("advise.html.j2").render(**view, figure=pareto_svg(advice))
    html = output.write_text(run_dir / "advise.html", page)
    return [markdown, html]


def terminal(advice: Advice, run_dir: Path) -> list[str]:
    """The advised set in a few lines, its statements and the files written."""
    mine = next(c for c in advice.contenders if c.variant == VARIANT_NAME)
    held = f" under the policies of {advice.policy.variant}" if advice.policy else ""
    return [
        f"advised {len(advice.advised)} indexes{held} ({mine.costs.index_bytes / 1e6:.1f} MB, "
        f"{mine.costs.wal_per_write or 0:.0f} B WAL per write, worst p95 ÷ SLA {mine.worst_ratio:.2f}) after "
        f"{advice.real_builds} real builds in {advice.seconds['total']:.0f} s",
        *(f"  {statement}" for statement in advice.advised_ddl),
        *(str(path) for path in (run_dir / "advise.md", run_dir / "advise.html", *map(Path, advice.shipped.values()))),
    ]
