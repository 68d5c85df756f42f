"""``taskbench load``: N concurrent clients on a weighted mix, with pgbench alongside."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from bench.cli.app import command
from bench.cli.console import note, say, show
from bench.cli.matrix import reported
from bench.cli.options import REPORTS_DIR, Concurrent, LockWait, Quiet, ReportsDir, Selected, option_group, selecting
from bench.cli.target_options import targeted
from bench.runs.options import LOAD_VARIANT, LoadOptions
from bench.targets.options import TargetSpec

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
LoadVariant = Annotated[str, typer.Option("--variant", "-v", help="Variant applied during the load.")]
Mix = Annotated[
    list[str] | None, typer.Option("--mix", help="SCENARIO=WEIGHT (repeatable); replaces scenarios/mix.toml.")
]


@command("load")
@targeted
@option_group("opts", _LOAD_OPTIONS, LoadOptions)
@selecting("scenarios_dir")  # one variant, and the scenarios of the mix: --variant and --mix, below
def load_cmd(
    *,
    selected: Selected,
    variant: LoadVariant = LOAD_VARIANT,
    mix: Mix = None,
    reports_dir: ReportsDir = REPORTS_DIR,
    quiet: Quiet = False,
    opts: LoadOptions,
    spec: TargetSpec,
) -> None:
    """N concurrent clients on a weighted mix: throughput, p50/p95/p99 and the share over each SLA."""
    from bench import results as results_io
    from bench.runs import conditions, load
    from bench.targets.provision import measurement_target

    cat = selected.whole.with_mix(load.parse_mix(mix or [])).select(None, [variant])
    with measurement_target(spec, announce=note) as target:
        show(target)
        if not quiet:
            note(load.describe(opts, variant))
        res = load.measure(target, cat, opts)
    path = results_io.save(res, reports_dir)
    say(load.render(res))
    for line in conditions.notes(res):
        note(line)
    reported(path)
