"""Judge a current run against a baseline run: the regression gate (design §8).

Exit semantics: 0 no regression, 1 regression, 2 cannot judge (incomparable or bad input).
Deterministic gates first (SLA verdict, plan shape, buffers), then time, which must clear a
factor AND a Mann-Whitney test AND an absolute noise floor, so an identical re-run never fails.

Samples are compared in pairs: the n-th sample of a user class was drawn from that class's own
seeded stream, so it has the same parameters in both runs, and each class contributes the samples
both runs took of it. A cell that stopped early in one run is judged on what both runs share, and a
cell's mix of classes cannot move its median. Runs measured under different sampling protocols are
not comparable in milliseconds at all (other users, other counts): compare says so and exits 2, but
still judges plans, buffers and verdicts, which do not depend on the protocol.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.errors import EXIT_INPUT, EXIT_OK, EXIT_REGRESSION
from bench.results import Cell, Results

SCAN_NODES = ("Index Scan", "Index Only Scan", "Bitmap Index Scan")


@dataclass(frozen=True)
class Thresholds:
    time_factor: float = 1.5  # median ratio that counts as slower
    p_value: float = 0.001  # Mann-Whitney, one-sided
    noise_floor_ms: float = 1.0  # absolute median difference below which time is never a regression
    noise_spread: float = 0.5  # ... nor below this share of the baseline's own interquartile range
    buffer_tolerance: float = 0.10  # relative rise in median buffers

    def floor_ms(self, baseline_ms: list[float]) -> float:
        """The smallest median shift that can count: a cell whose samples already spread widely
        (a skewed user mix, a noisy machine) must move further before it is called slower."""
        q1, q3 = np.percentile(baseline_ms, [25, 75])
        return max(self.noise_floor_ms, self.noise_spread * float(q3 - q1))


@dataclass
class Finding:
    scenario: str
    variant: str
    gate: str  # sla | plan | buffers | time
    message: str


@dataclass
class Comparison:
    incomparable: list[str] = field(default_factory=list)
    regressions: list[Finding] = field(default_factory=list)
    improvements: list[Finding] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unconfirmed: list[Finding] = field(default_factory=list)  # time findings a re-measurement did not repeat
    timing_off: str | None = None  # why the time gate did not run, if it did not
    time_refused: str | None = None  # why time cannot be judged at all (exit 2; the other gates still ran)
    drift: dict[str, float] = field(default_factory=dict)  # per variant: how much slower the whole run was

    @property
    def exit_code(self) -> int:
        if self.incomparable or self.time_refused:
            return EXIT_INPUT
        return EXIT_REGRESSION if self.regressions else EXIT_OK


def incompatibilities(base: Results, cur: Results) -> list[str]:
    reasons = []
    if base.dataset.fingerprint != cur.dataset.fingerprint:
        reasons.append(f"different datasets: baseline {base.dataset.fingerprint} "
                       f"({base.dataset.profile.get('name')}), current {cur.dataset.fingerprint} "
                       f"({cur.dataset.profile.get('name')})")
    if base.environment.server_major != cur.environment.server_major:
        reasons.append(f"different PostgreSQL majors: baseline {base.environment.server_major}, "
                       f"current {cur.environment.server_major}")
    changed = sorted(k for k in set(base.environment.settings) | set(cur.environment.settings)
                     if base.environment.settings.get(k) != cur.environment.settings.get(k))
    if changed:
        shown = ", ".join(f"{k} {base.environment.settings.get(k)} → {cur.environment.settings.get(k)}"
                          for k in changed)
        reasons.append(f"different planner settings: {shown}")
    return reasons


def _protocol(res: Results) -> str:
    p = res.protocol
    return f"{p.name} v{p.version}" if p else "none (no cells)"


def protocol_difference(base: Results, cur: Results) -> str | None:
    """Why the runs' milliseconds are not comparable by their sampling protocols, or None."""
    if _protocol(base) == _protocol(cur):
        return None
    return (f"different sampling protocols: baseline {_protocol(base)}, current {_protocol(cur)} — their samples are "
            "other users' queries in other numbers; re-take the baseline (make baseline) to compare times")


def _machine(res: Results) -> tuple[object, object]:
    return res.environment.machine.get("platform"), res.environment.machine.get("cpus")


def timing_comparable(base: Results, cur: Results) -> str | None:
    """Why timings of these runs cannot be compared, or None. Counters (plans, buffers) travel
    between machines; milliseconds do not."""
    if _machine(base) != _machine(cur):
        return (f"different machines ({base.environment.machine.get('cpus')} CPUs {_machine(base)[0]} vs "
                f"{cur.environment.machine.get('cpus')} CPUs {_machine(cur)[0]})")
    return None


def _plan_changes(base: Cell, cur: Cell) -> list[str]:
    """Ways the current plan lost what the baseline plan had."""
    out = []
    lost_seq = sorted(set(cur.plan.seq_scans) - set(base.plan.seq_scans))
    if lost_seq and any(t in SCAN_NODES for t in base.plan.node_types):
        out.append(f"index scan → Seq Scan on {', '.join(lost_seq)}"
                   f" (baseline used {', '.join(base.plan.indexes) or 'an index'})")
    if cur.plan.sorts > base.plan.sorts:
        out.append(f"new Sort node ({base.plan.sorts} → {cur.plan.sorts})")
    lost_idx = sorted(set(base.plan.indexes) - set(cur.plan.indexes))
    if lost_idx and not lost_seq:
        now = ", ".join(cur.plan.indexes) or "none"
        out.append(f"index {', '.join(lost_idx)} no longer used (now: {now})")
    return out


def _worst_node(base: Cell, cur: Cell) -> str:
    """Which plan node's buffers rose most (same plan shape only: nodes then pair up)."""
    if base.plan.fingerprint != cur.plan.fingerprint or len(base.plan.nodes) != len(cur.plan.nodes):
        return ""
    pairs = [(c.shared_hit + c.shared_read - b.shared_hit - b.shared_read, b, c)
             for b, c in zip(base.plan.nodes, cur.plan.nodes, strict=True)]
    rise, b, c = max(pairs, key=lambda p: p[0])
    if rise <= 0:
        return ""
    where = f" on {c.relation}" if c.relation else ""
    using = f" using {c.index}" if c.index else ""
    return f"; most at {c.node_type}{where}{using}: {b.shared_hit + b.shared_read} → {c.shared_hit + c.shared_read}"


def _median(values: list[float]) -> float:
    return float(np.median(values))


def paired(base: list[Any], base_classes: list[str], cur: list[Any],
           cur_classes: list[str]) -> tuple[list[Any], list[Any]]:
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


def paired_client(base: Cell, cur: Cell) -> tuple[list[float], list[float]]:
    return paired(base.samples.client_ms, base.samples.user_class, cur.samples.client_ms, cur.samples.user_class)


def paired_buffers(base: Cell, cur: Cell) -> tuple[list[int], list[int]]:
    """Buffers of the explained samples (the first K: the same parameter sets in every run), paired."""
    return paired(base.samples.buffers, base.samples.user_class[:base.samples.explained],
                  cur.samples.buffers, cur.samples.user_class[:cur.samples.explained])


# A variant's cells run one after another within a minute or so; on a shared machine their speed
# drifts together (a busy neighbour, a frequency change), by ×1.5 and more between runs taken at
# different times. The median ratio over a variant's cells measures that drift; each cell's ratio
# is judged relative to it, so only a cell that slowed more than its neighbours counts. With too
# few cells the median would be the cell itself, so small selections are not normalised.
MIN_CELLS_FOR_DRIFT = 5


def drift(base: Results, cur: Results) -> dict[str, float]:
    ratios: dict[str, list[float]] = {}
    for b in base.cells:
        c = cur.cell(b.scenario, b.variant)
        if c is not None:
            b_ms, c_ms = paired_client(b, c)
            ratios.setdefault(b.variant, []).append(_median(c_ms) / max(_median(b_ms), 1e-9))
    return {v: float(np.median(r)) for v, r in ratios.items() if len(r) >= MIN_CELLS_FOR_DRIFT}


def compare_cells(base: Cell, cur: Cell, th: Thresholds, timing: bool,
                  drift_factor: float = 1.0) -> tuple[list[Finding], list[Finding]]:
    regs: list[Finding] = []
    imps: list[Finding] = []

    def add(into: list[Finding], gate: str, message: str) -> None:
        into.append(Finding(cur.scenario, cur.variant, gate, message))

    if base.verdict == "pass" and cur.verdict == "fail":
        add(regs, "sla", f"SLA {cur.sla_ms:.0f} ms: pass → {cur.verdict_text} (was {base.verdict_text})")
    elif base.verdict == "fail" and cur.verdict == "pass":
        add(imps, "sla", f"SLA {cur.sla_ms:.0f} ms: fail → pass")
    if base.plan.fingerprint != cur.plan.fingerprint:
        changes = _plan_changes(base, cur)
        for change in changes:
            add(regs, "plan", change)
        if not changes:
            add(imps, "plan", f"plan changed: {' → '.join(cur.plan.node_types)} [{', '.join(cur.plan.indexes)}]")
    b_buffers, c_buffers = paired_buffers(base, cur)
    b_buf, c_buf = _median(b_buffers), _median(c_buffers)
    if c_buf > b_buf * (1 + th.buffer_tolerance) and c_buf - b_buf >= 2:
        add(regs, "buffers", f"buffers per query {b_buf:.0f} → {c_buf:.0f} (+{(c_buf / max(b_buf, 1) - 1):.0%})"
                             f"{_worst_node(base, cur)}")
    elif b_buf > c_buf * (1 + th.buffer_tolerance) and b_buf - c_buf >= 2:
        add(imps, "buffers", f"buffers per query {b_buf:.0f} → {c_buf:.0f}")
    if timing:
        b_samples, c_samples = paired_client(base, cur)
        b_ms, c_ms = _median(b_samples), _median(c_samples)
        expected = b_ms * max(drift_factor, 1.0)  # only what the cell lost beyond its variant's drift
        if c_ms >= expected * th.time_factor and c_ms - expected >= th.floor_ms(b_samples):
            from scipy.stats import mannwhitneyu  # slow import, needed only here

            p = mannwhitneyu(c_samples, b_samples, alternative="greater").pvalue
            if p < th.p_value:
                drifted = f", run drift ×{drift_factor:.2f}" if drift_factor > 1.0 else ""
                add(regs, "time", f"median client latency {b_ms:.2f} → {c_ms:.2f} ms (×{c_ms / b_ms:.2f}{drifted}, "
                                  f"p={p:.1e})")
        elif b_ms * min(drift_factor, 1.0) >= c_ms * th.time_factor and b_ms - c_ms >= th.floor_ms(b_samples):
            add(imps, "time", f"median client latency {b_ms:.2f} → {c_ms:.2f} ms")
    return regs, imps


DEFAULT_THRESHOLDS = Thresholds()


def compare(base: Results, cur: Results, th: Thresholds = DEFAULT_THRESHOLDS, force: bool = False,
            across_machines: bool = False) -> Comparison:
    result = Comparison()
    reasons = incompatibilities(base, cur)
    if reasons and not force:
        result.incomparable = reasons
        return result
    protocols = protocol_difference(base, cur)
    if reasons or (protocols and force):
        result.timing_off = "forced comparison of incomparable runs"
    elif protocols:
        result.time_refused = protocols
    elif not across_machines:
        result.timing_off = timing_comparable(base, cur)
    result.drift = drift(base, cur)
    for bcell in base.cells:
        ccell = cur.cell(bcell.scenario, bcell.variant)
        if ccell is None:
            result.missing.append(f"{bcell.scenario} × {bcell.variant}")
            continue
        regs, imps = compare_cells(bcell, ccell, th, timing=result.timing_off is None and result.time_refused is None,
                                   drift_factor=result.drift.get(bcell.variant, 1.0))
        result.regressions += regs
        result.improvements += imps
    return result


def markdown(cmp: Comparison, base_id: str, cur_id: str) -> str:
    lines = [f"## taskbench compare: {base_id} → {cur_id}", ""]
    if cmp.incomparable:
        lines.append("**Cannot judge** — the runs are not comparable:")
        lines += [f"- {r}" for r in cmp.incomparable]
        return "\n".join(lines) + "\n"
    lines.append(f"**{len(cmp.regressions)} regression(s)**, {len(cmp.improvements)} improvement(s).")
    if cmp.time_refused:
        lines.append(f"**Cannot judge time** (exit 2): {cmp.time_refused}. Plans, buffers and SLA verdicts were "
                     "compared.")
    elif cmp.timing_off:
        lines.append(f"Time gate off: {cmp.timing_off}; plans, buffers and SLA verdicts were compared.")
    elif cmp.drift:
        lines.append("Whole-run drift per variant (median of its cells' ratios; each cell is judged beyond it): "
                     + ", ".join(f"{v} ×{d:.2f}" for v, d in cmp.drift.items()) + ".")
    for title, items in (("Regressions", cmp.regressions), ("Improvements", cmp.improvements)):
        if items:
            lines += ["", f"### {title}", "", "| scenario | variant | gate | what changed |", "|---|---|---|---|"]
            lines += [f"| {f.scenario} | {f.variant} | {f.gate} | {f.message} |" for f in items]
    if cmp.unconfirmed:
        lines += ["", "Not reproduced when measured again (noise; not a regression): "
                  + "; ".join(f"{f.scenario} × {f.variant} ({f.message})" for f in cmp.unconfirmed)]
    if cmp.missing:
        lines += ["", "Cells in the baseline but not in this run: " + ", ".join(cmp.missing)]
    return "\n".join(lines) + "\n"


def annotations(cmp: Comparison) -> list[str]:
    """GitHub Actions workflow commands: one error annotation per regression."""
    def clean(text: str) -> str:  # workflow commands end at a newline; % must be escaped
        return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")

    if cmp.incomparable:
        return [f"::error title=taskbench: cannot judge::{clean('; '.join(cmp.incomparable))}"]
    refused = [f"::error title=taskbench: cannot judge time::{clean(cmp.time_refused)}"] if cmp.time_refused else []
    return refused + [f"::error title=taskbench {f.gate} regression::"
                      f"{clean(f'{f.scenario} × {f.variant}: {f.message}')}" for f in cmp.regressions]
