"""The ``taskbench`` command: thin wrappers that parse arguments and call library functions."""

from __future__ import annotations

import functools
import inspect
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from time import perf_counter
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console
from typer._click.exceptions import NoArgsIsHelpError, UsageError

from bench import output
from bench import results as results_io
from bench.advise.objective import Objective
from bench.advise.run import AdviseOptions
from bench.catalogue import files as catalog_io
from bench.catalogue.files import Catalog
from bench.errors import (
    EXIT_INPUT,
    EXIT_OK,
    DatabaseError,
    InputError,
    Interrupted,
    TaskbenchError,
    as_user_error,
    first_line,
    hide_secrets,
)
from bench.judge.compare import Comparison
from bench.judge.gates import GateThresholds
from bench.judge.timegate import TimeThresholds
from bench.measure.paired import PairOptions
from bench.measure.runner import RunOptions
from bench.measure.timeout import MIN_TIMEOUT_MS
from bench.progress import progress
from bench.results import Results, SideBySide
from bench.runs import crosscheck, matrix
from bench.runs import scale as scaling
from bench.runs.load import DEFAULT_VARIANT as LOAD_VARIANT
from bench.runs.load import LoadOptions
from bench.targets import server
from bench.targets.neon import KEEP_PARENTS, NeonSettings
from bench.targets.provision import (
    KINDS,
    TargetSpec,
    dataset_home,
    for_dataset,
    measurement_target,
    measurement_targets,
    require_lasting,
    seeded_home,
)
from bench.targets.target import Target
from seed.profiles import DEFAULT_PROFILE, get_profile
from seed.profiles import Profile as DataProfile

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Benchmark the Todo/chat app's queries under index variants against their SLAs.",
)


def command(name: str, on: typer.Typer | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register a command (on ``app``, or the sub-command group ``on``) whose Ctrl-C becomes a
    documented exit code instead of 'Aborted!'."""

    def register(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except KeyboardInterrupt:
                raise Interrupted(
                    "interrupted; no partial results were written and applied indexes were removed"
                ) from None

        return (on or app).command(name)(guarded)

    return register


out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

_PROFILE = typer.Option("--profile", help="Data profile: ci, default or large.")
Profile = Annotated[str, _PROFILE]
MeasuredProfile = Annotated[str | None, _PROFILE]  # run: the dataset it must find (default: whichever is seeded)
Users = Annotated[int | None, typer.Option("--users", help="Override the profile's number of users.")]
TasksPerUser = Annotated[int | None, typer.Option("--tasks-per-user", help="Override tasks per (ordinary) user.")]
Seed = Annotated[int | None, typer.Option("--seed", help="Override the profile's random seed.")]
Generate = Annotated[
    str,
    typer.Option(
        "--generate", help="Where rows are made: client (streamed binary COPY) or server (SQL; for slow links)."
    ),
]
ScenariosDir = Annotated[Path, typer.Option("--scenarios-dir", help="Directory of sla.toml, queries/, variants/.")]
Only = Annotated[list[str] | None, typer.Option("--scenario", "-s", help="Run only this scenario (repeatable).")]
OnlyVariant = Annotated[list[str] | None, typer.Option("--variant", "-v", help="Run only this variant (repeatable).")]
ExplainN = Annotated[
    int,
    typer.Option(
        "--explain-samples",
        min=1,
        help="Samples per cell that also run EXPLAIN (ANALYZE, BUFFERS): the first K, "
        "with the same parameter sets in every run.",
    ),
]
CellBudget = Annotated[
    float,
    typer.Option(
        "--cell-budget", min=0.0, help="Seconds of measuring per cell; a cell still undecided then is inconclusive."
    ),
]
TimeoutFactor = Annotated[
    float,
    typer.Option(
        "--timeout-factor",
        min=1.0,
        help=f"Each cell's statement timeout, in times its SLA (at least {MIN_TIMEOUT_MS} ms): an execution cut "
        "off by it fails the cell at once.",
    ),
]
Share = Annotated[
    bool,
    typer.Option(
        "--share/--no-share",
        help="A cell whose plans and used indexes are a measured cell's (same scenario) shares its samples "
        "instead of being measured again.",
    ),
]
MinSamples = Annotated[
    int,
    typer.Option(
        "--min-samples", min=0, help="Samples per user class at each size, taken for the curves even once decided."
    ),
]
Concurrent = Annotated[
    bool,
    typer.Option("--concurrent", help="Measure even while another measurement holds this server (the results say so)."),
]
LockWait = Annotated[
    float,
    typer.Option("--lock-wait", min=0.0, help="Seconds to wait for another measurement on this server to finish."),
]
ColdN = Annotated[int, typer.Option("--cold-samples", min=0, help="Cold-cache executions per cell (0: no cold pass).")]
StabilityN = Annotated[
    int, typer.Option("--stability-rounds", min=0, help="Re-ANALYZEs in the plan-stability check (0: skip).")
]
# Checked as the command line is read, before any work (output.require_writable): measuring for
# minutes into a directory that cannot take the results would lose them.
ReportsDir = Annotated[
    Path,
    typer.Option("--reports-dir", help="Where run directories are written.", callback=output.require_writable),
]
REPORTS_DIR = results_io.REPORTS_DIR
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
        f"{results_io.BASELINE_FILE} when it covers the variants, else equal weights).",
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
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output; a run says one summary line.")]


def _note(message: str) -> None:
    err.print(message, highlight=False, markup=False)


def _show(target: Target) -> Target:
    probe = target.probe
    first = (
        f"; first contact: connect {probe.connect_ms:.0f} ms, first query {probe.first_query_ms:.1f} ms "
        f"(then {probe.warm_query_ms:.2f} ms)"
        if probe
        else ""
    )
    _note(f"target: {target.kind} {target.display} ({target.host_kind} connection{first})")
    return target


def _with_options(
    fn: Callable[..., Any], options: dict[str, Any], defaults: dict[str, Any], param: str, build: Callable[..., Any]
) -> Callable[..., Any]:
    """``fn`` with ``options`` (name → Annotated type) added to its signature for typer; the command
    receives them built into one value, as its parameter ``param``."""
    signature = inspect.signature(fn, eval_str=True)
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=defaults[name], annotation=option)
        for name, option in options.items()
    ]

    @functools.wraps(fn)
    def with_value(*args: Any, **kwargs: Any) -> Any:
        value = build(**{name: kwargs.pop(name) for name in options})
        return fn(*args, **{param: value}, **kwargs)

    own = [p for p in signature.parameters.values() if p.name != param]
    with_value.__signature__ = signature.replace(parameters=[*own, *extra])  # type: ignore[attr-defined]
    with_value.__annotations__ = {k: v for k, v in fn.__annotations__.items() if k != param}
    return with_value


NEON_PANEL = "Neon (--target neon)"  # a help panel of their own: a dozen options most runs never need
# Options every command that opens a database shares, added to its signature by @targeted and
# handed to it as one TargetSpec.
_TARGET_OPTIONS: dict[str, tuple[Any, Any]] = {
    "target": (
        str,
        typer.Option(
            "--target",
            help=f"Where PostgreSQL comes from: {', '.join(KINDS)} (auto: --database-url if given, else embedded).",
        ),
    ),
    "database_url": (
        str | None,
        typer.Option(
            "--database-url",
            envvar="DATABASE_URL",
            show_envvar=True,
            help="PostgreSQL server to use; without it an embedded PostgreSQL is started.",
        ),
    ),
    "db_name": (str, typer.Option("--db-name", help="Database taskbench works in (created if missing).")),
    "data_dir": (Path, typer.Option("--data-dir", help="Data directory of the embedded PostgreSQL.")),
    "force": (bool, typer.Option("--force", help="Use a database holding tables taskbench did not create.")),
    "neon_project": (
        str | None,
        typer.Option(
            "--neon-project",
            rich_help_panel=NEON_PANEL,
            envvar="NEON_PROJECT_ID",
            show_envvar=True,
            help="Neon project id (the API key comes from NEON_API_KEY).",
        ),
    ),
    "neon_parent": (
        str | None,
        typer.Option(
            "--neon-parent",
            rich_help_panel=NEON_PANEL,
            help="Neon branch that holds the seeded dataset (default: the seeded parent of --db-name, the "
            "dataset and the models' schema, taskbench-seeded-<db>-<dataset>-<schema>; found by --db-name "
            "when only measuring).",
        ),
    ),
    "neon_branch": (
        str | None,
        typer.Option(
            "--neon-branch",
            rich_help_panel=NEON_PANEL,
            help="Name of the run's Neon branch (default: taskbench-run-<random>).",
        ),
    ),
    # Neon's rules for sizes and timeouts are checked by NeonSettings, in one line naming the option.
    "neon_compute": (
        float,
        typer.Option("--neon-compute", rich_help_panel=NEON_PANEL, help="Compute size of a run's branch, CU (fixed)."),
    ),
    "neon_max_compute": (
        float,
        typer.Option(
            "--neon-max-compute",
            rich_help_panel=NEON_PANEL,
            help="Largest --neon-compute to allow: the plan's (Free 2, Launch 16, Scale 56 CU).",
        ),
    ),
    "neon_suspend": (
        int,
        typer.Option(
            "--neon-suspend-timeout",
            rich_help_panel=NEON_PANEL,
            help="Seconds idle before Neon suspends the compute (0: Neon's default; -1: never).",
        ),
    ),
    "pooled": (
        bool,
        typer.Option(
            "--pooled",
            rich_help_panel=NEON_PANEL,
            help="Measure through Neon's pooler (-pooler host) instead of the direct host.",
        ),
    ),
    "keep_branch": (
        bool,
        typer.Option(
            "--keep-branch", rich_help_panel=NEON_PANEL, help="Keep the run's Neon branch (it is deleted by default)."
        ),
    ),
    "neon_expiry": (
        float,
        typer.Option(
            "--neon-expiry-hours",
            rich_help_panel=NEON_PANEL,
            help="A run's branch deletes itself this long after creation, even if taskbench is killed (0: never).",
        ),
    ),
    # The allowance a run of several branches (--parallel) is checked against before anything is created.
    "neon_max_branches": (
        int,
        typer.Option(
            "--neon-max-branches",
            rich_help_panel=NEON_PANEL,
            help="Branches the project may have (Free and Launch 10, Scale 25).",
        ),
    ),
    "neon_max_active": (
        int,
        typer.Option(
            "--neon-max-active-computes",
            rich_help_panel=NEON_PANEL,
            help="Computes the project may have active at once (Neon's default 20).",
        ),
    ),
    "neon_api_url": (
        str,
        typer.Option("--neon-api-url", rich_help_panel=NEON_PANEL, envvar="NEON_API_URL", help="Neon API base URL."),
    ),
    "pg_major": (int, typer.Option("--pg-major", min=12, help="PostgreSQL major of the Docker image.")),
}
# Each default is the library's: TargetSpec's, or NeonSettings' for the Neon options.
_TARGET_DEFAULTS: dict[str, Any] = {
    "target": TargetSpec.kind,
    "database_url": TargetSpec.database_url,
    "db_name": TargetSpec.db_name,
    "data_dir": TargetSpec.data_dir,
    "force": TargetSpec.force,
    "pg_major": TargetSpec.pg_major,
    "neon_project": None,  # NeonSettings has no default: NEON_PROJECT_ID or --neon-project, checked by _spec
    "neon_parent": NeonSettings.parent,
    "neon_branch": NeonSettings.branch,
    "neon_compute": NeonSettings.compute_cu,
    "neon_max_compute": NeonSettings.max_compute_cu,
    "neon_suspend": NeonSettings.suspend_timeout,
    "pooled": NeonSettings.pooled,
    "keep_branch": NeonSettings.keep_branch,
    "neon_expiry": NeonSettings.expiry_hours,
    "neon_max_branches": NeonSettings.max_branches,
    "neon_max_active": NeonSettings.max_active_computes,
    "neon_api_url": NeonSettings.api_url,
}


def _spec(
    target: str,
    database_url: str | None,
    db_name: str,
    data_dir: Path,
    force: bool,
    neon_project: str | None,
    neon_parent: str | None,
    neon_branch: str | None,
    neon_compute: float,
    neon_max_compute: float,
    neon_suspend: int,
    pooled: bool,
    keep_branch: bool,
    neon_expiry: float,
    neon_max_branches: int,
    neon_max_active: int,
    neon_api_url: str,
    pg_major: int,
) -> TargetSpec:
    neon = None
    if target == "neon":
        neon = NeonSettings(
            api_key=_neon_api_key(neon_project, "--target neon"),
            project_id=neon_project or "",
            api_url=neon_api_url,
            parent=neon_parent,
            branch=neon_branch,
            compute_cu=neon_compute,
            max_compute_cu=neon_max_compute,
            suspend_timeout=neon_suspend,
            pooled=pooled,
            keep_branch=keep_branch,
            expiry_hours=neon_expiry,
            max_branches=neon_max_branches,
            max_active_computes=neon_max_active,
        )
    return TargetSpec(
        kind=target,
        database_url=database_url or None,
        db_name=db_name,
        data_dir=data_dir,
        force=force,
        neon=neon,
        pg_major=pg_major,
    )


def _neon_api_key(project: str | None, what: str) -> str:
    """NEON_API_KEY, refused in one line when it or the project is missing."""
    api_key = os.environ.get("NEON_API_KEY", "")
    if not api_key or not project:
        raise InputError(f"{what} needs NEON_API_KEY in the environment and NEON_PROJECT_ID (or --neon-project)")
    return api_key


def targeted(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the shared target options; it receives them as ``spec: TargetSpec``."""
    options = {name: Annotated[kind, option] for name, (kind, option) in _TARGET_OPTIONS.items()}
    return _with_options(fn, options, _TARGET_DEFAULTS, "spec", _spec)


# How a command that measures measures: declared once, defaults from RunOptions.
_RUN_OPTIONS: dict[str, Any] = {
    "explain_samples": ExplainN,
    "cell_budget": CellBudget,
    "cold_samples": ColdN,
    "stability_rounds": StabilityN,
    "timeout_factor": TimeoutFactor,
    "share": Share,
    "concurrent": Concurrent,
    "lock_wait": LockWait,
}


def measuring(*names: str, **fixed: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a command RunOptions' options (``names``, or all of them); it receives them as
    ``opts: RunOptions``, with ``fixed`` settings for those it does not offer."""
    chosen = {name: _RUN_OPTIONS[name] for name in names or _RUN_OPTIONS}
    defaults = {name: getattr(RunOptions, name) for name in chosen}
    return lambda fn: _with_options(fn, chosen, defaults, "opts", lambda **given: RunOptions(**fixed, **given))


# How `taskbench load` loads: declared once, defaults from LoadOptions.
_LOAD_OPTIONS: dict[str, Any] = {
    "clients": Annotated[int, typer.Option("--clients", "-c", min=1, help="Concurrent clients.")],
    "duration": Annotated[float, typer.Option("--duration", "-T", min=0.5, help="Seconds of measured load.")],
    "rate": Annotated[
        float | None,
        typer.Option(
            "--rate", "-R", min=0.1, help="Arrivals per second (Poisson, as pgbench -R); default: as fast as possible."
        ),
    ],
    "jobs": Annotated[int, typer.Option("--jobs", "-j", min=0, help="Client processes (0: one per CPU).")],
    "pgbench_rounds": Annotated[
        int,
        typer.Option(
            "--pgbench-rounds", min=0, help="Alternating harness/pgbench rounds for the throughput check (0: skip)."
        ),
    ],
    "concurrent": Concurrent,
    "lock_wait": LockWait,
}


def loading(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command LoadOptions' options; it receives them as ``load: LoadOptions``."""
    defaults = {name: getattr(LoadOptions, name) for name in _LOAD_OPTIONS}
    return _with_options(fn, _LOAD_OPTIONS, defaults, "load", LoadOptions)


def _profile(
    name: str, users: int | None, tasks_per_user: int | None, seed: int | None, generate: str | None = None
) -> DataProfile:
    return get_profile(name, users=users, tasks_per_user=tasks_per_user, seed=seed, generator=generate)


def _seed(target: Target, prof: DataProfile, quiet: bool, reload: bool = False) -> None:
    from seed.load import seed_database

    with progress(not quiet) as advance:
        result = seed_database(target, prof, advance, force_reload=reload)
    counts = ", ".join(f"{k} {v:,}" for k, v in result.row_counts.items())
    if result.skipped:
        err.print(f"dataset {result.fingerprint} already loaded ({counts}); reusing it", highlight=False)
    else:
        err.print(
            f"seeded dataset {result.fingerprint} in {result.seconds:.1f} s ({counts}; "
            f"{result.rows_per_second:,.0f} rows/s during load)",
            highlight=False,
        )


def _run(target: Target, cat: Catalog, opts: RunOptions, reports_dir: Path, quiet: bool) -> Path:
    with progress(not quiet, unit="cells") as advance:
        res = matrix.measure(target, cat, opts, advance)
    return _saved(res, reports_dir, quiet)


def _saved(res: Results, reports_dir: Path, quiet: bool = False) -> Path:
    """Save a run and say what it found (``quiet``: its one summary line, no line per cell)."""
    path = results_io.save(res, reports_dir)
    _print_run(res, path, quiet)
    return path


def _print_run(res: Results, path: Path, quiet: bool = False) -> None:
    if not quiet:
        for c in res.cells:
            out.print(f"  {c.scenario} × {c.variant}: {c.verdict_text}", highlight=False, markup=False)
    verdicts = {v: sum(1 for c in res.cells if c.verdict == v) for v in ("pass", "fail", "inconclusive")}
    err.print(
        f"{len(res.cells)} cells: {verdicts['pass']} pass, {verdicts['fail']} fail, "
        f"{verdicts['inconclusive']} inconclusive → {path}",
        highlight=False,
    )
    _warn_conditions(res)


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


def _warn_conditions(res: Results) -> None:
    """Say when the numbers were taken beside other work: another measurement, a busy machine (for a
    merged run, each shard's own)."""
    measured = [("", res.conditions), *((f"shard {s.shard.index}/{s.shard.count}: ", s.conditions) for s in res.shards)]
    for where, conditions in measured:
        if conditions and conditions.lock != "held":
            _note(f"{where}measured concurrently: {conditions.lock}")
        if conditions and conditions.busy:
            _note(
                f"{where}busy machine: load {conditions.load_before[0]:g} before and {conditions.load_after[0]:g} "
                f"after measuring on {conditions.cpus} CPUs — other work shared them, so times may be slow"
            )


@command("seed")
@targeted
def seed_cmd(
    spec: TargetSpec,
    profile: Profile = DEFAULT_PROFILE,
    users: Users = None,
    tasks_per_user: TasksPerUser = None,
    seed: Seed = None,
    generate: Generate = DataProfile.generator,
    reload: Annotated[bool, typer.Option("--reload", help="Load again even if already loaded.")] = False,
    quiet: Quiet = False,
) -> None:
    """Load a dataset (skipped when the same one is already loaded)."""
    prof = _profile(profile, users, tasks_per_user, seed, generate)
    require_lasting(spec)
    with seeded_home(spec, prof, lambda home: _seed(_show(home), prof, quiet, reload), _note, reload):
        pass


@command("seed-bench")
@targeted
def seed_bench_cmd(
    spec: TargetSpec,
    profile: Profile = DEFAULT_PROFILE,
    users: Users = None,
    tasks_per_user: TasksPerUser = None,
    seed: Seed = None,
    rounds: Annotated[int, typer.Option("--rounds", min=1, help="Alternating rounds; medians are compared.")] = 3,
    server_side: Annotated[
        bool, typer.Option("--server-side", help="Also time generating the rows on the server (--generate server).")
    ] = False,
    quiet: Quiet = False,
) -> None:
    """Measure the seeder against a raw COPY of the same rows (in a scratch database, dropped after)."""
    from seed.benchmark import RAW_COPY, SEEDER, SERVER_SIDE, benchmark_seed

    prof = _profile(profile, users, tasks_per_user, seed)
    with dataset_home(spec, _note) as home, progress(not quiet) as advance:
        res = benchmark_seed(_show(home), prof, advance, rounds=rounds, server_side=server_side)
    sides = [s for s in (SEEDER, RAW_COPY, SERVER_SIDE) if s in res.rows]
    out.print(
        f"profile {res.profile}: {res.rows[SEEDER]:,} rows ({res.copy_bytes / 1e6:.1f} MB as binary COPY), "
        f"{len(res.rounds)} rounds; medians:",
        highlight=False,
    )
    for side in sides:
        label = f"{side} ({res.copy_mode})" if side == RAW_COPY else side
        ratio = "" if side == RAW_COPY else f"  {res.ratio(side):.2f}× raw COPY"
        per_round = "/".join(f"{r[side]:.2f}" for r in res.rounds)
        out.print(
            f"  {label:32} {res.seconds(side):7.2f} s {res.rows_per_second(side):10,.0f} rows/s{ratio}"
            f"  (rounds: {per_round} s)",
            highlight=False,
        )
    if (mbit := res.break_even_mbit()) is not None:
        out.print(f"  server-side generation wins on links slower than {mbit:,.0f} Mbit/s", highlight=False)
    out.print(f"  peak RSS of this process: {res.peak_rss_mb:.0f} MB", highlight=False)


@command("run")
@targeted
@measuring()
def run_cmd(
    spec: TargetSpec,
    opts: RunOptions,
    scenarios_dir: ScenariosDir = catalog_io.DEFAULT_DIR,
    scenario: Only = None,
    variant: OnlyVariant = None,
    shard: ShardOf = None,
    durations: Durations = None,
    parallel: Parallel = 1,
    profile: MeasuredProfile = None,
    reports_dir: ReportsDir = REPORTS_DIR,
    quiet: Quiet = False,
) -> None:
    """Measure every scenario under every variant (or one share of them); write reports/<run-id>/results.json.
    With --profile, the database must hold that profile's dataset (seed it first, or use `bench`)."""
    from bench.runs import shard as sharding

    cat = catalog_io.load_catalog(scenarios_dir).select(scenario, variant)  # bad files fail before any work
    prof = _profile(profile, None, None, None) if profile else None
    spec = for_dataset(spec, prof) if prof else spec  # on Neon: measured on that dataset's seeded parent
    if shard and parallel > 1:
        raise InputError("--shard measures one share here, --parallel every share at once: give one of them")
    if shard:
        index, count = sharding.parse_shard(shard)
        plan = sharding.split(cat, count, sharding.durations(cat, durations))
        with measurement_target(spec, announce=_note) as target:
            _note(f"shard {index}/{count}: {', '.join(plan.variants(index))} (split by {plan.weights})")
            with progress(not quiet, unit="cells") as advance:
                shard_run = sharding.measure_shard(_holding(_show(target), prof), cat, opts, plan, index, advance)
                _saved(shard_run, reports_dir, quiet)
    elif parallel > 1:
        from bench.merge import merge

        plan = sharding.split(cat, parallel, sharding.durations(cat, durations))  # refused before any branch
        _note(f"{parallel} shares (split by {plan.weights}), measured at once")
        with measurement_targets(spec, parallel, _note) as targets:
            shards = sharding.measure_parallel(targets, cat, opts, plan, _note)
        _saved(merge([(f"shard {i}/{parallel}", res) for i, res in enumerate(shards, 1)]), reports_dir, quiet)
    else:
        with measurement_target(spec, announce=_note) as target:
            _run(_holding(_show(target), prof), cat, opts, reports_dir, quiet)


@command("merge")
def merge_cmd(
    shards: Annotated[list[Path], typer.Argument(help="Each shard's run directory or results.json.")],
    out_dir: Annotated[
        Path | None,
        typer.Option("--out", help=f"Directory for the merged run and its report (default: {REPORTS_DIR}/<run-id>)."),
    ] = None,
) -> None:
    """Merge the shards of a sharded run (run --shard i/N, every one once) into one run and its report;
    exit 2, naming what differs, when they do not belong together."""
    from bench.merge import merge
    from bench.report.build import write_report

    output.require_writable(out_dir or REPORTS_DIR)
    started = perf_counter()
    merged = merge([(str(path), results_io.load(path)) for path in shards])
    if out_dir is None:
        path = results_io.save(merged, REPORTS_DIR)
    elif (out_dir / results_io.RESULTS_FILE).exists():
        raise InputError(f"--out {out_dir} already holds a {results_io.RESULTS_FILE}: choose another directory")
    else:
        path = results_io.write(merged, out_dir)
    _note(f"merged {len(shards)} shards in {perf_counter() - started:.2f} s")
    _print_run(merged, path)
    for written in write_report(path):
        out.print(str(written), highlight=False)


@command("report")
def report_cmd(run_dir: Annotated[Path, typer.Argument(help="A run directory or its results.json.")]) -> None:
    """Write index.html, summary.md, results.csv and the figures next to a results.json."""
    from bench.report.build import (
        write_report,  # matplotlib is slow to import: only for commands that plot
    )

    output.require_writable(results_io.resolve(run_dir).parent)
    for path in write_report(run_dir):
        out.print(str(path), highlight=False)


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
_PAIR_OPTIONS: dict[str, Any] = {
    "pairs": Annotated[
        int, typer.Option("--pairs", min=5, help="Base/head pairs per cell in the side-by-side timing.")
    ],
}


def _gated(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the deterministic gates' thresholds; it receives them as ``gates: GateThresholds``."""
    defaults = {name: getattr(GateThresholds, name) for name in _GATE_OPTIONS}
    return _with_options(fn, _GATE_OPTIONS, defaults, "gates", GateThresholds)


def _timed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the time gate's thresholds and the pairs per cell, as ``time: TimeThresholds``
    and ``pairs: PairOptions`` (the latter's measuring settings come from ``opts``)."""
    defaults = {name: getattr(TimeThresholds, name) for name in _TIME_OPTIONS}
    with_time = _with_options(fn, _TIME_OPTIONS, defaults, "time", TimeThresholds)
    return _with_options(with_time, _PAIR_OPTIONS, {"pairs": PairOptions.pairs}, "pairs", PairOptions)


@command("compare")
@_gated
def compare_cmd(
    baseline: Annotated[
        Path, typer.Argument(help="Reference run directory or results.json (e.g. the committed baseline).")
    ],
    current: Annotated[Path, typer.Argument(help="Current run directory or results.json.")],
    gates: GateThresholds,
    markdown_out: MarkdownOut = None,
    github: GithubAnnotations = False,
    force: Annotated[bool, typer.Option("--force", help="Compare runs of different datasets or settings.")] = False,
) -> None:
    """Plans, buffers, warning signs, rows and verdicts of two runs: exit 0 no regression, 1 regression,
    2 cannot judge. Time is judged only side by side (taskbench check)."""
    from bench.judge.compare import compare

    base, cur = results_io.load(baseline), results_io.load(current)
    _verdict(compare(base, cur, gates, force=force), base.run_id, cur.run_id, github, markdown_out)


@command("check")
@targeted
@measuring()
@_gated
@_timed
def check_cmd(
    spec: TargetSpec,
    opts: RunOptions,
    gates: GateThresholds,
    time: TimeThresholds,
    pairs: PairOptions,
    baseline: Annotated[
        Path | None,
        typer.Argument(
            help=f"A reference run (e.g. {results_io.BASELINE_FILE}): its drift against the head is shown, "
            "and outside git it stands for 'before'."
        ),
    ] = None,
    scenarios_dir: ScenariosDir = catalog_io.DEFAULT_DIR,
    scenario: Only = None,
    variant: OnlyVariant = None,
    before: Annotated[
        Path | None,
        typer.Option("--before", help='A scenarios directory that stands for "before".'),
    ] = None,
    before_ref: Annotated[
        str | None,
        typer.Option(
            "--before-ref",
            help='A git commit whose scenarios directory stands for "before" (default: the merge base with '
            "the default branch); read from the repository, nothing checked out.",
        ),
    ] = None,
    measure_unchanged: Annotated[
        bool,
        typer.Option(
            "--measure-unchanged",
            help="Measure cells that are the same on both sides twice too (the gate proof's A/A checks).",
        ),
    ] = False,
    reports_dir: ReportsDir = results_io.CHECK_DIR,
    markdown_out: MarkdownOut = None,
    github: GithubAnnotations = False,
    quiet: Quiet = False,
) -> None:
    """The CI gate: measure base and head now, on this server, and judge head against base on every gate
    (plans, buffers, warning signs, rows, verdicts, time side by side)."""
    from bench.judge.check import CheckThresholds, check, resolve_before
    from bench.measure.paired import side_by_side
    from bench.runs.sides import measure_sides
    from bench.targets.schema import model_ddl

    reference = results_io.load(baseline) if baseline else None
    everything = catalog_io.load_catalog(scenarios_dir)
    catalog = everything.select(scenario, variant)
    pair_opts = replace(
        pairs, seed=opts.seed, concurrent=opts.concurrent, lock_wait=opts.lock_wait, timeout_factor=opts.timeout_factor
    )
    with (
        resolve_before(everything, scenarios_dir, before, before_ref, reference, model_ddl()) as whole,
        measurement_target(spec, announce=_note) as target,
    ):
        base = whole.only(catalog) if scenario or variant else whole
        _show(target)
        _note(f"before: {base.source}")

        def measure(before_cat: Catalog, after: Catalog, base_schema: str | None) -> Results:
            with progress(not quiet, unit="steps") as advance:
                return measure_sides(
                    target, before_cat, after, opts, pair_opts, advance, base_schema, measure_unchanged
                )

        def confirm(before_cat: Catalog, after: Catalog, base_schema: str | None, n: int) -> SideBySide:
            with progress(not quiet, unit="variants") as advance:
                return side_by_side(target, before_cat, after, replace(pair_opts, pairs=n), advance, base_schema)

        current, result = check(catalog, base, measure, confirm, CheckThresholds(gates, time), reference)
    if current is not None:
        _note(f"{len(current.cells)} cells → {results_io.save(current, reports_dir)}")
    _verdict(result, "base", current.run_id if current else "head", github, markdown_out)


def _verdict(result: Comparison, base_id: str, cur_id: str, github: bool, markdown_out: Path | None) -> None:
    """Print a comparison (and its annotations, Markdown) and exit with its code."""
    from bench.report import render

    for line in render.terminal(result, base_id, cur_id):
        out.print(line, highlight=False, markup=False)
    if github:
        for line in render.annotations(result):
            print(line)
    if markdown_out:
        with markdown_out.open("a", encoding="utf-8") as f:  # append: $GITHUB_STEP_SUMMARY may hold more
            f.write("\n".join(render.markdown(result, base_id, cur_id)))
    raise typer.Exit(result.exit_code)


@command("bench")
@targeted
@measuring()
def bench_cmd(
    spec: TargetSpec,
    opts: RunOptions,
    profile: Profile = DEFAULT_PROFILE,
    users: Users = None,
    tasks_per_user: TasksPerUser = None,
    seed: Seed = None,
    generate: Generate = DataProfile.generator,
    scenarios_dir: ScenariosDir = catalog_io.DEFAULT_DIR,
    scenario: Only = None,
    variant: OnlyVariant = None,
    reports_dir: ReportsDir = REPORTS_DIR,
    quiet: Quiet = False,
) -> None:
    """Seed (if needed), run the matrix, and write the report."""
    from bench.report.build import write_report

    cat = catalog_io.load_catalog(scenarios_dir).select(scenario, variant)
    prof = _profile(profile, users, tasks_per_user, seed, generate)
    spec = for_dataset(spec, prof)  # on Neon: measured on a child of the parent just seeded or found
    with (
        seeded_home(spec, prof, lambda home: _seed(_show(home), prof, quiet), _note) as home,
        measurement_target(spec, home, _note) as target,
    ):
        path = _run(target if target is home else _show(target), cat, opts, reports_dir, quiet)
    for written in write_report(path):
        out.print(str(written), highlight=False)


def _size_text(tasks_per_user: int) -> str:
    """1000 as 1k: how --sizes is written."""
    return f"{tasks_per_user // 1000}k" if tasks_per_user % 1000 == 0 else str(tasks_per_user)


def _sizes(raw: str) -> list[int]:
    try:
        return [
            int(float(v[:-1]) * 1000) if v.lower().endswith("k") else int(v) for v in raw.replace(" ", "").split(",")
        ]
    except ValueError:
        raise InputError(f"--sizes must be tasks-per-user counts like 1k,10k,50k,100k, not {raw!r}") from None


@command("scale")
@targeted
@measuring(
    "explain_samples", "cell_budget", "timeout_factor", "concurrent", "lock_wait", cold_samples=0, stability_rounds=0
)
def scale_cmd(
    spec: TargetSpec,
    opts: RunOptions,
    scenarios_dir: ScenariosDir = catalog_io.DEFAULT_DIR,
    scenario: Only = None,
    variant: OnlyVariant = None,
    sizes: Annotated[str, typer.Option("--sizes", help="Tasks per user at each size.")] = ",".join(
        map(_size_text, scaling.DEFAULT_SIZES)
    ),
    users: Annotated[int, typer.Option("--users", min=1, help="Users at every size.")] = scaling.DEFAULT_USERS,
    min_samples: MinSamples = scaling.DEFAULT_MIN_SAMPLES,
    reports_dir: ReportsDir = REPORTS_DIR,
    quiet: Quiet = False,
) -> None:
    """Chosen scenarios × variants at several data sizes: growth exponents and SLA crossings."""
    from bench.report.build import write_report

    cat = catalog_io.load_catalog(scenarios_dir).select(
        scenario or list(scaling.DEFAULT_SCENARIOS), variant or list(scaling.DEFAULT_VARIANTS)
    )
    with progress(not quiet, unit="cells", units={"seed": "rows"}) as advance:
        res = scaling.measure_scale(
            spec, cat, replace(opts, min_samples=min_samples), _sizes(sizes), users, advance, _note
        )
    path = results_io.save(res, reports_dir)
    assert res.scale is not None
    out.print(
        f"{'scenario':24} {'variant':20} {'p50 ∝ n^b':>9} {'R²':>5}  crosses its SLA at (tasks/user)", highlight=False
    )
    for f in res.scale.fits:
        where = f.describe_crossing()
        out.print(f"{f.scenario:24} {f.variant:20} {f.exponent:9.2f} {f.r2:5.2f}  {where}", highlight=False)
    for written in write_report(path):
        out.print(str(written), highlight=False)


@command("load")
@targeted
@loading
def load_cmd(
    spec: TargetSpec,
    load: LoadOptions,
    scenarios_dir: ScenariosDir = catalog_io.DEFAULT_DIR,
    variant: Annotated[str, typer.Option("--variant", "-v", help="Variant applied during the load.")] = LOAD_VARIANT,
    mix: Annotated[
        list[str] | None, typer.Option("--mix", help="SCENARIO=WEIGHT (repeatable); replaces scenarios/mix.toml.")
    ] = None,
    reports_dir: ReportsDir = REPORTS_DIR,
    quiet: Quiet = False,
) -> None:
    """N concurrent clients on a weighted mix: throughput, p50/p95/p99 and the share over each SLA."""
    from bench.report.build import write_report
    from bench.runs.load import run_load

    weights: dict[str, int] = {}
    for item in mix or []:
        name, _, weight = item.partition("=")
        if not weight.isdigit():
            raise InputError(f"--mix takes SCENARIO=WEIGHT with a whole-number weight, not {item!r}")
        weights[name] = int(weight)
    cat = catalog_io.load_catalog(scenarios_dir).with_mix(weights).select(None, [variant])
    with measurement_target(spec, announce=_note) as target:
        _show(target)
        if not quiet:
            rate = f" at {load.rate:g}/s" if load.rate else ""
            _note(
                f"load: {load.clients} clients, {load.duration:g} s{rate}, variant {variant}"
                + (f", then {load.pgbench_rounds} rounds against pgbench" if load.pgbench_rounds else "")
            )
        res = run_load(target, cat, load)
    path = results_io.save(res, reports_dir)
    _print_load(res)
    _warn_conditions(res)
    for written in write_report(path):
        out.print(str(written), highlight=False)


def _print_load(res: Results) -> None:
    load = res.load
    assert load is not None, "a load run has its load section"
    out.print(
        f"{load.requests:,} requests in {load.duration_s:.1f} s: {load.throughput:,.0f}/s, {load.errors} errors"
        + (f", {load.unsent:,} arrivals never sent (behind schedule at the end)" if load.unsent else "")
        + (f"; schedule lag p95 {load.lag_ms.p95.value:.2f} ms" if load.lag_ms else ""),
        highlight=False,
    )
    out.print(
        f"  {'scenario':26} {'weight':>6} {'requests':>9} {'p50':>8} {'p95':>8} {'p99':>8} {'SLA':>5} {'over SLA':>8}",
        highlight=False,
    )
    for s in load.scenarios:
        lat = s.latency
        cols = (
            f"{lat.p50.value:8.2f} {lat.p95.value:8.2f} {lat.p99.value:8.2f}" if lat else f"{'–':>8} {'–':>8} {'–':>8}"
        )
        out.print(
            f"  {s.scenario:26} {s.weight:6.0f} {s.requests:9,} {cols} {s.sla_ms:5.0f} {s.over_sla:8.2%}",
            highlight=False,
        )
    if p := load.pgbench:
        out.print(
            f"same transactions as pgbench (parameter lookup + scenario), medians of {p.rounds} alternating "
            f"rounds: harness {p.harness_tps:,.0f}/s, pgbench {p.tps:,.0f}/s → {p.ratio:.2f}× (client CPU per "
            f"transaction: harness {p.harness_cpu_ms_per_tx:.3f} ms, pgbench {p.cpu_ms_per_tx:.3f} ms)",
            highlight=False,
        )


@command("validate")
@targeted
@measuring("concurrent", "lock_wait")
def validate_cmd(
    spec: TargetSpec,
    opts: RunOptions,
    scenarios_dir: ScenariosDir = catalog_io.DEFAULT_DIR,
    scenario: Only = None,
    variant: Annotated[
        str, typer.Option("--variant", "-v", help="Variant to validate under.")
    ] = crosscheck.DEFAULT_VARIANT,
    transactions: Annotated[
        int, typer.Option("--transactions", min=20, help="Harness executions (pgbench runs 4×).")
    ] = crosscheck.TRANSACTIONS,
) -> None:
    """Check the harness's client latency against pgbench on the same SQL and parameters, like for like
    (exit 1 if fewer than three scenarios agree within 15% on both mean and median)."""
    from bench.runs.crosscheck import DEFAULT_SCENARIOS, PGBENCH_FACTOR, REQUIRED, TOLERANCE, check_against_pgbench

    cat = catalog_io.load_catalog(scenarios_dir).select(scenario or list(DEFAULT_SCENARIOS), None)
    with measurement_target(spec, announce=_note) as target:
        agreements = check_against_pgbench(_show(target), cat, variant, transactions, opts)
    out.print(
        f"variant {variant}: harness {transactions} executions, pgbench {transactions * PGBENCH_FACTOR} "
        f"transactions over the same parameter sets (-M prepared -r -l, one client)",
        highlight=False,
    )
    out.print(
        f"  {'scenario':24} {'statement mean':>14} {'pgbench avg':>11} {'diff':>7}   "
        f"{'transaction p50':>15} {'pgbench p50':>11} {'diff':>7}",
        highlight=False,
    )
    for a in agreements:
        out.print(
            f"  {a.scenario:24} {a.harness_mean_ms:12.3f}ms {a.pgbench_avg_ms:9.3f}ms "
            f"{a.mean_difference:+7.1%}   {a.harness_p50_ms:13.3f}ms {a.pgbench_p50_ms:9.3f}ms "
            f"{a.p50_difference:+7.1%}  "
            f"{'ok' if a.agrees else 'off'}",
            highlight=False,
        )
    agreeing = sum(a.agrees for a in agreements)
    out.print(
        f"{agreeing} of {len(agreements)} scenarios within {TOLERANCE:.0%} on both (need {REQUIRED})", highlight=False
    )
    raise typer.Exit(0 if agreeing >= REQUIRED else 1)


@command("advise")
@targeted
def advise_cmd(
    spec: TargetSpec,
    scenarios_dir: ScenariosDir = catalog_io.DEFAULT_DIR,
    headroom: Annotated[
        float,
        typer.Option("--headroom", min=1.0, help="Every scenario must pass its SLA ÷ this, for every user class."),
    ] = AdviseOptions.headroom,
    target_tasks: Annotated[
        int | None,
        typer.Option(
            "--target-tasks-per-user",
            min=1,
            help="The size the SLAs must hold at (default: the power users' size in the dataset).",
        ),
    ] = AdviseOptions.target_tasks_per_user,
    growth_from: Annotated[
        Path | None,
        typer.Option("--growth-from", help="A `taskbench scale` run whose fits say how p95 grows to the target size."),
    ] = AdviseOptions.growth_from,
    per_mb: Annotated[float, typer.Option("--cost-per-mb", min=0.0, help="Cost of 1 MB of index.")] = Objective.per_mb,
    per_wal_byte: Annotated[
        float, typer.Option("--cost-per-wal-byte", min=0.0, help="Cost of 1 byte more WAL per write statement.")
    ] = Objective.per_wal_byte,
    per_write_ms: Annotated[
        float, typer.Option("--cost-per-write-ms", min=0.0, help="Cost of 1 ms more on the writes' p95.")
    ] = Objective.per_write_ms,
    per_build_s: Annotated[
        float, typer.Option("--cost-per-build-second", min=0.0, help="Cost of 1 second of index build.")
    ] = Objective.per_build_s,
    max_builds: Annotated[
        int | None, typer.Option("--max-builds", min=0, help="Real index builds the search may make.")
    ] = AdviseOptions.max_builds,
    time_budget: Annotated[
        float | None,
        typer.Option("--time-budget", min=0.0, help="Seconds the search may take (the final measurement comes after)."),
    ] = AdviseOptions.time_budget_s,
    hypopg: Annotated[
        bool, typer.Option("--hypopg/--no-hypopg", help="Screen B-tree candidates with HypoPG where the server has it.")
    ] = AdviseOptions.hypopg,
    deploy: Annotated[
        bool,
        typer.Option(
            "--deploy-costs/--no-deploy-costs", help="Measure each advised index's build and blocked writers."
        ),
    ] = AdviseOptions.deploy,
    down_revision: Annotated[
        str | None, typer.Option("--down-revision", help="The Alembic revision the migration follows (your head).")
    ] = AdviseOptions.down_revision,
    write_variant: Annotated[
        bool,
        typer.Option(
            "--write-variant", help="Also write <scenarios-dir>/variants/advised.toml for later runs and the gate."
        ),
    ] = False,
    concurrent: Annotated[
        bool, typer.Option("--concurrent", help="Measure even while another measurement holds this server.")
    ] = AdviseOptions.concurrent,
    reports_dir: ReportsDir = REPORTS_DIR,
    quiet: Quiet = False,
) -> None:
    """The cheapest index set under which every scenario meets its SLA with headroom, found by real builds;
    written as a variant, SQLModel __table_args__ and an Alembic migration, with advise.md/html."""
    from bench.advise.run import advise

    cat = catalog_io.load_catalog(scenarios_dir)
    options = AdviseOptions(
        headroom=headroom,
        target_tasks_per_user=target_tasks,
        growth_from=growth_from,
        objective=Objective(per_mb, per_wal_byte, per_write_ms, per_build_s),
        max_builds=max_builds,
        time_budget_s=time_budget,
        hypopg=hypopg,
        deploy=deploy,
        down_revision=down_revision,
        concurrent=concurrent,
    )
    with measurement_target(spec, announce=_note) as target, progress(not quiet, unit="cells") as advance:
        run_dir, advice = advise(
            _show(target),
            cat,
            options,
            reports_dir,
            scenarios_dir / "variants" if write_variant else None,
            advance,
            _note,
        )
    mine = next(c for c in advice.contenders if c.variant == "advised")
    out.print(
        f"advised {len(advice.advised)} indexes ({mine.costs.index_bytes / 1e6:.1f} MB, "
        f"{mine.costs.wal_per_write or 0:.0f} B WAL per write, worst p95 ÷ SLA {mine.worst_ratio:.2f}) after "
        f"{advice.real_builds} real builds in {advice.seconds['total']:.0f} s",
        highlight=False,
    )
    for statement in advice.advised_ddl:
        out.print(f"  {statement}", highlight=False)
    for path in (run_dir / "advise.md", run_dir / "advise.html", *map(Path, advice.shipped.values())):
        out.print(str(path), highlight=False)


baseline_app = typer.Typer(
    no_args_is_help=True, help="The committed baseline that `compare` and `make check` judge against."
)
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("save")
def baseline_save_cmd(
    run_dir: Annotated[Path, typer.Argument(help="The run to adopt (a run directory or its results.json).")],
    reason: Annotated[str, typer.Option("--reason", help="Why this run is the new baseline.")] = "",
    to: Annotated[Path, typer.Option("--to", help="Where the baseline lives.")] = results_io.BASELINE_FILE,
) -> None:
    """Save RUN_DIR's results as the baseline, with the reason (commit the file)."""
    res = results_io.save_baseline(run_dir, reason, output.require_writable(to.parent) / to.name)
    assert res.baseline is not None, "save_baseline records why"
    out.print(
        f"baseline {to} ← run {res.run_id} ({len(res.cells)} cells, dataset {res.dataset.fingerprint}): "
        f"{res.baseline.reason}",
        highlight=False,
        markup=False,
    )


neon_app = typer.Typer(no_args_is_help=True, help="The Neon project's seeded parent branches (--target neon).")
app.add_typer(neon_app, name="neon")


@command("parents", on=neon_app)
def neon_parents_cmd(
    neon_project: Annotated[str | None, _TARGET_OPTIONS["neon_project"][1]] = None,
    neon_api_url: Annotated[str, _TARGET_OPTIONS["neon_api_url"][1]] = NeonSettings.api_url,
    remove_old: Annotated[
        bool,
        typer.Option(
            "--remove-old",
            help="Delete the seeded parents after the --keep newest, and seeds unfinished for a day; never a "
            "parent with branches of its own (a run measuring on it).",
        ),
    ] = False,
    keep: Annotated[
        int, typer.Option("--keep", min=0, help="Seeded parents --remove-old keeps, newest first.")
    ] = KEEP_PARENTS,
) -> None:
    """List the seeded parent branches (one per database, dataset and models' schema) with their
    fingerprints, age and branches; --remove-old deletes the old ones."""
    from bench.targets import neon
    from bench.targets.schema import model_ddl

    settings = NeonSettings(
        api_key=_neon_api_key(neon_project, "taskbench neon"), project_id=neon_project or "", api_url=neon_api_url
    )
    client = neon.NeonClient(settings)
    try:
        parents = neon.seeded_parents(client)
        old = neon.old_parents(parents, keep) if remove_old else []
        current = neon.schema_fingerprint(model_ddl())
        for p in parents:
            notes = [
                "these models" if p.schema == current else "",
                "" if p.complete else "unfinished seed",
                "removing" if p in old else "",
            ]
            out.print(
                f"{p.name}  database {p.database}  dataset {p.dataset}  schema {p.schema}  {p.age_hours():.1f} h old  "
                f"{p.children} branches  {', '.join(n for n in notes if n)}".rstrip(),
                highlight=False,
                markup=False,
            )
        _note(f"{len(parents)} seeded parents" + (f"; removing {len(old)}" if remove_old else ""))
        neon.remove_parents(client, old, _note)
    finally:
        client.close()


server_app = typer.Typer(
    no_args_is_help=True,
    help="The embedded PostgreSQL of --data-dir: what runs, what dead taskbench processes left; stop it.",
)
app.add_typer(server_app, name="server")
DataDir = Annotated[
    Path, typer.Option("--data-dir", help="The embedded PostgreSQL's data directory, as the other commands take it.")
]


@command("status", on=server_app)
def server_status_cmd(data_dir: DataDir = TargetSpec.data_dir) -> None:
    """Whether the embedded server of --data-dir runs (pid, socket, URI), the taskbench processes using
    it, those that died without saying so, and the scratch copies their runs left. Changes nothing."""
    state = server.server_status(data_dir)
    found = state.server
    if found.url is None:
        out.print(f"embedded PostgreSQL {found.data_dir}: not running", highlight=False, markup=False)
    else:
        out.print(
            f"embedded PostgreSQL {found.data_dir}: running, pid {found.pid}, socket {found.socket}, "
            f"{found.url._replace(password=None).render_as_string()}",
            highlight=False,
            markup=False,
        )
    live, dead = (", ".join(map(str, pids)) or "none" for pids in (found.handles.live, found.handles.dead))
    out.print(f"taskbench processes using it: {live}; dead but still listed: {dead}", highlight=False)
    if state.orphans:
        out.print(f"scratch copies of dead runs: {', '.join(state.orphans)}", highlight=False, markup=False)
    if state.roles:
        out.print(f"samples' roles of dead runs: {', '.join(state.roles)}", highlight=False, markup=False)
    if found.handles.dead or state.orphans or state.roles:
        _note(
            "the next command removes the dead processes from the list (and stops the server when it is the "
            "last), the next scratch copy drops the dead runs' copies and roles; `taskbench server stop` does "
            "all of it now"
        )


@command("stop", on=server_app)
def server_stop_cmd(
    data_dir: DataDir = TargetSpec.data_dir,
    force: Annotated[
        bool, typer.Option("--force", help="Stop it even while live taskbench processes use it (they fail).")
    ] = False,
) -> None:
    """Drop the scratch copies of dead runs, then stop the embedded server of --data-dir (with the
    bundled pg_ctl) and remove dead processes from its list; refused while taskbench processes use it."""
    state = server.stop_server(data_dir, force)
    found = state.server
    if state.orphans:
        out.print(f"dropped scratch copies of dead runs: {', '.join(state.orphans)}", highlight=False, markup=False)
    if state.roles:
        out.print(f"dropped samples' roles of dead runs: {', '.join(state.roles)}", highlight=False, markup=False)
    if found.handles.dead:
        out.print(f"removed dead processes from its list: {', '.join(map(str, found.handles.dead))}", highlight=False)
    done = f"stopped (pid {found.pid})" if found.running else "was not running"
    out.print(f"embedded PostgreSQL {found.data_dir}: {done}", highlight=False, markup=False)


def _terminate(signum: int, frame: object) -> None:
    # SIGTERM (CI cancelling a job, `kill`) takes exactly the Ctrl-C path: inside asyncio.run the
    # runner's SIGINT handler cancels the run at an await (the applied variant is removed, nothing
    # partial is written). Raising KeyboardInterrupt here instead could land inside asyncpg's
    # protocol callbacks and leave the connection hanging.
    os.kill(os.getpid(), signal.SIGINT)


def _usage_line(exc: UsageError) -> str:
    """A usage error (an unknown option, a missing argument, a value of the wrong type) as one line
    naming the command whose help to read, instead of click's boxed usage text."""
    names: list[str] = []
    ctx = exc.ctx
    while ctx is not None:
        names.append(ctx.info_name or "")
        ctx = ctx.parent
    command = " ".join(["taskbench", *reversed(names[:-1])])
    return f"{' '.join(exc.format_message().split())} (see {command} --help)"


def main() -> None:
    # A shell starts a background job (`taskbench run &` in a script) with SIGINT ignored, and
    # asyncio only turns SIGINT into a cancellation where Python's own handler is installed: without
    # this line both Ctrl-C and SIGTERM (which re-sends SIGINT) would be ignored for the whole run.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    try:
        # standalone_mode=False: click's own errors reach the handlers below instead of being
        # printed as a box of many lines; typer.Exit's code is returned.
        code = app(standalone_mode=False)
    except NoArgsIsHelpError as exc:  # the help was printed: nothing to add
        sys.exit(exc.exit_code)
    except UsageError as exc:
        _error(_usage_line(exc), EXIT_INPUT)
    except Exception as exc:
        known = exc if isinstance(exc, TaskbenchError) else as_user_error(exc)
        if known is None:
            raise  # a bug in taskbench: the traceback is what a report needs
        _error(str(known), known.exit_code)
    sys.exit(code if isinstance(code, int) else EXIT_OK)


def _error(message: str, exit_code: int) -> NoReturn:
    # The last guards, for messages that quote what they did not word: a password in a URL (a
    # usage error's extra argument), a server's DETAIL:, HINT: or LINE lines after its message.
    err.print(f"taskbench: error: {first_line(hide_secrets(message))}", highlight=False, markup=False)
    sys.exit(exit_code)
