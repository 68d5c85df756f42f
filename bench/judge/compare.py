"""Judge a run against a reference run (usually the committed baseline): the regression gate.

Exit semantics: 0 no regression, 1 regression, 2 cannot judge (incomparable runs, bad input, or a
time gate that could not judge). ``compare`` applies the deterministic gates (``gates``): plans,
buffers, the planner's warning signs, result rows and SLA verdicts, which are machine-independent
for the same data and PostgreSQL major. It never compares milliseconds taken on another machine or
at another time: time is judged only on samples taken side by side, which ``check`` measures
(``timegate``); a comparison without them says so in every output.

Samples are compared in pairs: the n-th explained sample of a user class was drawn from that class's
own seeded stream, so it has the same parameters in both runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bench.catalogue.options import BASELINE_VARIANT
from bench.errors import EXIT_INPUT, EXIT_OK, EXIT_REGRESSION
from bench.judge.gates import DEFAULT_GATES, Finding, Kind, isolation_findings, judge_cell
from bench.judge.options import GateThresholds
from bench.results import Cell, Results

NO_SIDE_BY_SIDE = "not judged: these are two separate runs; `taskbench check` measures base and head side by side"


@dataclass
class Comparison:
    incomparable: list[str] = field(default_factory=list)  # why the runs cannot be judged at all (exit 2)
    findings: list[Finding] = field(default_factory=list)
    time: str = NO_SIDE_BY_SIDE  # how time was judged, in one line
    time_refused: str | None = None  # why time could not be judged where it should have been (exit 2)
    notes: list[str] = field(default_factory=list)  # what was measured how, and what was left unjudged
    # a check's reference run against the head: shown, never judged (measured elsewhere or earlier)
    drift: list[Finding] = field(default_factory=list)
    drift_line: str | None = None

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.direction == "regression"]

    @property
    def improvements(self) -> list[Finding]:
        return [f for f in self.findings if f.direction == "improvement"]

    @property
    def changes(self) -> list[Finding]:
        return [f for f in self.findings if f.direction == "change"]

    @property
    def exit_code(self) -> int:
        """A regression found is a regression even where something else could not be judged."""
        if self.regressions:
            return EXIT_REGRESSION
        return EXIT_INPUT if self.incomparable or self.time_refused else EXIT_OK


def incompatibilities(base: Results, cur: Results) -> list[str]:
    reasons = [
        f"the {which} run is a load run: it has no cells to judge (compare judges matrix and scale runs)"
        for which, res in (("reference", base), ("current", cur))
        if res.kind == "load"
    ]
    if base.dataset.fingerprint != cur.dataset.fingerprint:
        reasons.append(
            f"different datasets: baseline {base.dataset.fingerprint} "
            f"({base.dataset.profile.get('name')}), current {cur.dataset.fingerprint} "
            f"({cur.dataset.profile.get('name')})"
        )
    if base.environment.server_major != cur.environment.server_major:
        reasons.append(
            f"different PostgreSQL majors: baseline {base.environment.server_major}, "
            f"current {cur.environment.server_major}"
        )
    changed = sorted(
        k
        for k in set(base.environment.settings) | set(cur.environment.settings)
        if base.environment.settings.get(k) != cur.environment.settings.get(k)
    )
    if changed:
        shown = ", ".join(
            f"{k} {base.environment.settings.get(k)} → {cur.environment.settings.get(k)}" for k in changed
        )
        reasons.append(f"different planner settings: {shown}")
    modes = [res.protocol.plan_cache if res.protocol else None for res in (base, cur)]
    if None not in modes and modes[0] != modes[1]:
        reasons.append(
            f"different plan-cache behaviour: baseline {modes[0]}, current {modes[1]} (--plan-cache): "
            "the samples ran other plans"
        )
    return reasons


def protocol_name(res: Results) -> str:
    p = res.protocol
    return f"{p.name} v{p.version}" if p else "none (no cells)"


def matched_by_class(
    base: list[Any], base_classes: list[str], cur: list[Any], cur_classes: list[str]
) -> tuple[list[Any], list[Any]]:
    """The values of the samples both runs took with the same parameters: per user class, the first
    n of that class in each, n the smaller count. Runs with no class in common (an older protocol
    against this one) are not paired: their whole lists are returned."""
    out_b: list[Any] = []
    out_c: list[Any] = []
    common = [k for k in dict.fromkeys(base_classes) if k in set(cur_classes)]
    if not common:
        return base, cur
    for k in common:
        of_b = [v for v, c in zip(base, base_classes, strict=True) if c == k]
        of_c = [v for v, c in zip(cur, cur_classes, strict=True) if c == k]
        n = min(len(of_b), len(of_c))
        out_b += of_b[:n]
        out_c += of_c[:n]
    return out_b, out_c


def explained_pairs(base: Cell, cur: Cell) -> tuple[Cell, Cell]:
    """Both cells reduced to their explained samples that pair up (buffers and result rows of the
    same parameter sets), so every gate compares like with like."""

    def reduce(cell: Cell, buffers: list[int], hashes: list[str]) -> Cell:
        return cell.model_copy(
            update={"samples": cell.samples.model_copy(update={"buffers": buffers, "result_hashes": hashes})}
        )

    k_b, k_c = base.samples.explained, cur.samples.explained
    b_buf, c_buf = matched_by_class(
        base.samples.buffers, base.samples.user_class[:k_b], cur.samples.buffers, cur.samples.user_class[:k_c]
    )
    b_rows: list[str] = []
    c_rows: list[str] = []
    if base.samples.result_hashes and cur.samples.result_hashes:
        b_rows, c_rows = matched_by_class(
            base.samples.result_hashes,
            base.samples.user_class[:k_b],
            cur.samples.result_hashes,
            cur.samples.user_class[:k_c],
        )
    return reduce(base, b_buf, b_rows), reduce(cur, c_buf, c_rows)


def compare(base: Results, cur: Results, th: GateThresholds = DEFAULT_GATES, force: bool = False) -> Comparison:
    """The deterministic gates on every cell of ``base`` (time is not judged here: see ``check``)."""
    result = Comparison()
    reasons = incompatibilities(base, cur)
    if reasons and not force:
        result.incomparable = reasons
        return result
    if protocol_name(base) != protocol_name(cur):
        # Plans, buffers, rows and verdicts still compare; the samples behind them were drawn differently.
        result.time += (
            f" (and the runs were sampled under different protocols: reference {protocol_name(base)}, "
            f"current {protocol_name(cur)})"
        )
    for bcell in base.cells:
        ccell = cur.cell(bcell.scenario, bcell.variant)
        if ccell is None:
            result.findings.append(
                Finding(
                    Kind.MISSING,
                    bcell.scenario,
                    bcell.variant,
                    "in the reference run but not measured in this one",
                    "change",
                )
            )
            continue
        result.findings += judge_cell(*explained_pairs(bcell, ccell), th)
    result.findings += isolation_findings(cur)
    return result


def variant_result_mismatches(res: Results, reference: str = BASELINE_VARIANT) -> list[Finding]:
    """Within one run: cells whose rows differ from the ``reference`` variant's for the same
    parameters. An index never changes what a query returns, so this names a bug (or a query whose
    ORDER BY leaves ties that a different plan breaks differently)."""
    out = []
    for cell in res.cells:
        ref = res.cell(cell.scenario, reference)
        if ref is None or cell.variant == reference or not cell.samples.result_hashes:
            continue
        pairs = list(zip(ref.samples.result_hashes, cell.samples.result_hashes, strict=False))
        differ = sum(a != b for a, b in pairs)
        if differ:
            out.append(
                Finding(
                    Kind.RESULTS,
                    cell.scenario,
                    cell.variant,
                    f"{differ} of {len(pairs)} parameter sets returned other rows than under {reference}",
                )
            )
    return out
