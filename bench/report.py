"""Turn a ``results.json`` into ``summary.md`` and latency plots. Reads nothing but the results."""

from __future__ import annotations

from pathlib import Path

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
    lines += ["", "## Index cost per variant", "", "| variant | indexes | size | build s |", "|---|---:|---:|---:|"]
    for v in res.variants:
        lines.append(f"| {v.name} | {len(v.indexes)} | {_size(v.index_size_bytes)} | {v.build_seconds:.2f} |")
    lines += ["", "## Cells", "",
              "| scenario | variant | p50 | p95 [95% CI] | p99 | exec p50 | buffers p50 | verdict | plan |",
              "|---|---|---:|---:|---:|---:|---:|---|---|"]
    for c in res.cells:
        p95 = c.client.p95
        bufs = sorted(c.samples.buffers)[len(c.samples.buffers) // 2]
        lines.append(f"| {c.scenario} | {c.variant} | {_ms(c.client.p50.value)} | {_ms(p95.value)} "
                     f"[{_ms(p95.low)}, {_ms(p95.high)}] | {_ms(c.client.p99.value)} | "
                     f"{_ms(c.execution.p50.value)} | {bufs} | {c.verdict} | {_plan(c)} |")
    lines += ["", "![client latency per scenario and variant](latency.png)", ""]
    return "\n".join(lines)


def latency_plot(res: Results, path: Path) -> None:
    """Per SLA class, box plots of client latency per scenario × variant, with the SLA line."""
    classes = sorted(dict.fromkeys(c.sla_class for c in res.cells),
                     key=lambda k: next(c.sla_ms for c in res.cells if c.sla_class == k))
    variants = [v.name for v in res.variants]
    fig, axes = plt.subplots(len(classes), 1, figsize=(11, 3.6 * len(classes)), squeeze=False)
    colours = plt.get_cmap("tab10")
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
