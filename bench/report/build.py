"""Turn a ``results.json`` into the report a team decides from: ``index.html`` (self-contained:
the figures are embedded, it opens from disk with no network), ``summary.md``, ``results.csv``
and the PNG figures. Reads nothing but the results file.

One view of the results (``_view``) feeds both templates, so the HTML and the Markdown always
say the same thing.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from statistics import median
from typing import Any

import pandas as pd
from jinja2 import Environment, PackageLoader, select_autoescape

from bench import output
from bench import results as results_io
from bench.catalogue.options import BASELINE_VARIANT
from bench.judge.compare import variant_result_mismatches
from bench.judge.recommend import recommend
from bench.judge.rls import RATIO_CONFIDENCE, costliest, isolation_failures, policy_forms, rls_costs
from bench.judge.timegate import DEFAULT_TIME
from bench.judge.twins import TwinPair, twin_pairs
from bench.judge.writecost import wal_per_statement, wal_ratio, write_cost
from bench.measure.plancache import SLOWER_LEVEL
from bench.report import plans, plots, upgrade
from bench.results import ORDER_STATISTIC, Cell, Conditions, Quantile, Results, ScaleFit

# name -> (draw, whether the results hold what it shows)
FIGURES: dict[str, tuple[Callable[[Results, Path], Path], Callable[[Results], bool]]] = {
    "heatmap": (plots.heatmap, lambda r: bool(r.cells)),
    "latency": (plots.latency, lambda r: bool(r.cells)),
    "tradeoff": (plots.tradeoff, lambda r: bool(r.cells)),
    "scale": (plots.scale_curves, lambda r: r.scale is not None),
    "load": (plots.load_latency, lambda r: r.load is not None and any(s.latency for s in r.load.scenarios)),
}


def size(n: float) -> str:
    """Decimal units, as the README and most dashboards use."""
    value, units = float(n), ["B", "kB", "MB", "GB"]
    while value >= 1000 and len(units) > 1:
        value /= 1000
        units.pop(0)
    return f"{value:.0f} {units[0]}" if units[0] == "B" else f"{value:.1f} {units[0]}"


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def count_p50(values: list[int]) -> str:
    """The median of counts (buffers, blocks) as shown, or a dash where there are none: a cell cut off
    by its statement timeout before any EXPLAIN ANALYZE finished."""
    return f"{median(values):.0f}" if values else "–"


def interval(q: Quantile) -> str:
    """What follows a quantile's value: its interval, " [low, high]", or nothing where the samples give none."""
    return f" {q.interval}" if q.interval else ""


def classes_text(cell: Cell) -> str:
    """Each class's verdict and p95, e.g. "ordinary: pass at n = 77 (0/77 over 50 ms), p95 3.10 [2.9, 3.4]"."""
    return "; ".join(
        f"{c.user_class} ({c.users} users): {c.describe(cell.sla_ms)}, p95 {c.p95.value:.2f}{interval(c.p95)}"
        for c in cell.classes
    )


# The runner's class rule as results.json records it ("power users: more than 2x the median user's tasks").
_POWER_RULE = re.compile(r"more than ([0-9.]+)x the median user's tasks")


def power_ratio(res: Results) -> float | None:
    """How many times the median user's tasks make a power user, by the class rule recorded in the
    protocol: a scale run's own users are all one size, so this is what relates its crossings to
    power users. None when the file records no such rule (an order-statistic run, no cells)."""
    rule = res.protocol.parameters.get("class_rule") if res.protocol else None
    found = _POWER_RULE.search(rule) if isinstance(rule, str) else None
    return float(found.group(1)) if found else None


def method(res: Results) -> str:
    """How the cells were sampled and judged, in one paragraph, from the protocol recorded."""
    p = res.protocol
    if p is None:
        return ""
    if p.name == ORDER_STATISTIC:
        o = p.parameters
        return (
            f"{o.get('samples')}–{o.get('max_samples')} samples per cell (plain execution and EXPLAIN "
            f"ANALYZE each) "
            f"after {p.warmup}; verdict on the client p95's {o.get('confidence', 0.95):.0%} order-statistic "
            f"interval (protocol {p.name} v{p.version})"
        )
    designs = p.parameters.get("designs", {})
    d: dict[str, Any] = designs.get(str(len(p.classes))) or next(iter(designs.values()), {})
    looks = d.get("looks", [])
    classes = " and ".join(p.classes) if len(p.classes) > 1 else "all users as one class"
    return (
        f"exact sequential test on the samples over the SLA (client time of a plain execution), {classes} "
        f"sampled in turn and judged apart, a cell passing only when every class passes; looks at n = "
        f"{', '.join(map(str, looks[:4]))} … {looks[-1] if looks else '?'} per class; wrong fail "
        f"{d.get('wrong_fail_at_p0', 0):.2%} per class, wrong pass {d.get('wrong_pass_at_p0', 0):.2%} when "
        f"exactly 5% of samples are over (p95 = SLA); EXPLAIN ANALYZE on the first {p.explain_samples} samples "
        f"(the same parameter sets every run); warm-up: {p.warmup}; a cell undecided after {p.cell_budget_s:g} s "
        f"is inconclusive (protocol {p.name} v{p.version})"
    )


def _measured(c: Conditions) -> str:
    alone = "alone on its server (measurement lock held)" if c.lock == "held" else f"concurrently: {c.lock}"
    load = f"load average {c.load_before[0]:g} before, {c.load_after[0]:g} after measuring, on {c.cpus} CPUs" + (
        " — a busy machine: other work shared the CPUs, times may be slow" if c.busy else ""
    )
    return f"measured {alone}; {load}"


def conditions(res: Results) -> str:
    """Whether the run measured alone, and how busy the machine was; for a merged run, each shard's,
    with its calibration workload before and after (how fast its machine was: shards are not
    compared with each other by time)."""
    if res.shards:
        return " · ".join(
            f"shard {s.shard.index}/{s.shard.count} ({', '.join(s.shard.variants)}) "
            + (_measured(s.conditions) if s.conditions else "measured under unrecorded conditions")
            + "; calibration medians before → after: "
            + ", ".join(
                f"{item} {median(s.shard.calibration.before_ms[item]):.2f} → "
                f"{median(s.shard.calibration.after_ms[item]):.2f} ms"
                for item in s.shard.calibration.before_ms
            )
            for s in res.shards
        )
    return _measured(res.conditions) if res.conditions else ""


def _recorded(res: Results) -> list[Conditions]:
    """The conditions the run's measurements were taken under: its own, or each shard's."""
    return [c for c in (res.conditions, *(s.conditions for s in res.shards)) if c is not None]


def frame(res: Results) -> pd.DataFrame:
    """One row per scenario × variant: what ``results.csv`` holds."""
    costs = {v.name: v for v in res.variants}
    rows = []
    for c in res.cells:
        v = costs[c.variant]
        rows.append(
            {
                "scenario": c.scenario,
                "variant": c.variant,
                "sla_class": c.sla_class,
                "sla_ms": c.sla_ms,
                "samples": c.client.n,
                "verdict": c.verdict,
                "verdict_detail": c.verdict_text,
                "decided_by": c.decided_by,
                "decided_p95_ms": c.decided_p95,
                "classes": classes_text(c),
                "explained_samples": c.samples.explained,
                "cell_seconds": c.seconds,
                "p50_ms": c.client.p50.value,
                "p50_low": c.client.p50.low,
                "p50_high": c.client.p50.high,
                "p95_ms": c.client.p95.value,
                "p95_low": c.client.p95.low,
                "p95_high": c.client.p95.high,
                "p99_ms": c.client.p99.value,
                "mean_ms": c.client.mean,
                "exec_p50_ms": c.execution.p50.value if c.execution else None,
                "planning_p50_ms": median(c.samples.planning_ms) if c.samples.planning_ms else None,
                "buffers_p50": median(c.samples.buffers) if c.samples.buffers else None,
                "cold_client_p50_ms": median(c.cold.client_ms) if c.cold else None,
                "cold_blocks_read_p50": median(c.cold.shared_read) if c.cold else None,
                "plan_fingerprint": c.plan.fingerprint,
                "plan_nodes": " > ".join(c.plan.node_types),
                "indexes": " ".join(c.plan.indexes),
                "seq_scans": " ".join(c.plan.seq_scans),
                "plans_seen": c.plan_count,
                "plan_flips": c.stability.flipped if c.stability else None,
                "index_size_bytes": v.index_size_bytes,
                "build_s": v.build_seconds,
                "kind": c.kind,
                "wal_bytes_per_statement": wal_per_statement(c),
            }
        )
    return pd.DataFrame(rows)


def scale_frame(res: Results) -> pd.DataFrame:
    """One row per scenario × variant × size, with the cell's fit."""
    assert res.scale is not None
    fits = {(f.scenario, f.variant): f for f in res.scale.fits}
    return pd.DataFrame(
        [
            {
                **p.model_dump(),
                "exponent": fits[(p.scenario, p.variant)].exponent,
                "r2": fits[(p.scenario, p.variant)].r2,
                "buffers_exponent": fits[(p.scenario, p.variant)].buffers_exponent,
                "sla_ms": fits[(p.scenario, p.variant)].sla_ms,
                "crossing_tasks_per_user": fits[(p.scenario, p.variant)].crossing_tasks_per_user,
                "crossing": fits[(p.scenario, p.variant)].crossing,
            }
            for p in res.scale.points
        ]
    )


def load_frame(res: Results) -> pd.DataFrame:
    """One row per scenario of the load mix."""
    assert res.load is not None
    return pd.DataFrame(
        [
            {
                "scenario": s.scenario,
                "weight": s.weight,
                "requests": s.requests,
                "errors": s.errors,
                "sla_ms": s.sla_ms,
                "over_sla": s.over_sla,
                "p50_ms": s.latency.p50.value if s.latency else None,
                "p95_ms": s.latency.p95.value if s.latency else None,
                "p99_ms": s.latency.p99.value if s.latency else None,
            }
            for s in res.load.scenarios
        ]
    )


@dataclass
class PlanDiff:
    scenario: str
    best: Cell
    baseline: Cell
    removed: list[str]  # node types / indexes only the baseline's plan has
    added: list[str]

    @property
    def speedup(self) -> float:
        return self.baseline.decided_p95 / max(self.best.decided_p95, 1e-9)


def _facts(cell: Cell) -> list[str]:
    return [
        *cell.plan.node_types,
        *(f"index {i}" for i in cell.plan.indexes),
        *(f"Seq Scan on {r}" for r in cell.plan.seq_scans),
    ]


def plan_diffs(res: Results) -> list[PlanDiff]:
    """Per scenario, the baseline's plan against the plan of the variant with the lowest p95."""
    diffs = []
    for scenario in dict.fromkeys(c.scenario for c in res.cells):
        base = res.cell(scenario, BASELINE_VARIANT)
        best = min((c for c in res.cells if c.scenario == scenario), key=lambda c: c.decided_p95)
        if base is None or best.variant == BASELINE_VARIANT:
            continue
        before, after = _facts(base), _facts(best)
        diffs.append(
            PlanDiff(scenario, best, base, [f for f in before if f not in after], [f for f in after if f not in before])
        )
    return diffs


def sent(cell: Cell) -> list[str]:
    """The SQL a cell's scenario sends: its statement, or each of an ORM scenario's (one per list length)."""
    return [s.sql for s in cell.orm.statements] if cell.orm else [cell.sql]


def pair_time(pair: TwinPair) -> str:
    """The ORM cell's time beside its twin's, per class: "slower ×1.85 (power)", or the ratios alone."""
    ratios = ", ".join(f"×{c.verdict.ratio:.2f} {c.user_class}" for c in pair.classes)
    return f"{pair.time}: {ratios}" if pair.time else f"not shown to differ ({ratios})"


@dataclass
class OrmView:
    """The report's "what the ORM sends": the pairs that differ, and the SQL both sides send."""

    pairs: list[TwinPair]  # every ORM cell beside its twin's
    differ: list[TwinPair]  # those whose plan, buffers or time differ
    alpha: float  # the time test's false findings per run and direction, at most
    factor: float

    @property
    def scenarios(self) -> list[TwinPair]:
        """One differing pair per ORM scenario: whose SQL texts are shown (they are the same under every variant)."""
        return list({p.orm.scenario: p for p in reversed(self.differ)}.values())[::-1]


def counts(cell: Cell) -> str:
    """A cell's timed executions by kind of plan, per class: "ordinary 77 / 0, power 12 / 65"."""
    return ", ".join(
        f"{c.user_class} {c.custom_plans} / {c.generic_plans}" for c in cell.classes if c.custom_plans is not None
    )


def differs_for(cell: Cell) -> list[str]:
    """The user classes whose explained samples' custom plan is not the generic plan's shape."""
    g = cell.generic
    if g is None:
        return []
    explained = zip(cell.samples.plan_fingerprints, g.fingerprints, cell.samples.user_class, strict=False)
    return list(dict.fromkeys(user_class for custom, generic, user_class in explained if custom != generic))


def generic_times(cell: Cell) -> str:
    """Per class, the median of its explained parameters through a custom and through the generic plan."""
    g = cell.generic
    if g is None or not g.custom_ms:
        return "–"
    return ", ".join(
        f"{name} {median(c for c, k in zip(g.custom_ms, g.classes, strict=True) if k == name):.2f} → "
        f"{median(x for x, k in zip(g.generic_ms, g.classes, strict=True) if k == name):.2f}"
        for name in dict.fromkeys(g.classes)
    )


@dataclass
class VariantPlans:
    variant: str
    cells: int  # read cells whose timed executions were counted
    generic: int  # ... of which some ran the generic plan
    classes: str  # the custom / generic counts per class, over those cells


@dataclass
class CacheView:
    """The report's "the plan that was timed"."""

    described: str
    variants: list[VariantPlans]
    flagged: list[Cell]  # cells (reads and writes) whose generic plan differs in shape, is slower, or was cut off
    level: float
    factor: float


_DESCRIBED = {
    "driver": "as the driver does it (asyncpg reuses them; PostgreSQL may switch one to its generic plan from "
    "its sixth execution)",
    "custom": "always for their values (plan_cache_mode = force_custom_plan: as behind a transaction pooler "
    "without prepared statements)",
    "generic": "always generically (plan_cache_mode = force_generic_plan)",
}


def plan_cache_view(res: Results) -> CacheView | None:
    """None where the run counted no plans (an older file, or behind a pooler)."""
    counted = [c for c in res.cells if c.kind == "read" and any(k.custom_plans is not None for k in c.classes)]
    if not counted or res.protocol is None:
        return None
    variants = []
    for v in dict.fromkeys(c.variant for c in counted):
        cells = [c for c in counted if c.variant == v]
        by_class: dict[str, list[int]] = {}
        for k in (k for c in cells for k in c.classes):
            pair = by_class.setdefault(k.user_class, [0, 0])
            pair[0] += k.custom_plans or 0
            pair[1] += k.generic_plans or 0
        variants.append(
            VariantPlans(
                v,
                len(cells),
                sum(1 for c in cells if any(k.generic_plans for k in c.classes)),
                ", ".join(f"{name} {a:,} / {b:,}" for name, (a, b) in by_class.items()),
            )
        )
    flagged = [c for c in res.cells if c.generic and (c.generic.differs or c.generic.slower or c.generic.timed_out)]
    return CacheView(_DESCRIBED[res.protocol.plan_cache], variants, flagged, SLOWER_LEVEL, DEFAULT_TIME.factor)


def orm_view(res: Results) -> OrmView:
    pairs = twin_pairs(res)
    return OrmView(pairs, [p for p in pairs if p.differs], DEFAULT_TIME.alpha, DEFAULT_TIME.factor)


def _view(res: Results, figures: dict[str, Path]) -> dict[str, Any]:
    scenarios = sorted(
        dict.fromkeys(c.scenario for c in res.cells),
        key=lambda s: (next(c.sla_ms for c in res.cells if c.scenario == s), s),
    )
    variants = [v.name for v in res.variants]
    cells = {(c.scenario, c.variant): c for c in res.cells}
    return {
        "res": res,
        "env": res.environment,
        "ds": res.dataset,
        "scenarios": scenarios,
        "variants": variants,
        "cells": cells,
        "rec": recommend(res) if res.cells else None,
        "diffs": plan_diffs(res),
        "writes": {v: write_cost(res, v) for v in variants},
        "wal_ratio": lambda v: wal_ratio(res, v),
        "wal": wal_per_statement,
        "write_scenarios": [s for s in scenarios if any(c.kind == "write" for c in res.cells if c.scenario == s)],
        "conn": res.connection,
        "scale": res.scale,
        "load": res.load,
        "crossing": ScaleFit.describe_crossing,
        "scale_point": lambda scenario, variant, n: next(
            (
                p
                for p in (res.scale.points if res.scale else [])
                if (p.scenario, p.variant, p.tasks_per_user) == (scenario, variant, n)
            ),
            None,
        ),
        "flips": [c for c in res.cells if c.stability and c.stability.flipped],
        "mismatches": variant_result_mismatches(res),
        "figures": {name: path.name for name, path in figures.items()},
        "total_seconds": sum(res.phase_seconds.values()),
        "method": method(res),
        "conditions": conditions(res),
        "explained": f"the first {res.protocol.explain_samples} samples"
        if res.protocol and res.protocol.explain_samples
        else "every sample",
        "busy": any(c.busy for c in _recorded(res)),
        "concurrent": any(c.lock != "held" for c in _recorded(res)),
        "power_ratio": power_ratio(res),
        "scenario_plans": {
            s: plans.scenario_plans([cells[s, v] for v in variants if (s, v) in cells], BASELINE_VARIANT)
            for s in scenarios
            if all(c.plans for c in res.cells if c.scenario == s)
        },
        "side_diffs": plans.side_diffs(res.side_by_side.base_cells, cells) if res.side_by_side else [],
        "orm": orm_view(res),
        "cache": plan_cache_view(res),
        "counts": counts,
        "generic_times": generic_times,
        "differs_for": differs_for,
        "sent": sent,
        "pair_time": pair_time,
        "upgrade": upgrade.view(res),
        "rls": _rls(res),
    }


def _rls(res: Results) -> dict[str, Any]:
    """The row-level security section and the report's first lines (``judge.rls``)."""
    costs = rls_costs(res)
    checks = [c.isolation for c in res.cells if c.isolation is not None]
    return {
        "failures": isolation_failures(res),
        "costs": costs,
        "costliest": costliest(costs),
        "forms": policy_forms(res),
        "confidence": RATIO_CONFIDENCE,
        "checked": len(checks),
        "parameter_sets": sum(c.parameter_sets for c in checks),
        "cross_user": sum(c.cross_user for c in checks),
        "scope": getattr(res.config, "policy_scope", "all"),
    }


def template_environment(package: str) -> Environment:
    """The templates of ``package`` (its ``templates/``), as every page of taskbench renders them: the
    HTML ones (*.html.j2) escaped. select_autoescape(["html"]) had matched none of them, so every text
    of a page (SQL, plans, a DDL's "<", descriptions) went out as markup."""
    return Environment(
        loader=PackageLoader(package, "templates"),
        autoescape=select_autoescape(["html.j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


@cache  # compiled once a process: a report's templates took 0.2-0.3 s to compile, every report again
def _templates() -> Environment:
    env = template_environment("bench.report")
    env.filters.update(ms=ms, size=size, median=median, count_p50=count_p50, interval=interval, classes=classes_text)
    env.filters.update(plan_ms=plans.plan_ms, plan_label=plans.plan_label, tree=plans.tree)
    env.globals["mark"] = {
        "pass": "✓ pass",
        "fail": "✗ fail",
        "borderline": "≈ borderline",
        "inconclusive": "? inconclusive",
    }
    return env


def _data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def write_report(run_path: Path, out_dir: Path | None = None, res: Results | None = None) -> list[Path]:
    """The report's files next to a results.json (or in ``out_dir``), each written whole or not at
    all; a directory that cannot take them is one line naming it (the results stay as they were).
    ``res``: the file's results, when the caller has read them already."""
    res = res or results_io.load(run_path)
    out = out_dir or results_io.resolve(run_path).parent
    try:
        return _write_report(res, out)
    except OSError as exc:
        raise output.NotWritten(f"cannot write the report in {out}: {output.reason(exc)}") from None


def _write_report(res: Results, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Path] = {}
    for name, (draw, applies) in FIGURES.items():
        if applies(res):
            with output.replacing(out / f"{name}.png") as tmp:
                draw(res, tmp)
            figures[name] = out / f"{name}.png"
    view = _view(res, figures)
    templates = _templates()
    html = out / "index.html"
    images = {name: _data_uri(path) for name, path in figures.items()}
    output.write_text(html, templates.get_template("report.html.j2").render(**view, images=images))
    summary = output.write_text(out / "summary.md", templates.get_template("summary.md.j2").render(**view))
    tables = {"results.csv": frame(res)}
    if res.scale:
        tables["scale.csv"] = scale_frame(res)
    if res.load:
        tables["load.csv"] = load_frame(res)
    for name, table in tables.items():
        with output.replacing(out / name) as tmp:
            table.to_csv(tmp, index=False)
    return [html, summary, *(out / name for name in tables), *figures.values()]
