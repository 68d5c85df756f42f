"""``taskbench validate``: the cross-check of the harness's client latency against pgbench. The
command keeps the name users know; in the code it is the cross-check (``runs.crosscheck``), and
"validate" means the seeder's row validation (``seed.validate``)."""

from __future__ import annotations

from typing import Annotated

import typer

from bench.cli.app import command
from bench.cli.console import note, say, show
from bench.cli.options import Selected, measuring, selecting
from bench.cli.target_options import targeted
from bench.measure.options import RunOptions
from bench.runs.options import CROSSCHECK_SCENARIOS, CROSSCHECK_TRANSACTIONS, CROSSCHECK_VARIANT
from bench.targets.options import TargetSpec

CrossCheckVariant = Annotated[str, typer.Option("--variant", "-v", help="Variant to validate under.")]
Transactions = Annotated[int, typer.Option("--transactions", min=20, help="Harness executions (pgbench runs 4×).")]


@command("validate")
@targeted
@measuring("concurrent", "lock_wait")
@selecting("scenarios_dir", "scenario", scenarios=CROSSCHECK_SCENARIOS)  # one variant: its own --variant
def crosscheck_cmd(
    *,
    selected: Selected,
    variant: CrossCheckVariant = CROSSCHECK_VARIANT,
    transactions: Transactions = CROSSCHECK_TRANSACTIONS,
    opts: RunOptions,
    spec: TargetSpec,
) -> None:
    """Check the harness's client latency against pgbench on the same SQL and parameters, like for like
    (exit 1 if fewer than three scenarios agree within 15% on both mean and median)."""
    from bench.runs import crosscheck
    from bench.targets.provision import measurement_target

    cat = selected.catalogue
    options = crosscheck.CrossCheckOptions(variant, transactions, opts)
    with measurement_target(spec, announce=note) as target:
        agreements = crosscheck.measure(show(target), cat, options)
    say(crosscheck.render(agreements, options))
    raise typer.Exit(0 if crosscheck.passed(agreements) else 1)
