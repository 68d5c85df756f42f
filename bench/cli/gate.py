"""``taskbench compare``, ``check`` and ``baseline save``: the gate on two runs, the gate as CI runs
it (base and head measured now, side by side), and the committed baseline."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bench import output
from bench.cli.app import app, command
from bench.cli.console import note, say, show
from bench.cli.options import Quiet, ReportsDir, Selected, measuring, option_group, selecting
from bench.cli.target_options import targeted
from bench.judge.options import GateThresholds, TimeThresholds
from bench.measure.options import PairOptions, RunOptions
from bench.progress import progress
from bench.targets.options import TargetSpec

if TYPE_CHECKING:
    from bench.catalogue.files import Catalogue
    from bench.judge.check import Confirm, MeasureSides
    from bench.judge.compare import Comparison
    from bench.results import Results, SideBySide
    from bench.runs.sides import SidesOptions
    from bench.targets.target import Target

MarkdownOut = Annotated[
    Path | None, typer.Option("--markdown", help='Also write the Markdown summary here (e.g. "$GITHUB_STEP_SUMMARY").')
]
GithubAnnotations = Annotated[bool, typer.Option("--annotations", help="Print GitHub error annotations.")]

# The gates' thresholds, declared once with their defaults from the library's dataclasses.
_GATE_OPTIONS: dict[str, Any] = {
    "buffer_tolerance": Annotated[
        float, typer.Option("--buffer-tolerance", min=0.0, help="Relative rise in median buffers per query.")
    ],
    "misestimate_growth": Annotated[
        float,
        typer.Option("--misestimate-growth", min=1.0, help="Growth of a node's row misestimate (q-error) that counts."),
    ],
    "misestimate_floor": Annotated[
        float, typer.Option("--misestimate-floor", min=1.0, help="... when the misestimate is at least this.")
    ],
    "rows_removed_growth": Annotated[
        float, typer.Option("--rows-removed-growth", min=0.0, help="Relative rise in rows removed by filters.")
    ],
}
_TIME_OPTIONS: dict[str, Any] = {
    "factor": Annotated[
        float, typer.Option("--factor", min=1.0, help="Median paired ratio head ÷ base that counts as slower.")
    ],
    "alpha": Annotated[
        float, typer.Option("--alpha", min=0.0, max=1.0, help="False alarms of the time gate per check, at most.")
    ],
    "floor_ms": Annotated[float, typer.Option("--floor-ms", min=0.0, help="Smallest median paired difference, ms.")],
}
PAIR_OPTIONS: dict[str, Any] = {
    "pairs": Annotated[
        int, typer.Option("--pairs", min=5, help="Base/head pairs per cell in the side-by-side timing.")
    ],
}


# The deterministic gates' thresholds, the time gate's and the pairs per cell, each group received
# as one value of the library's type, its defaults.
gated = option_group("gates", _GATE_OPTIONS, GateThresholds)
timed = option_group("time", _TIME_OPTIONS, TimeThresholds)
with_pairs = option_group("pairs", PAIR_OPTIONS, PairOptions)  # their measuring settings come from ``opts``

Reference = Annotated[
    Path | None,
    typer.Argument(
        help=f"A reference run (e.g. {output.BASELINE_FILE}): its drift against the head is shown, "
        "and outside git it stands for 'before'."
    ),
]
BeforeDir = Annotated[Path | None, typer.Option("--before", help='A scenarios directory that stands for "before".')]
BeforeRef = Annotated[
    str | None,
    typer.Option(
        "--before-ref",
        help='A git commit whose scenarios directory stands for "before" (default: the merge base with '
        "the default branch); read from the repository, nothing checked out.",
    ),
]
MeasureUnchanged = Annotated[
    bool,
    typer.Option(
        "--measure-unchanged",
        help="Measure cells that are the same on both sides twice too (the gate proof's A/A checks).",
    ),
]


def verdict(
    result: Comparison,
    base_id: str,
    cur_id: str,
    github: bool,
    markdown_out: Path | None,
    report: tuple[Path, Results] | None = None,
) -> None:
    """Print a comparison (and its annotations, Markdown: with a check's ``report``, its index.html
    and its run, the plans of the cells with a plan finding) and exit with its code."""
    from bench.report import render

    say(render.terminal(result, base_id, cur_id))
    if github:
        for line in render.annotations(result):
            print(line)
    if markdown_out:
        link = render.ReportLink.to(*report, markdown_out) if report else None
        with markdown_out.open("a", encoding="utf-8") as f:  # append: $GITHUB_STEP_SUMMARY may hold more
            f.write("\n".join(render.markdown(result, base_id, cur_id, link)))
    raise typer.Exit(result.exit_code)


@command("compare")
@gated
def compare_cmd(
    baseline: Annotated[
        Path, typer.Argument(help="Reference run directory or results.json (e.g. the committed baseline).")
    ],
    current: Annotated[Path, typer.Argument(help="Current run directory or results.json.")],
    markdown_out: MarkdownOut = None,
    github: GithubAnnotations = False,
    force: Annotated[bool, typer.Option("--force", help="Compare runs of different datasets or settings.")] = False,
    *,
    gates: GateThresholds,
) -> None:
    """Plans, buffers, warning signs, rows and verdicts of two runs: exit 0 no regression, 1 regression,
    2 cannot judge. Time is judged only side by side (taskbench check)."""
    from bench import results as results_io
    from bench.judge.compare import compare

    base, cur = results_io.load(baseline), results_io.load(current)
    verdict(compare(base, cur, gates, force=force), base.run_id, cur.run_id, github, markdown_out)


def measuring_sides(
    target: Target, opts: SidesOptions, quiet: bool, base_server: Target | None = None
) -> tuple[MeasureSides, Confirm]:
    """The check's two measurements on ``target`` (the base side on ``base_server`` when given: an
    upgrade check), each with its progress: both sides, and pairs taken again to confirm a time finding."""
    from bench.measure.paired import side_by_side
    from bench.runs import sides

    def measure(before: Catalogue, after: Catalogue, base_schema: str | None) -> Results:
        with progress(not quiet, unit="steps") as advance:
            return sides.measure(target, before, after, opts, advance, base_schema, base_server)

    def confirm(before: Catalogue, after: Catalogue, base_schema: str | None, n: int) -> SideBySide:
        with progress(not quiet, unit="variants") as advance:
            pairs = replace(opts.pairs, pairs=n)
            return side_by_side(target, before, after, pairs, advance, base_schema, base_server)

    return measure, confirm


@command("check")
@targeted
@measuring()
@gated
@timed
@with_pairs
@selecting()
def check_cmd(
    baseline: Reference = None,
    *,
    selected: Selected,
    before: BeforeDir = None,
    before_ref: BeforeRef = None,
    measure_unchanged: MeasureUnchanged = False,
    reports_dir: ReportsDir = output.CHECK_DIR,
    markdown_out: MarkdownOut = None,
    github: GithubAnnotations = False,
    quiet: Quiet = False,
    time: TimeThresholds,
    pairs: PairOptions,
    gates: GateThresholds,
    opts: RunOptions,
    spec: TargetSpec,
) -> None:
    """The CI gate: measure base and head now, on this server, and judge head against base on every gate
    (plans, buffers, warning signs, rows, verdicts, time side by side)."""
    from bench import results as results_io
    from bench.judge.check import CheckThresholds, check, resolve_before
    from bench.runs import sides
    from bench.targets.provision import measurement_target
    from bench.targets.schema import model_ddl

    reference = results_io.load(baseline) if baseline else None
    catalogue = selected.catalogue
    sides_opts = sides.SidesOptions(opts, sides.pairs_like(pairs, opts), measure_unchanged)
    with (
        resolve_before(selected.whole, selected.scenarios_dir, before, before_ref, reference, model_ddl()) as whole,
        measurement_target(spec, announce=note) as target,
    ):
        base = whole.only(catalogue) if selected.narrowed else whole
        show(target)
        note(f"before: {base.source}")
        measure, confirm = measuring_sides(target, sides_opts, quiet)
        current, result = check(catalogue, base, measure, confirm, CheckThresholds(gates, time), reference)
    report = None
    if current is not None:
        from bench.report.build import write_report

        saved = results_io.save(current, reports_dir)
        html = write_report(saved)[0]  # its index.html draws the base and head plans of the cells measured apart
        note(f"{len(current.cells)} cells → {saved}; report: {html}")
        report = (html, current)
    verdict(result, "base", current.run_id if current else "head", github, markdown_out, report)


baseline_app = typer.Typer(
    no_args_is_help=True, help="The committed baseline that `compare` and `make check` judge against."
)
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("save")
def baseline_save_cmd(
    run_dir: Annotated[Path, typer.Argument(help="The run to adopt (a run directory or its results.json).")],
    reason: Annotated[str, typer.Option("--reason", help="Why this run is the new baseline.")] = "",
    to: Annotated[Path, typer.Option("--to", help="Where the baseline lives.")] = output.BASELINE_FILE,
) -> None:
    """Save RUN_DIR's results as the baseline, with the reason (commit the file)."""
    from bench import results as results_io

    res = results_io.save_baseline(run_dir, reason, output.require_writable(to.parent) / to.name)
    assert res.baseline is not None, "save_baseline records why"
    say(
        [
            f"baseline {to} ← run {res.run_id} ({len(res.cells)} cells, dataset {res.dataset.fingerprint}): "
            f"{res.baseline.reason}"
        ]
    )
