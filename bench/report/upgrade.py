"""An upgrade check's cells as people read them: the terminal lines and the Markdown table (for the
pull request that moves the major, and the report's summary.md), from ``judge.upgrade``'s cells."""

from __future__ import annotations

from typing import Any

from bench.judge.recommend import recommend
from bench.judge.upgrade import (
    RATIO_CONFIDENCE,
    UpgradeCell,
    index_use,
    is_upgrade,
    majors,
    old_run,
    unstable_label,
    unstable_text,
    upgrade_cells,
)
from bench.results import Environment, Quantile, Results

_HEADER = (
    "| scenario | variant | plan on {old} | plan on {new} | new in the plan | buffers | p95 ms | p95 ratio | verdict |"
)


def _ms(q: Quantile | None) -> str:
    return "–" if q is None else f"{q.value:.2f}"


def ratio(cell: UpgradeCell) -> str:
    """ "×1.07 [0.95, 1.21]", or "–" without pairs."""
    r = cell.p95_ratio
    if r is None:
        return "–"
    return f"×{r.value:.2f}" + (f" [{r.low:.2f}, {r.high:.2f}]" if r.low is not None and r.high is not None else "")


def buffers(cell: UpgradeCell) -> str:
    if cell.buffers_from is None or cell.buffers_to is None:
        return "–"
    return f"{cell.buffers_from:.0f} → {cell.buffers_to:.0f}"


def verdict(cell: UpgradeCell) -> str:
    return cell.verdict_to if cell.verdict_from == cell.verdict_to else f"{cell.verdict_from} → {cell.verdict_to}"


def unstable(cell: UpgradeCell, old: Environment, new: Environment) -> str:
    """ "unstable on both majors" (or on one of them) for a plan that flips with ANALYZE's sample; else ""."""
    return unstable_label(cell.unstable_on, old.server, new.server) if cell.unstable_on else ""


def plan_to(cell: UpgradeCell, old: Environment, new: Environment) -> str:
    """The new major's plan as the table shows it: "same", or the plan and, where it flips, on which majors."""
    if not cell.plan_changed:
        return "same"
    flips = unstable(cell, old, new)
    return f"{cell.plan_to} ({flips})" if flips else cell.plan_to


def _order(cell: UpgradeCell) -> tuple[bool, bool, bool]:
    """The upgrade's plan changes first, then plans that flip with the statistics, then verdict changes."""
    return (not cell.upgrade_plan_change, not cell.plan_changed, cell.verdict_from == cell.verdict_to)


def headline(res: Results) -> str:
    old, new = majors(res)
    cells = upgrade_cells(res)
    planned = sum(c.plan_changed for c in cells)
    both = sum(c.unstable_on == "both" for c in cells)
    one = sum(c.unstable_on in ("old", "new") for c in cells)
    flips = [f"{both} of them unstable on both majors"] if both else []
    flips += [f"{one} unstable on one major"] if one else []
    flipped = sum(c.verdict_from != c.verdict_to for c in cells)
    return (
        f"{old.server} → {new.server}: {len(cells)} cells, {planned} planned differently"
        f"{' (' + ', '.join(flips) + ')' if flips else ''}, {flipped} with another "
        f"verdict; p95 ratio new ÷ old of the pairs, {RATIO_CONFIDENCE:.0%} interval"
    )


def terminal(res: Results) -> list[str]:
    """The headline, then a line per cell whose plan or verdict changed."""
    old, new = majors(res)
    lines = [headline(res)]
    for c in upgrade_cells(res):
        if c.plan_changed or c.verdict_from != c.verdict_to:
            plans = f"{old.server}: {c.plan_from}; {new.server}: {c.plan_to if c.plan_changed else 'same'}"
            if c.unstable_on:
                plans += f"; {unstable_text(c.unstable_on, old.server, new.server)}, not the upgrade's"
            lines.append(
                f"  {c.scenario} × {c.variant}: {plans}; buffers {buffers(c)}; "
                f"p95 {_ms(c.p95_from)} → {_ms(c.p95_to)} ms ({ratio(c)}); {verdict(c)}"
            )
    return lines


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(res: Results) -> list[str]:
    """The table of every cell: the upgrade's plan changes first, then plans that flip with the statistics,
    then verdict changes."""
    old, new = majors(res)
    cells = sorted(upgrade_cells(res), key=_order)
    lines = [f"### {headline(res)}", "", _HEADER.format(old=old.server, new=new.server), "|" + " --- |" * 9]
    for c in cells:
        lines.append(
            f"| {c.scenario} | {c.variant} | {_cell(c.plan_from)} | {_cell(plan_to(c, old, new))} "
            f"| {_cell(', '.join(c.new_in_plan)) or '–'} | {buffers(c)} | {_ms(c.p95_from)} → {_ms(c.p95_to)} "
            f"| {ratio(c)} | {verdict(c)} |"
        )
    return lines


def _settings(old: Environment, new: Environment) -> list[str]:
    names = sorted(set(old.settings) | set(new.settings))
    return [
        f"{n} {old.settings.get(n)} → {new.settings.get(n)}"
        for n in names
        if old.settings.get(n) != new.settings.get(n)
    ]


def _features(old: Environment, new: Environment) -> list[str]:
    had = {f.name: f.available for f in old.features}
    return [
        f"{f.name} ({f.use}): {'yes' if had.get(f.name) else 'no'} → {'yes' if f.available else 'no'}"
        for f in new.features
        if had.get(f.name, f.available) != f.available
    ]


def _recommended(res: Results) -> str | None:
    rec = recommend(res)
    return rec.variant.name if rec.variant else None


def view(res: Results) -> dict[str, Any] | None:
    """What the report's upgrade section shows, for an upgrade check's run (None for any other)."""
    if not is_upgrade(res):
        return None
    old, new = majors(res)
    before, after = _recommended(old_run(res)), _recommended(res)
    return {
        "old": old.server,
        "new": new.server,
        "headline": headline(res),
        "cells": sorted(upgrade_cells(res), key=_order),
        "plan_to": lambda c: plan_to(c, old, new),
        "ratio": ratio,
        "buffers": buffers,
        "verdict": verdict,
        "settings": _settings(old, new),
        "features": _features(old, new),
        "recommended": (before, after),
        "index_use": index_use(res),
        "markdown": "\n".join(markdown(res)),
    }
