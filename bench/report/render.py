"""A comparison as people and CI read it: terminal lines, a Markdown summary (for a pull request or
``$GITHUB_STEP_SUMMARY``) and GitHub annotations — three renderings of one ``Comparison``, here
and nowhere else. Each function returns lines; the caller prints or writes them.
"""

# No `from __future__ import annotations` here: the name would stand for it, not for annotations()
# below, to a type checker. Every annotation in this module is a name already imported.
import html
import os
from dataclasses import dataclass
from pathlib import Path

from bench.judge.compare import Comparison
from bench.judge.gates import PLAN_KINDS, Finding
from bench.report.plans import PlanPair, diff_anchor, diff_lines, side_diffs
from bench.results import Results


@dataclass(frozen=True)
class ReportLink:
    """A check's report (index.html), for its Markdown summary: where it is, and the base and head
    plans of each cell the base side measured for itself (scenario, variant → the plans' diff)."""

    shown: str  # its path as a reader finds it (relative to where the check ran; in CI, in the run's artifact)
    href: str  # its path as a link from where the summary is written
    plans: dict[tuple[str, str], list[PlanPair]]

    @staticmethod
    def to(report: Path, run: Results, summary: Path) -> "ReportLink":
        """``report`` of the check's ``run`` seen from the working directory, linked from ``summary``'s directory."""
        where = report.resolve()
        base = run.side_by_side.base_cells if run.side_by_side else []
        diffs = side_diffs(base, {(c.scenario, c.variant): c for c in run.cells})
        seen = Path(os.path.relpath(where))
        return ReportLink(
            (where if seen.parts[:1] == ("..",) else seen).as_posix(),  # outside the working directory: in full
            Path(os.path.relpath(where, summary.resolve().parent)).as_posix(),
            {(d.head.scenario, d.head.variant): d.pairs for d in diffs},
        )


_SECTIONS = (
    ("Regressions", "regression"),
    ("Improvements", "improvement"),
    ("Changes (neither better nor worse by themselves)", "change"),
)


def _by_direction(cmp: Comparison, direction: str) -> list[Finding]:
    return [f for f in cmp.findings if f.direction == direction]


def headline(cmp: Comparison, base_id: str, cur_id: str) -> str:
    if cmp.incomparable:
        return f"cannot judge {base_id} → {cur_id}: the runs are not comparable"
    return (
        f"{base_id} → {cur_id}: {len(cmp.regressions)} regression(s), {len(cmp.improvements)} improvement(s), "
        f"{len(cmp.changes)} change(s)"
    )


def _time_line(cmp: Comparison) -> str:
    if cmp.time_refused:
        return f"time: cannot judge (exit 2): {cmp.time_refused}"
    return f"time: {cmp.time}"


def _line(f: Finding) -> str:
    return f"{f.scenario} × {f.variant} [{f.kind.value}] {f.message}"


def terminal(cmp: Comparison, base_id: str, cur_id: str) -> list[str]:
    lines = [headline(cmp, base_id, cur_id)]
    if cmp.incomparable:
        return lines + [f"  - {reason}" for reason in cmp.incomparable]
    lines.append(_time_line(cmp))
    lines += [f"note: {note}" for note in cmp.notes]
    for title, direction in _SECTIONS:
        items = _by_direction(cmp, direction)
        if items:
            lines.append(f"{title}:")
            lines += [f"  {_line(f)}" for f in items]
    if cmp.drift_line:
        lines.append(cmp.drift_line)
        lines += [f"  {_line(f)} ({f.direction})" for f in cmp.drift]
    return lines


def markdown(cmp: Comparison, base_id: str, cur_id: str, report: ReportLink | None = None) -> list[str]:
    lines = [f"## taskbench: {base_id} → {cur_id}", ""]
    if cmp.incomparable:
        lines.append("**Cannot judge** — the runs are not comparable:")
        return lines + [f"- {r}" for r in cmp.incomparable] + [""]
    lines += [
        f"**{len(cmp.regressions)} regression(s)**, {len(cmp.improvements)} improvement(s), "
        f"{len(cmp.changes)} change(s).",
        "",
        f"**{_time_line(cmp)}**" if cmp.time_refused else _time_line(cmp).capitalize(),
    ]
    lines += [f"- {note}" for note in cmp.notes]
    for title, direction in _SECTIONS:
        items = _by_direction(cmp, direction)
        if items:
            lines += ["", f"### {title}", "", *_table(items)]
    if report:
        lines += _plan_links(cmp, report)
    if cmp.drift_line:
        lines += ["", "### Drift since the baseline (shown, not judged)", "", cmp.drift_line]
        if cmp.drift:
            lines += ["", *_table(cmp.drift)]
    return lines + [""]


def _plan_links(cmp: Comparison, report: ReportLink) -> list[str]:
    """A link to the base and head plans of every cell with a plan finding, in the check's report."""
    cells: dict[tuple[str, str], list[str]] = {}
    for f in cmp.findings:
        if f.kind in PLAN_KINDS:
            cells.setdefault((f.scenario, f.variant), []).append(f.kind.value)
    if not cells:
        return []
    lines = ["", "### Plans, base against head", "", f"Node by node, in the check's report `{report.shown}`:", ""]
    for (scenario, variant), kinds in cells.items():
        lines.append(f"- [{scenario} × {variant}]({report.href}#{diff_anchor(scenario, variant)}): {', '.join(kinds)}")
        pairs = report.plans.get((scenario, variant))
        if pairs:
            lines += _folded(f"{scenario} × {variant}: base (−) against head (+)", diff_lines(pairs))
    return lines


def _folded(title: str, text: list[str]) -> list[str]:
    """``text`` as a folded ``diff`` code block under ``title``, its fence longer than any run of
    backticks in it: a plan's text is the server's and may hold some."""
    longest = run = 0
    for char in "\n".join(text):
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return [
        "",
        f"<details><summary>{html.escape(title)}</summary>",
        "",
        f"{fence}diff",
        *text,
        fence,
        "",
        "</details>",
        "",
    ]


def _table(items: list[Finding]) -> list[str]:
    rows = [f"| {f.scenario} | {f.variant} | {f.kind.value} | {f.direction} | {f.message} |" for f in items]
    return ["| scenario | variant | gate | direction | what changed |", "|---|---|---|---|---|", *rows]


def _clean(text: str) -> str:
    """Workflow commands end at a newline; % must be escaped."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def annotations(cmp: Comparison) -> list[str]:
    """GitHub Actions workflow commands: one error per regression, one for a gate that could not judge."""
    if cmp.incomparable:
        return [f"::error title=taskbench: cannot judge::{_clean('; '.join(cmp.incomparable))}"]
    refused = [f"::error title=taskbench: cannot judge time::{_clean(cmp.time_refused)}"] if cmp.time_refused else []
    return refused + [
        f"::error title=taskbench {f.kind.value} regression::{_clean(f'{f.scenario} × {f.variant}: {f.message}')}"
        for f in cmp.regressions
    ]
