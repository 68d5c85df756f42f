"""``taskbench advise``: the cheapest index set meeting every SLA with headroom, found by real builds."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from bench.advise.options import AdviseOptions, Objective
from bench.cli.app import command
from bench.cli.console import note, say, show
from bench.cli.options import REPORTS_DIR, Quiet, ReportsDir, Selected, option_group, selecting
from bench.cli.target_options import targeted
from bench.progress import progress
from bench.targets.options import TargetSpec

# How advise searches, declared once: AdviseOptions' fields (the costs: its Objective's), their defaults.
_ADVISE_OPTIONS: dict[str, Any] = {
    "headroom": Annotated[
        float,
        typer.Option("--headroom", min=1.0, help="Every scenario must pass its SLA ÷ this, for every user class."),
    ],
    "target_tasks_per_user": Annotated[
        int | None,
        typer.Option(
            "--target-tasks-per-user",
            min=1,
            help="The size the SLAs must hold at (default: the power users' size in the dataset).",
        ),
    ],
    "growth_from": Annotated[
        Path | None,
        typer.Option("--growth-from", help="A `taskbench scale` run whose fits say how p95 grows to the target size."),
    ],
    "per_mb": Annotated[float, typer.Option("--cost-per-mb", min=0.0, help="Cost of 1 MB of index.")],
    "per_wal_byte": Annotated[
        float, typer.Option("--cost-per-wal-byte", min=0.0, help="Cost of 1 byte more WAL per write statement.")
    ],
    "per_write_ms": Annotated[
        float, typer.Option("--cost-per-write-ms", min=0.0, help="Cost of 1 ms more on the writes' p95.")
    ],
    "per_build_s": Annotated[
        float, typer.Option("--cost-per-build-second", min=0.0, help="Cost of 1 second of index build.")
    ],
    "max_builds": Annotated[
        int | None, typer.Option("--max-builds", min=0, help="Real index builds the search may make.")
    ],
    "screen_per_scenario": Annotated[
        int,
        typer.Option(
            "--screen-per-scenario",
            min=1,
            help="Candidates screened (built and measured alone) per scenario failing at baseline, best-scored first.",
        ),
    ],
    "time_budget_s": Annotated[
        float | None,
        typer.Option("--time-budget", min=0.0, help="Seconds the search may take (the final measurement comes after)."),
    ],
    "hypopg": Annotated[
        bool, typer.Option("--hypopg/--no-hypopg", help="Screen B-tree candidates with HypoPG where the server has it.")
    ],
    "deploy": Annotated[
        bool,
        typer.Option(
            "--deploy-costs/--no-deploy-costs", help="Measure each advised index's build and blocked writers."
        ),
    ],
    "down_revision": Annotated[
        str | None, typer.Option("--down-revision", help="The Alembic revision the migration follows (your head).")
    ],
    "concurrent": Annotated[
        bool, typer.Option("--concurrent", help="Measure even while another measurement holds this server.")
    ],
    "policy": Annotated[
        str | None,
        typer.Option(
            "--policy",
            metavar="VARIANT",
            help="Search under this policy variant's row-level security (its policies, not its indexes), "
            "the scenarios relying on it included.",
        ),
    ],
}
_COSTS = ("per_mb", "per_wal_byte", "per_write_ms", "per_build_s")


def _advise_options(**given: Any) -> AdviseOptions:
    return AdviseOptions(objective=Objective(*(given.pop(name) for name in _COSTS)), **given)


WriteVariant = Annotated[
    bool,
    typer.Option(
        "--write-variant", help="Also write <scenarios-dir>/variants/advised.toml for later runs and the gate."
    ),
]


@command("advise")
@targeted
@option_group("options", _ADVISE_OPTIONS, _advise_options, {**vars(AdviseOptions), **vars(Objective)})
@selecting("scenarios_dir")  # every scenario and variant: the search chooses
def advise_cmd(
    *,
    selected: Selected,
    options: AdviseOptions,
    write_variant: WriteVariant = False,
    reports_dir: ReportsDir = REPORTS_DIR,
    quiet: Quiet = False,
    spec: TargetSpec,
) -> None:
    """The cheapest index set under which every scenario meets its SLA with headroom, found by real builds;
    written as a variant, SQLModel __table_args__ and an Alembic migration, with advise.md/html."""
    from bench.advise.report import terminal
    from bench.advise.run import advise, policy_variant
    from bench.targets.provision import measurement_target

    cat = selected.whole
    policy_variant(cat, options.policy)  # refused before any server is started
    variant_dir = selected.scenarios_dir / "variants" if write_variant else None
    with measurement_target(spec, announce=note) as target, progress(not quiet, unit="cells") as advance:
        run_dir, advice = advise(show(target), cat, options, reports_dir, variant_dir, advance, note)
    say(terminal(advice, run_dir))
