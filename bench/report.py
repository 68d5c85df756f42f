"""Turn a ``results.json`` into ``summary.md`` and latency plots. Reads nothing but the results."""

from __future__ import annotations

from pathlib import Path
from statistics import median

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402

from . import results as results_io  # noqa: E402
from .results import Cell, Results  # noqa: E402

_VERDICT_MARK = {"pass": "PASS", "fail": "FAIL", "inconclusive": "??"}


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    value = n / 1024
    units = ["kB", "MB", "GB"]
    while value >= 1024 and len(units) > 1:
        value /= 1024
        units.pop(0)
    return f"{value:.1f} {units[0]}"


def _plan(cell: Cell) -> str:
    nodes = " → ".join(cell.plan.node_types)
    idx = ", ".join(cell.plan.indexes) or "no index"
    flip = f" ({cell.plan_count} plans)" if cell.plan_count > 1 else ""
    return f"{nodes} [{idx}]{flip}"


def summary_markdown(res: Results) -> str:
    env, ds = res.environment, res.dataset
    rows = ", ".join(f"{k} {v:,}" for k, v in ds.row_counts.items())
    lines = [
        f"# taskbench run {res.run_id}",
        "",
        f"- target: {env.target_kind} — PostgreSQL {env.server_version}",
        f"- dataset: profile `{ds.profile.get('name')}` ({ds.fingerprint}): {rows}",
        f"- harness {env.harness_version}, commit {env.git_commit}, machine {env.machine.get('hostname')} "
        f"({env.machine.get('cpus')} CPUs), {res.created_at:%Y-%m-%d %H:%M} UTC",
        f"- {res.config.samples}–{res.config.max_samples} samples per cell after {res.config.warmup} warm-up runs; "
        f"verdict on client-observed p95 with its {res.config.confidence:.0%} interval",
        "",
        "## Verdicts (client p95 ms; PASS/FAIL/?? = pass / fail / inconclusive)",
        "",
    ]
    variants = [v.name for v in res.variants]
    scenarios = list(dict.fromkeys(c.scenario for c in res.cells))
    lines.append("| scenario | SLA | " + " | ".join(variants) + " |")
    lines.append("|---|---:|" + "---:|" * len(variants))
    for sc in scenarios:
        cells = [res.cell(sc, v) for v in variants]
        sla = next(c.sla_ms for c in cells if c)
        shown = [f"{_ms(c.client.p95.value)} {_VERDICT_MARK[c.verdict]}" if c else "–" for c in cells]
        lines.append(f"| {sc} | {sla:.0f} | " + " | ".join(shown) + " |")
    lines += _cost_table(res) + _stability_lines(res)
    lines += ["", "## Cells", "",
              f"Cold: {res.cold_cache.method}.", "",
              "| scenario | variant | p50 | p95 [95% CI] | p99 | exec p50 | buffers p50 | cold p50 (blocks read) "
              "| verdict | plan |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for c in res.cells:
        p95 = c.client.p95
        cold = f"{_ms(median(c.cold.client_ms))} ({median(c.cold.shared_read):.0f})" if c.cold else "–"
        lines.append(f"| {c.scenario} | {c.variant} | {_ms(c.client.p50.value)} | {_ms(p95.value)} "
                     f"[{_ms(p95.low)}, {_ms(p95.high)}] | {_ms(c.client.p99.value)} | "
                     f"{_ms(c.execution.p50.value)} | {median(c.samples.buffers):.0f} | {cold} | {c.verdict} "
                     f"| {_plan(c)} |")
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in res.phase_seconds.items())
    lines += ["", f"Where the run's time went: {phases} (total {sum(res.phase_seconds.values()):.0f} s).", "",
              "![client latency per scenario and variant](latency.png)", ""]
    return "\n".join(lines)


def _cost_table(res: Results) -> list[str]:
    """Size, build time and write tax per variant; the write tax also relative to the baseline."""
    base = next((v.write for v in res.variants if v.name == "baseline" and v.write), None)

    def rel(value: float, ref: float | None) -> str:
        return f" ({value / ref:.2f}×)" if ref else ""

    lines = ["", "## What each variant costs", "",
             "Write tax: inserts and task completions on a scratch copy, rolled back; WAL bytes per row "
             "(after a CHECKPOINT, so full-page writes included).", "",
             "| variant | indexes | size | build s | insert rows/s | update rows/s | WAL B/insert | WAL B/update |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for v in res.variants:
        w = v.write
        tax = (f"{w.insert_rows_per_s:,.0f}{rel(w.insert_rows_per_s, base and base.insert_rows_per_s)} | "
               f"{w.update_rows_per_s:,.0f}{rel(w.update_rows_per_s, base and base.update_rows_per_s)} | "
               f"{w.insert_wal_bytes_per_row:,.0f} | {w.update_wal_bytes_per_row:,.0f}") if w else "– | – | – | –"
        lines.append(f"| {v.name} | {len(v.indexes)} | {_size(v.index_size_bytes)} | {v.build_seconds:.2f} | {tax} |")
    return lines


def _stability_lines(res: Results) -> list[str]:
    flips = [c for c in res.cells if c.stability and c.stability.flipped]
    if not any(c.stability for c in res.cells):
        return []
    rounds = next(c.stability.rounds for c in res.cells if c.stability)
    if not flips:
        return ["", f"Plan stability: no plan flipped across {rounds} re-ANALYZEs."]
    lines = ["", f"## Plans that flip across {rounds} re-ANALYZEs", "",
             "| scenario | variant | parameter sets that flipped | plans seen |", "|---|---|---:|---:|"]
    lines += [f"| {c.scenario} | {c.variant} | {c.stability.flipped} | {len(c.stability.plans)} |" for c in flips]
    return lines


def latency_plot(res: Results, path: Path) -> None:
    """Per SLA class, box plots of client latency per scenario × variant, with the SLA line."""
    classes = sorted(dict.fromkeys(c.sla_class for c in res.cells),
                     key=lambda k: next(c.sla_ms for c in res.cells if c.sla_class == k))
    variants = [v.name for v in res.variants]
    fig, axes = plt.subplots(len(classes), 1, figsize=(11, 3.6 * len(classes)), squeeze=False)
    colours = plt.get_cmap("tab20")
    for ax, cls in zip(axes[:, 0], classes, strict=True):
        cells = [c for c in res.cells if c.sla_class == cls]
        scenarios = list(dict.fromkeys(c.scenario for c in cells))
        width = 0.8 / max(len(variants), 1)
        for vi, variant in enumerate(variants):
            for si, sc in enumerate(scenarios):
                cell = next((c for c in cells if c.scenario == sc and c.variant == variant), None)
                if cell is None:
                    continue
                pos = si + (vi - (len(variants) - 1) / 2) * width
                box = ax.boxplot([cell.samples.client_ms], positions=[pos], widths=width * 0.85,
                                 patch_artist=True, showfliers=False, whis=(5, 95))
                failed = cell.verdict == "fail"
                for patch in box["boxes"]:
                    patch.set_facecolor(colours(vi))
                    patch.set_alpha(0.75)
                    patch.set_hatch("xx" if failed else "")
        sla = cells[0].sla_ms
        ax.axhline(sla, color="crimson", linestyle="--", linewidth=1.5)
        ax.text(len(scenarios) - 0.5, sla, f" SLA {sla:.0f} ms", color="crimson", va="bottom", ha="right")
        ax.set_yscale("log")
        ax.set_xticks(range(len(scenarios)), scenarios, rotation=12, ha="right", fontsize=9)
        ax.set_ylabel("client latency (ms, log)")
        ax.set_title(f"{cls} — SLA {sla:.0f} ms (boxes: p25–p75, whiskers p5–p95; hatched = fails SLA)")
        ax.grid(axis="y", alpha=0.3)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours(i), alpha=0.75) for i in range(len(variants))]
    fig.legend(handles, variants, loc="upper right", ncols=len(variants))
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(run_path: Path, out_dir: Path | None = None) -> list[Path]:
    res = results_io.load(run_path)
    out = out_dir or results_io.resolve(run_path).parent
    out.mkdir(parents=True, exist_ok=True)
    summary = out / "summary.md"
    summary.write_text(summary_markdown(res), encoding="utf-8")
    png = out / "latency.png"
    latency_plot(res, png)
    return [summary, png]
