"""The regression gate as CI runs it: base and head measured now, on one server, in one job, and
judged against each other on every dimension.

1. "Before" is a scenarios directory (``--before``), the scenarios directory as a git commit holds
   it (``--before-ref``; by default the merge base with the repository's default branch), or the
   SQL, index statements and schema DDL a reference run recorded — read again with PostgreSQL's
   parser like any catalogue file (``resolve_before``). A commit brings its models' DDL too: when it
   differs from the models', the base side's tables are built on it.
2. Both sides are measured on the server the check is given (``MeasureSides``): the head's whole
   matrix, the base side's cells wherever its request, indexes or schema differ from the head's (an
   identical cell is the same measurement on the same data and server, measured once for both),
   and every cell both have in pairs for the time gate. Plans, buffers, the planner's warning signs,
   result rows and verdicts are then judged base against head (``gates``), and time on the pairs
   (``timegate``): nothing measured on another machine, major or setting decides anything.
3. A verdict counts only where both sides decided (pass against fail). A time finding, slower or
   faster, must show again in pairs taken on fresh connections (``Confirm``): a persistent asymmetry
   between the two sides' connections (seen: every cell of one variant ×1.27 in an A/A check while
   a test suite ran beside it; two cells ×0.67 and ×0.79 in a gate proof's A/A check) is not a
   change in the code.
4. A reference run, when given, adds a "drift since the baseline" section — its deterministic
   facts against the head's — when its environment matches; otherwise one line says why not. It
   never decides the exit code.

Exit: 1 when a regression is found (even where something else could not be judged), else 2 when
time could not be judged (the calibration differed, the base could not be built), else 0.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from bench.catalogue.files import Catalogue, Scenario, Variant, load_catalogue
from bench.catalogue.gitref import default_merge_base, models_ddl_at, scenarios_at
from bench.catalogue.sql import SQLRefused
from bench.errors import InputError
from bench.judge.compare import Comparison, compare, explained_pairs, incompatibilities
from bench.judge.gates import DEFAULT_GATES, Finding, Kind, isolation_findings, judge_cell
from bench.judge.options import GateThresholds, TimeThresholds
from bench.judge.sequential import design_for_classes, worst_opposite_verdicts
from bench.judge.timegate import DEFAULT_TIME, false_alarm_bound, is_faster, is_slower, paired, unequal
from bench.results import Cell, PairedSamples, Results, SideBySide

# The calibration items that must come out equal on both sides: the CPU-bound ones. The round trip
# is reported, not judged: it reacts to a slower side's heavier query just before it (seen: ×1.9
# under a real ×3 regression, with both CPU items equal).
SAME_MACHINE = ("server_cpu", "client_cpu")

# (before, after, the base side's schema DDL when it is not the models' own) → the head's run, its
# ``side_by_side`` holding the base side's own cells and the pairs
MeasureSides = Callable[[Catalogue, Catalogue, str | None], Results]
# the same, for some cells only, this many pairs each: pairs on fresh connections
Confirm = Callable[[Catalogue, Catalogue, str | None, int], SideBySide]
# The confirmation takes twice the pairs: at the same level a second test of 30 pairs would miss
# half of the cells a first one barely called (seen: ×1.45 at 24 of 30 pairs slower, p = 7.2e-4,
# then 23 of 30); 60 pairs need 72% of them slower instead of 83%, and the level is the same.
CONFIRMATION_PAIRS = 2


@dataclass(frozen=True)
class CheckThresholds:
    gates: GateThresholds = DEFAULT_GATES
    time: TimeThresholds = DEFAULT_TIME


@dataclass(frozen=True)
class Before:
    """What stands for "before": a catalogue, where it came from, and the DDL of the base side's
    tables when they are not the models' own (a reference run recorded before the models changed)."""

    catalogue: Catalogue
    source: str
    schema_ddl: str | None = None

    def only(self, head: Catalogue) -> Before:
        """Restricted to the scenarios and variants ``head`` (a selection) has: what is left out of a
        selection is neither measured nor reported gone."""
        scenarios, variants = {s.name for s in head.scenarios}, {v.name for v in head.variants}
        kept = self.catalogue.model_copy(
            update={
                "scenarios": [s for s in self.catalogue.scenarios if s.name in scenarios],
                "variants": [v for v in self.catalogue.variants if v.name in variants],
            }
        )
        return replace(self, catalogue=kept)


def before_catalogue(base: Results, current: Catalogue) -> Catalogue:
    """The reference run's own catalogue: its cells' SQL and parameters, its variants' statements
    (extensions come from the current variant of the same name: they are an allow-list anyway).
    Read with the same parser and rules as a catalogue file: a reference file cannot smuggle SQL in."""
    if any(not c.scenario_sql for c in base.cells):
        raise InputError(
            "the reference run predates recorded scenario SQL (results format 6): it cannot stand for "
            "'before'; give --before-ref or --before, or re-take it (make baseline)"
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
                orm=c.orm,
            )
            for c in base.cells
        }
        variants = [
            Variant(name=v.name, statements=v.statements, extensions=extensions.get(v.name, [])) for v in base.variants
        ]
    except (ValueError, SQLRefused) as exc:
        raise InputError(f"the reference run {base.run_id}: {exc}") from None
    return current.model_copy(update={"scenarios": list(scenarios.values()), "variants": variants, "mix": {}})


@contextmanager
def resolve_before(
    current: Catalogue,
    scenarios_dir: Path,
    before_dir: Path | None,
    before_ref: str | None,
    reference: Results | None,
    models_ddl: str,
) -> Iterator[Before]:
    """What stands for before, in this order: ``--before DIR``, ``--before-ref REF``, the merge base
    of HEAD with the repository's default branch (each commit with its models' DDL), the reference
    run's recorded SQL, statements and schema."""
    if before_dir and before_ref:
        raise InputError("--before and --before-ref both name a 'before': give one")
    if before_dir:
        before = load_catalogue(before_dir, history=True, driver=current.driver, policy_scope=current.policy_scope)
        yield Before(before, f"the scenarios in {before_dir}")
        return
    ref, source = before_ref, f"commit {before_ref}"
    if ref is None:
        found = default_merge_base(scenarios_dir)
        if found is not None:
            ref, source = found.commit, f"{found.commit[:12]}, the merge base with {found.branch}"
    if ref is not None:
        with scenarios_at(ref, scenarios_dir) as exported:
            catalogue = load_catalogue(exported, history=True, driver=current.driver, policy_scope=current.policy_scope)
            try:  # the models at that commit: a pull request that changes them is timed across the change
                ddl: str | None = models_ddl_at(ref, scenarios_dir)
            except InputError as exc:
                ddl, source = None, f"{source} ({exc}: both sides on the models' schema)"
            yield Before(catalogue, source, ddl if ddl != models_ddl else None)
        return
    if reference is None:
        raise InputError(
            "nothing stands for 'before': outside a git repository with a default branch, give "
            "--before DIR, --before-ref REF or a reference run"
        )
    changed = bool(reference.schema_ddl) and reference.schema_ddl != models_ddl
    yield Before(
        before_catalogue(reference, current),
        f"reference run {reference.run_id} (its recorded SQL and indexes)",
        reference.schema_ddl if changed else None,
    )


def timed(cells: list[PairedSamples]) -> list[PairedSamples]:
    """The cells the time gate judges: all but those whose pairs a statement timeout cut off (their
    SLA verdict, a fail at the timeout, is the finding)."""
    return [cell for cell in cells if not cell.timed_out]


def _time_findings(cells: list[PairedSamples], th: TimeThresholds, judged: int) -> list[Finding]:
    findings = []
    for cell in timed(cells):
        v = paired(cell.base_ms, cell.head_ms)
        said = f"median {v.base_ms:.3f} → {v.head_ms:.3f} ms (×{v.ratio:.2f} over {len(cell.base_ms)} pairs"
        if is_slower(v, th, judged):
            findings.append(Finding(Kind.TIME, cell.scenario, cell.variant, f"{said}, p={v.p_slower:.1e})"))
        elif is_faster(v, th, judged):
            findings.append(
                Finding(Kind.TIME, cell.scenario, cell.variant, f"{said}, p={v.p_faster:.1e})", "improvement")
            )
    return findings


def _row_findings(cells: list[PairedSamples]) -> list[Finding]:
    return [
        Finding(
            Kind.RESULTS,
            cell.scenario,
            cell.variant,
            f"the head returns other rows than the base for {cell.differing_rows} of "
            f"{len(cell.base_ms)} parameter sets",
        )
        for cell in cells
        if cell.differing_rows
    ]


def judge_time(sbs: SideBySide, th: TimeThresholds) -> tuple[list[Finding], str | None, str]:
    """Time and result findings of the pairs; why time cannot be judged (or None); the one-line account."""
    cells = len(timed(sbs.cells))
    findings = _time_findings(sbs.cells, th, cells) + _row_findings(sbs.cells)
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
    cut = len(sbs.cells) - cells
    account = (
        f"side by side, {cells} cells × {sbs.pairs} pairs; calibration equal on both sides ({shown}); "
        f"false alarms at most {false_alarm_bound(sbs.pairs, th, cells):.1%} per check"
        + (f"; {cut} cells not timed: their pairs reached the statement timeout" if cut else "")
    )
    return findings, None, account


def confirmed(
    findings: list[Finding], again: list[PairedSamples], th: TimeThresholds, judged: int
) -> tuple[list[Finding], list[str]]:
    """The time findings that the pairs taken again find too, in the same direction and at the same
    level (a false alarm now needs both: its rate stays within the first stage's bound); and the
    ones that did not show again, as notes."""
    shown_again = {(f.scenario, f.variant, f.direction) for f in _time_findings(again, th, judged)}
    kept, dropped = [], []
    for f in findings:
        if f.kind == Kind.TIME and (f.scenario, f.variant, f.direction) not in shown_again:
            dropped.append(f"{f.scenario} × {f.variant} ({f.message}) did not show again in pairs taken again")
        else:
            kept.append(f)
    return kept, dropped


def judge_sides(head: Results, th: GateThresholds) -> list[Finding]:
    """The deterministic gates on every cell the base side measured for itself, base against head;
    a cell measured once for both sides is the same measurement and has nothing to judge."""
    sbs = head.side_by_side
    assert sbs is not None, "a check's run carries its base side"
    findings: list[Finding] = []
    for base in sbs.base_cells:
        cur = head.cell(base.scenario, base.variant)
        if cur is None:
            continue
        b, c = explained_pairs(base, cur)
        # each side drew its own parameters, or its rows have other columns: nothing to compare them by
        if base.params != cur.params or sbs.rebuilt_schema is not None:
            b, c = (
                x.model_copy(update={"samples": x.samples.model_copy(update={"result_hashes": []})}) for x in (b, c)
            )
        findings += judge_cell(b, c, th)
    return findings


def _gone(sbs: SideBySide) -> list[Finding]:
    """A scenario or variant only the base has: a change, named where its cells would be."""
    findings = []
    for gone in sbs.gone:
        what, name = gone.split(" ", 1)
        scenario, variant = (name, "—") if what == "scenario" else ("—", name)
        findings.append(
            Finding(Kind.MISSING, scenario, variant, f"the base has this {what}, the head does not", "change")
        )
    return findings


def drift(reference: Results, head: Results, th: GateThresholds) -> tuple[list[Finding], str]:
    """The reference run's deterministic facts against the head's, where they can be compared."""
    reasons = incompatibilities(reference, head)
    if reasons:
        return [], f"drift since {reference.run_id}: not shown ({'; '.join(reasons)})"
    measured = [c for c in reference.cells if head.cell(c.scenario, c.variant) is not None]
    compared = compare(reference.model_copy(update={"cells": measured}), head, th).findings
    found = [f for f in compared if f.kind != Kind.ISOLATION]  # the head's own failures: judged, not drift
    return found, f"drift since {reference.run_id}: {len(found)} finding(s), measured elsewhere or earlier (not judged)"


@functools.cache
def _worst_flip(classes: int) -> float:
    return worst_opposite_verdicts(design_for_classes(classes))[0]


def _verdict_account(base_cells: list[Cell]) -> str:
    """How often the verdict gate can be wrong here: two measurements of an unchanged cell end pass
    against fail at most k × worst_opposite_verdicts per cell of k classes (``sequential``)."""
    bound = sum(len(c.classes) * _worst_flip(len(c.classes)) for c in base_cells)
    return (
        f"verdicts compared where both sides decided (pass against fail), in {len(base_cells)} cell(s) measured "
        f"on both sides: a false alarm at most {min(bound, 1.0):.1%} per check"
    )


def check(
    after: Catalogue,
    before: Before,
    measure: MeasureSides,
    confirm: Confirm,
    th: CheckThresholds = CheckThresholds(),
    reference: Results | None = None,
) -> tuple[Results | None, Comparison]:
    """Measure both sides, judge head against base on every gate, confirm time regressions, and
    show drift since ``reference``. The head's run is None when the base side could not be built."""
    result = Comparison(time="")
    try:
        head = measure(before.catalogue, after, before.schema_ddl)
    except InputError as exc:
        across = "; time could not be judged across the schema change" if before.schema_ddl else ""
        result.time_refused = f"{exc}{across}"
        return None, result
    sbs = head.side_by_side
    assert sbs is not None, "measure_sides fills the side-by-side part"
    result.findings = isolation_findings(head) + judge_sides(head, th.gates) + _gone(sbs)
    time_findings, result.time_refused, result.time = judge_time(sbs, th.time)
    if sbs.rebuilt_schema is not None:
        time_findings = [f for f in time_findings if f.kind != Kind.RESULTS]
        result.notes.append("rows are not compared across the schema change (a row's columns may differ)")
    suspects = [f for f in time_findings if f.kind == Kind.TIME]
    if suspects:
        scenarios = list(dict.fromkeys(f.scenario for f in suspects))
        variants = list(dict.fromkeys(f.variant for f in suspects))
        again = confirm(
            before.catalogue.select(scenarios, variants),
            after.select(scenarios, variants),
            before.schema_ddl,
            CONFIRMATION_PAIRS * sbs.pairs,
        )
        sbs = sbs.model_copy(update={"confirmation": again.cells})
        time_findings, dropped = confirmed(time_findings, again.cells, th.time, len(timed(sbs.cells)))
        result.time += f"; {len(suspects)} cell(s) found slower or faster measured again on fresh connections"
        result.notes += dropped
    result.findings += time_findings
    if sbs.rebuilt_schema is not None:
        left = f" ({'; '.join(sbs.rebuilt_schema)})" if sbs.rebuilt_schema else ""
        result.time += f"; the models changed: the base side on its own schema{left}"
    if sbs.new:
        result.time += f"; new, nothing to time them beside: {', '.join(sbs.new)}"
    result.notes.insert(
        0,
        f"before: {before.source}; {len(sbs.base_cells)} base cell(s) measured for themselves, "
        f"{len(sbs.cells) - len(sbs.base_cells)} the same on both sides (measured once)",
    )
    if sbs.base_cells:
        result.notes.append(_verdict_account(sbs.base_cells))
    if reference is not None:
        result.drift, result.drift_line = drift(reference, head, th.gates)
    return head.model_copy(update={"side_by_side": sbs}), result
