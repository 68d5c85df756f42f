"""``taskbench run``, ``merge`` and ``report``: the matrix measured (whole, one share, every share at
once), shards merged, a run's report written."""

from __future__ import annotations

from pathlib import Path
from time import perf_counter
from typing import TYPE_CHECKING, Annotated

import typer

from bench import output
from bench.cli.app import command
from bench.cli.console import err, note, say, show
from bench.cli.options import PROFILE, REPORTS_DIR, Quiet, ReportsDir, Selected, measuring, selecting
from bench.cli.target_options import targeted
from bench.errors import DatabaseError, InputError, IsolationFailure
from bench.measure.options import RunOptions
from bench.progress import progress
from bench.targets.options import TargetSpec
from seed.profiles import Profile as DataProfile
from seed.profiles import get_profile

if TYPE_CHECKING:
    from bench.catalogue.files import Catalogue
    from bench.results import Results
    from bench.targets.target import Target

MeasuredProfile = Annotated[str | None, PROFILE]  # the dataset it must find (default: whichever is seeded)
ShardOf = Annotated[
    str | None,
    typer.Option(
        "--shard",
        help="Measure share i of N (i/N): whole variants, balanced by --durations; `taskbench merge` joins the shards.",
    ),
]
Durations = Annotated[
    Path | None,
    typer.Option(
        "--durations",
        help="The run whose durations balance the shares of --shard and --parallel (default: "
        f"{output.BASELINE_FILE} when it covers the variants, else equal weights).",
    ),
]
Parallel = Annotated[
    int,
    typer.Option(
        "--parallel",
        min=1,
        help="With --target neon: N shares measured at once, each on a Neon branch of its own, then merged.",
    ),
]
MergedOut = Annotated[
    Path | None,
    typer.Option("--out", help=f"Directory for the merged run and its report (default: {REPORTS_DIR}/<run-id>)."),
]


def measured(target: Target, cat: Catalogue, opts: RunOptions, reports_dir: Path, quiet: bool) -> Path:
    """The matrix on ``target``, saved and summed up."""
    from bench.runs import matrix

    with progress(not quiet, unit="cells") as advance:
        res = matrix.measure(target, cat, opts, advance)
    return saved(res, reports_dir, quiet)


def saved(res: Results, reports_dir: Path, quiet: bool = False) -> Path:
    """Save a run and say what it found (``quiet``: its one summary line, no line per cell)."""
    from bench import results as results_io

    path = results_io.save(res, reports_dir)
    summed_up(res, path, quiet)
    return path


def summed_up(res: Results, path: Path, quiet: bool = False) -> None:
    from bench.runs import conditions, matrix

    if not quiet:
        say(matrix.render(res))
    err.print(matrix.summary(res, path), highlight=False)
    for line in conditions.notes(res):
        note(line)


def isolated(path: Path) -> None:
    """Exit 1 once a run is saved (and reported) when a policy variant failed its isolation check."""
    from bench import results as results_io
    from bench.judge.gates import isolation_findings

    failures = isolation_findings(results_io.load(path))
    if failures:
        cells = ", ".join(f"{f.scenario} under {f.variant}" for f in failures)
        raise IsolationFailure(f"isolation failure in {len(failures)} cell(s), whatever their latency: {cells}")


def reported(path: Path, res: Results | None = None) -> None:
    """Write the report of the run at ``path`` (``res``: its results, read already) and name its files."""
    from bench.report.build import write_report  # matplotlib is slow to import: only for commands that plot

    say(str(written) for written in write_report(path, res=res))


def _holding(target: Target, profile: DataProfile | None) -> Target:
    """``target``, refused (exit 3) when ``profile`` is given and the dataset seeded there is another."""
    from bench.targets.schema import seeded_dataset

    if profile is None:
        return target
    held = seeded_dataset(target)
    if held.fingerprint != profile.fingerprint():
        raise DatabaseError(
            f"database {target.database!r} holds dataset {held.fingerprint} (profile {held.profile.get('name')}), "
            f"not the {profile.name} profile's {profile.fingerprint()}: run `taskbench seed --profile {profile.name}` "
            "first, or `taskbench bench`, which seeds and runs"
        )
    return target


class _Run:
    """What ``taskbench run`` measures and where it writes: the same whether the run is whole, one
    share or every share at once."""

    def __init__(self, cat: Catalogue, opts: RunOptions, prof: DataProfile | None, reports_dir: Path, quiet: bool):
        self.cat, self.opts, self.prof, self.reports_dir, self.quiet = cat, opts, prof, reports_dir, quiet

    def whole(self, spec: TargetSpec) -> Path:
        from bench.targets.provision import measurement_target

        with measurement_target(spec, announce=note) as target:
            return measured(_holding(show(target), self.prof), self.cat, self.opts, self.reports_dir, self.quiet)

    def share(self, spec: TargetSpec, shard: str, durations: Path | None) -> Path:
        from bench.runs import shard as sharding
        from bench.targets.provision import measurement_target

        index, count = sharding.parse_shard(shard)
        plan = sharding.split(self.cat, count, sharding.durations(self.cat, durations))
        with measurement_target(spec, announce=note) as target:
            note(f"shard {index}/{count}: {', '.join(plan.variants(index))} (split by {plan.weights})")
            with progress(not self.quiet, unit="cells") as advance:
                held = _holding(show(target), self.prof)
                res = sharding.measure_shard(held, self.cat, self.opts, plan, index, advance)
                return saved(res, self.reports_dir, self.quiet)

    def shares(self, spec: TargetSpec, parallel: int, durations: Path | None) -> Path:
        from bench.merge import merge
        from bench.runs import shard as sharding
        from bench.targets.provision import measurement_targets

        plan = sharding.split(self.cat, parallel, sharding.durations(self.cat, durations))  # refused before any branch
        note(f"{parallel} shares (split by {plan.weights}), measured at once")
        with measurement_targets(spec, parallel, note) as targets:
            shards = sharding.measure_parallel(targets, self.cat, self.opts, plan, note)
        merged = merge([(f"shard {i}/{parallel}", res) for i, res in enumerate(shards, 1)])
        return saved(merged, self.reports_dir, self.quiet)


@command("run")
@targeted
@measuring()
@selecting()
def run_cmd(
    *,
    selected: Selected,
    shard: ShardOf = None,
    durations: Durations = None,
    parallel: Parallel = 1,
    profile: MeasuredProfile = None,
    reports_dir: ReportsDir = REPORTS_DIR,
    quiet: Quiet = False,
    opts: RunOptions,
    spec: TargetSpec,
) -> None:
    """Measure every scenario under every variant (or one share of them); write reports/<run-id>/results.json.
    With --profile, the database must hold that profile's dataset (seed it first, or use `bench`)."""
    from bench.targets.provision import for_dataset

    cat = selected.catalogue
    prof = get_profile(profile) if profile else None
    spec = for_dataset(spec, prof) if prof else spec  # on Neon: measured on that dataset's seeded parent
    if shard and parallel > 1:
        raise InputError("--shard measures one share here, --parallel every share at once: give one of them")
    run = _Run(cat, opts, prof, reports_dir, quiet)
    if shard:
        path = run.share(spec, shard, durations)
    elif parallel > 1:
        path = run.shares(spec, parallel, durations)
    else:
        path = run.whole(spec)
    isolated(path)


@command("merge")
def merge_cmd(
    shards: Annotated[list[Path], typer.Argument(help="Each shard's run directory or results.json.")],
    out_dir: MergedOut = None,
) -> None:
    """Merge the shards of a sharded run (run --shard i/N, every one once) into one run and its report;
    exit 2, naming what differs, when they do not belong together."""
    from bench import results as results_io
    from bench.merge import merge

    output.require_writable(out_dir or REPORTS_DIR)
    started = perf_counter()
    merged = merge([(str(path), results_io.load(path)) for path in shards])
    if out_dir is None:
        path = results_io.save(merged, REPORTS_DIR)
    elif (out_dir / output.RESULTS_FILE).exists():
        raise InputError(f"--out {out_dir} already holds a {output.RESULTS_FILE}: choose another directory")
    else:
        path = results_io.write(merged, out_dir)
    note(f"merged {len(shards)} shards in {perf_counter() - started:.2f} s")
    summed_up(merged, path)
    reported(path)


@command("report")
def report_cmd(run_dir: Annotated[Path, typer.Argument(help="A run directory or its results.json.")]) -> None:
    """Write index.html, summary.md, results.csv and the figures next to a results.json."""
    from bench import results as results_io

    output.require_writable(results_io.resolve(run_dir).parent)
    # a missing or malformed results file is refused before the figures' imports (seconds without
    # cached bytecode)
    reported(run_dir, results_io.load(run_dir))
