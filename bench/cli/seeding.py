"""``taskbench seed`` and ``taskbench seed-bench``: a dataset, and the seeder timed against a raw COPY."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from bench.cli.app import command
from bench.cli.console import err, note, say, show
from bench.cli.options import Quiet, profiled
from bench.cli.target_options import targeted
from bench.progress import progress
from bench.targets.options import TargetSpec
from seed.profiles import Profile as DataProfile

if TYPE_CHECKING:
    from bench.targets.target import Target

Reload = Annotated[bool, typer.Option("--reload", help="Load again even if already loaded.")]
Rounds = Annotated[int, typer.Option("--rounds", min=1, help="Alternating rounds; medians are compared.")]
ServerSide = Annotated[
    bool, typer.Option("--server-side", help="Also time generating the rows on the server (--generate server).")
]


def seed_into(target: Target, prof: DataProfile, quiet: bool, reload: bool = False) -> None:
    """Seed ``prof`` (skipped when it is there), and say what was done."""
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


@command("seed")
@targeted
@profiled()
def seed_cmd(
    *,
    prof: DataProfile,
    reload: Reload = False,
    quiet: Quiet = False,
    spec: TargetSpec,
) -> None:
    """Load a dataset (skipped when the same one is already loaded)."""
    from bench.targets.provision import require_lasting, seeded_home

    require_lasting(spec)
    with seeded_home(spec, prof, lambda home: seed_into(show(home), prof, quiet, reload), note, reload):
        pass


@command("seed-bench")
@targeted
@profiled("profile", "users", "tasks_per_user", "seed")  # --server-side times the other generator too
def seed_bench_cmd(
    *,
    prof: DataProfile,
    rounds: Rounds = 3,
    server_side: ServerSide = False,
    quiet: Quiet = False,
    spec: TargetSpec,
) -> None:
    """Measure the seeder against a raw COPY of the same rows (in a scratch database, dropped after)."""
    from bench.targets.provision import dataset_home
    from seed.benchmark import benchmark_seed, render

    with dataset_home(spec, note) as home, progress(not quiet) as advance:
        res = benchmark_seed(show(home), prof, advance, rounds=rounds, server_side=server_side)
    say(render(res))
