"""The regression gate as CI runs it: the head measured, judged against the reference run's facts,
and timed side by side with the reference run's own SQL and indexes in the same job.

1. The head (the current catalogue, restricted to the reference run's cells) is measured as any run:
   plans, buffers, warning signs, result rows and SLA verdicts are judged against the reference
   run's (``compare``): they are the same on any machine for the same data and PostgreSQL major.
2. "Before" is rebuilt from the reference run itself — each cell's scenario SQL and parameters and
   each variant's index statements, read again with PostgreSQL's parser like any catalogue file —
   or given as a scenarios directory. Base and head are then measured in pairs on two scratch
   copies of the dataset (``bench.measure.paired``) and time is judged on those pairs only
   (``timegate``), so the time gate needs no milliseconds from another machine and is on wherever
   the check runs. When the models changed since the reference run, the base side's copy is built
   on the DDL that run recorded, with the same rows where they fit (``bench.measure.rebuild``).
   A calibration workload measured on both sides must come out equal; when it does not, or when
   the reference run cannot be measured again (older format, rows that do not fit its schema,
   changed parameters), the check says it cannot judge time and exits 2: never a silent pass.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bench.catalogue.files import Catalog, Scenario, Variant
from bench.catalogue.sql import SQLRefused
from bench.errors import InputError
from bench.judge.compare import Comparison, compare
from bench.judge.gates import DEFAULT_GATES, Finding, GateThresholds, Kind
from bench.judge.timegate import DEFAULT_TIME, TimeThresholds, false_alarm_bound, is_faster, is_slower, paired, unequal
from bench.measure.calibration import SAME_MACHINE
from bench.results import Results, SideBySide

Measure = Callable[[Catalog], Results]  # the head catalogue → a run of it on the target
# (before, after, the base side's schema DDL when it is not the models' own) → side-by-side samples
MeasurePairs = Callable[[Catalog, Catalog, str | None], SideBySide]


@dataclass(frozen=True)
class CheckThresholds:
    gates: GateThresholds = DEFAULT_GATES
    time: TimeThresholds = DEFAULT_TIME


def reference_cells(base: Results, catalog: Catalog) -> Catalog:
    """The catalogue's part that the reference run measured: the cells the gate can judge. Scenarios
    or variants the catalogue no longer has are left out here and reported by compare as missing."""
    scenarios = {s.name for s in catalog.scenarios}
    variants = {v.name for v in catalog.variants}
    wanted_s = list(dict.fromkeys(c.scenario for c in base.cells if c.scenario in scenarios))
    wanted_v = list(dict.fromkeys(c.variant for c in base.cells if c.variant in variants))
    return catalog.select(wanted_s, wanted_v)


def before_catalog(base: Results, current: Catalog) -> Catalog:
    """The reference run's own catalogue: its cells' SQL and parameters, its variants' statements
    (extensions come from the current variant of the same name: they are an allow-list anyway).
    Read with the same parser and rules as a catalogue file: a reference file cannot smuggle SQL in."""
    if any(not c.scenario_sql for c in base.cells):
        raise InputError(
            "the reference run predates recorded scenario SQL (results format 6): it cannot be "
            "measured again beside the head; re-take it (make baseline)"
        )
    extensions = {v.name: v.extensions for v in current.variants}
    try:
        scenarios = {
            c.scenario: Scenario(
                name=c.scenario,
                sla_class=c.sla_class,
                sla_ms=c.sla_ms,
                kind=c.kind,
                sql=c.scenario_sql,
                params=c.params,
            )
            for c in base.cells
        }
        variants = [
            Variant(name=v.name, statements=v.statements, extensions=extensions.get(v.name, [])) for v in base.variants
        ]
    except (ValueError, SQLRefused) as exc:
        raise InputError(f"the reference run {base.run_id}: {exc}") from None
    return Catalog(sla_classes=current.sla_classes, scenarios=list(scenarios.values()), variants=variants)


def judge_time(sbs: SideBySide, th: TimeThresholds) -> tuple[list[Finding], str | None, str]:
    """Time and result findings of the pairs; why time cannot be judged (or None); the one-line account."""
    findings = []
    cells = len(sbs.cells)
    for cell in sbs.cells:
        v = paired(cell.base_ms, cell.head_ms)
        said = f"median {v.base_ms:.3f} → {v.head_ms:.3f} ms (×{v.ratio:.2f} over {len(cell.base_ms)} pairs"
        if is_slower(v, th, cells):
            findings.append(Finding(Kind.TIME, cell.scenario, cell.variant, f"{said}, p={v.p_slower:.1e})"))
        elif is_faster(v, th, cells):
            findings.append(
                Finding(Kind.TIME, cell.scenario, cell.variant, f"{said}, p={v.p_faster:.1e})", "improvement")
            )
        if cell.differing_rows:
            findings.append(
                Finding(
                    Kind.RESULTS,
                    cell.scenario,
                    cell.variant,
                    f"the head returns other rows than the base for {cell.differing_rows} of "
                    f"{len(cell.base_ms)} parameter sets",
                )
            )
    calibration = {
        item: paired(sbs.calibration_base_ms[item], sbs.calibration_head_ms[item])
        for item in sbs.calibration_base_ms
        if sbs.calibration_base_ms[item]
    }
    shown = ", ".join(f"{item} ×{v.ratio:.2f}" for item, v in calibration.items())
    off = [item for item, v in calibration.items() if item in SAME_MACHINE and unequal(v, th)]
    if off:
        return (
            findings,
            (
                f"the calibration workload differed between the two sides ({shown}): they were not "
                "measured under the same conditions"
            ),
            shown,
        )
    account = (
        f"side by side, {cells} cells × {sbs.pairs} pairs; calibration equal on both sides ({shown}); "
        f"false alarms at most {false_alarm_bound(sbs.pairs, th, cells):.1%} per check"
    )
    return findings, None, account


def check(
    catalog: Catalog,
    base: Results,
    measure: Measure,
    measure_pairs: MeasurePairs,
    th: CheckThresholds = CheckThresholds(),
    before: Catalog | None = None,
    schema_ddl: str = "",
) -> tuple[Results, Comparison]:
    """Measure the head, judge it against ``base``'s facts, and judge time side by side with ``before``
    (default: the reference run's own SQL and statements). ``schema_ddl``: the models' DDL now."""
    head = reference_cells(base, catalog)
    current = measure(head)
    result = compare(base, current, th.gates)
    if result.incomparable:
        return current, result
    changed = before is None and bool(base.schema_ddl and schema_ddl) and base.schema_ddl != schema_ddl
    try:
        sbs = measure_pairs(before or before_catalog(base, catalog), head, base.schema_ddl if changed else None)
    except InputError as exc:
        across = "; time could not be judged across the schema change" if changed else ""
        result.time_refused = f"{exc}{across}"
        return current, result
    findings, refused, result.time = judge_time(sbs, th.time)
    result.findings += findings
    if sbs.incomparable:
        refused = "; ".join([*sbs.incomparable, *([refused] if refused else [])])
    result.time_refused = refused
    if sbs.rebuilt_schema is not None:
        left = f" ({'; '.join(sbs.rebuilt_schema)})" if sbs.rebuilt_schema else ""
        result.time += f"; the models changed: the base side on the reference run's recorded schema{left}"
    if sbs.new:
        result.time += f"; new, nothing to time them beside: {', '.join(sbs.new)}"
    return current.model_copy(update={"side_by_side": sbs}), result
