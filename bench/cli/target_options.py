"""Where PostgreSQL comes from: the options every command that opens a database takes, as one
``TargetSpec`` (``targeted``)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from bench.cli.options import Command, option_group
from bench.errors import InputError
from bench.targets.majors import DEFAULT_PG_MAJOR
from bench.targets.options import KINDS, NeonSettings, TargetSpec

NEON_PANEL = "Neon (--target neon)"  # a help panel of their own: a dozen options most runs never need
# Options every command that opens a database shares, given to it by @targeted as one TargetSpec.
TARGET_OPTIONS: dict[str, tuple[Any, Any]] = {
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
    "data_dir": (
        Path | None,
        typer.Option(
            "--data-dir",
            show_default=False,
            help="Data directory of the embedded PostgreSQL [default: .taskbench/pgdata, for --pg-major 17 "
            ".taskbench/pgdata-17; in $TASKBENCH_DATA_ROOT instead of .taskbench where that is set].",
        ),
    ),
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
    "pg_major": (
        int,
        typer.Option(
            "--pg-major",
            min=12,
            help="PostgreSQL major: the embedded server's (17 or 18, each from its own wheel, with a data "
            "directory of its own) or the Docker image's; refused with a URL or Neon, which run their own.",
        ),
    ),
}
# The Neon options and the NeonSettings field each one sets: its default is that field's.
_NEON_FIELDS: dict[str, str] = {
    "neon_api_url": "api_url",
    "neon_parent": "parent",
    "neon_branch": "branch",
    "neon_compute": "compute_cu",
    "neon_max_compute": "max_compute_cu",
    "neon_suspend": "suspend_timeout",
    "pooled": "pooled",
    "keep_branch": "keep_branch",
    "neon_expiry": "expiry_hours",
    "neon_max_branches": "max_branches",
    "neon_max_active": "max_active_computes",
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
    **{name: getattr(NeonSettings, field) for name, field in _NEON_FIELDS.items()},
}


def _spec(
    target: str,
    database_url: str | None,
    db_name: str,
    data_dir: Path | None,
    force: bool,
    pg_major: int,
    neon_project: str | None,
    **neon_options: Any,
) -> TargetSpec:
    neon = None
    if target == "neon":
        neon = NeonSettings(
            api_key=neon_api_key(neon_project, "--target neon"),
            project_id=neon_project or "",
            **{field: neon_options[name] for name, field in _NEON_FIELDS.items()},
        )
    return _refuse_foreign_major(
        TargetSpec(
            kind=target,
            database_url=database_url or None,
            db_name=db_name,
            data_dir=data_dir,
            force=force,
            neon=neon,
            pg_major=pg_major,
        )
    )


# Where --pg-major cannot choose: the target runs the major it runs.
_OWN_MAJOR = {
    "neon": "a Neon branch runs its project's major",
    "url": "the server at --database-url (or DATABASE_URL) runs its own major",
}


def _refuse_foreign_major(spec: TargetSpec) -> TargetSpec:
    """``spec``, unless it asks a server at a URL or a Neon branch for another major: --pg-major picks
    the embedded server's wheel or the Docker image, and would be ignored there, so it is refused."""
    where = _OWN_MAJOR.get(spec.resolved_kind) if spec.pg_major != DEFAULT_PG_MAJOR else None
    if where is not None:
        raise InputError(
            f"--pg-major {spec.pg_major} is for --target embedded or docker: {where} (the results record it); "
            "leave --pg-major out"
        )
    return spec


def neon_api_key(project: str | None, what: str) -> str:
    """NEON_API_KEY, refused in one line when it or the project is missing."""
    api_key = os.environ.get("NEON_API_KEY", "")
    if not api_key or not project:
        raise InputError(f"{what} needs NEON_API_KEY in the environment and NEON_PROJECT_ID (or --neon-project)")
    return api_key


def targeted(fn: Command) -> Command:
    """Give a command the shared target options as its parameter ``spec: TargetSpec``."""
    options = {name: Annotated[kind, option] for name, (kind, option) in TARGET_OPTIONS.items()}
    return option_group("spec", options, _spec, _TARGET_DEFAULTS)(fn)
