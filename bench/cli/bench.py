"""``taskbench bench``: seed (if needed), run the matrix, write the report — what ``make bench`` runs."""

from __future__ import annotations

from bench.cli.app import command
from bench.cli.console import note, show
from bench.cli.matrix import isolated, measured, reported
from bench.cli.options import REPORTS_DIR, Quiet, ReportsDir, Selected, measuring, profiled, selecting
from bench.cli.seeding import seed_into
from bench.cli.target_options import targeted
from bench.measure.options import RunOptions
from bench.targets.options import TargetSpec
from seed.profiles import Profile as DataProfile


@command("bench")
@targeted
@measuring()
@selecting()  # the catalogue read before the profile: a bad scenario file is the error named first
@profiled()
def bench_cmd(
    *,
    prof: DataProfile,
    selected: Selected,
    reports_dir: ReportsDir = REPORTS_DIR,
    quiet: Quiet = False,
    opts: RunOptions,
    spec: TargetSpec,
) -> None:
    """Seed (if needed), run the matrix, and write the report."""
    from bench.targets.provision import for_dataset, measurement_target, seeded_home

    cat = selected.catalogue
    spec = for_dataset(spec, prof)  # on Neon: measured on a child of the parent just seeded or found
    with (
        seeded_home(spec, prof, lambda home: seed_into(show(home), prof, quiet), note) as home,
        measurement_target(spec, home, note) as target,
    ):
        path = measured(target if target is home else show(target), cat, opts, reports_dir, quiet)
    reported(path)
    isolated(path)
