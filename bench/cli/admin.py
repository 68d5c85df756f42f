"""``taskbench neon parents`` and ``taskbench server status|stop``: the Neon project's seeded parents,
and the embedded server with what dead taskbench processes left."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from bench.cli.app import app, command
from bench.cli.console import note, out
from bench.cli.target_options import TARGET_OPTIONS, neon_api_key
from bench.targets.majors import wheel
from bench.targets.options import KEEP_PARENTS, NeonSettings, TargetSpec

neon_app = typer.Typer(no_args_is_help=True, help="The Neon project's seeded parent branches (--target neon).")
app.add_typer(neon_app, name="neon")


@command("parents", on=neon_app)
def neon_parents_cmd(
    neon_project: Annotated[str | None, TARGET_OPTIONS["neon_project"][1]] = None,
    neon_api_url: Annotated[str, TARGET_OPTIONS["neon_api_url"][1]] = NeonSettings.api_url,
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
        api_key=neon_api_key(neon_project, "taskbench neon"), project_id=neon_project or "", api_url=neon_api_url
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
        note(f"{len(parents)} seeded parents" + (f"; removing {len(old)}" if remove_old else ""))
        neon.remove_parents(client, old, note)
    finally:
        client.close()


server_app = typer.Typer(
    no_args_is_help=True,
    help="The embedded PostgreSQL of --data-dir: what runs, what dead taskbench processes left; stop it.",
)
app.add_typer(server_app, name="server")
DataDir = Annotated[Path | None, TARGET_OPTIONS["data_dir"][1]]
PgMajor = Annotated[int, TARGET_OPTIONS["pg_major"][1]]


def _data_dir(data_dir: Path | None, pg_major: int) -> Path:
    """The embedded server's data directory of ``pg_major``: a major no wheel runs refused, in one line."""
    wheel(pg_major)
    return TargetSpec(data_dir=data_dir, pg_major=pg_major).embedded_dir


@command("status", on=server_app)
def server_status_cmd(data_dir: DataDir = TargetSpec.data_dir, pg_major: PgMajor = TargetSpec.pg_major) -> None:
    """Whether the embedded server of --data-dir runs (pid, socket, URI), the taskbench processes using
    it, those that died without saying so, and the scratch copies their runs left. Changes nothing."""
    from bench.targets import server

    state = server.server_status(_data_dir(data_dir, pg_major))
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
        note(
            "the next command removes the dead processes from the list (and stops the server when it is the "
            "last), the next scratch copy drops the dead runs' copies and roles; `taskbench server stop` does "
            "all of it now"
        )


@command("stop", on=server_app)
def server_stop_cmd(
    data_dir: DataDir = TargetSpec.data_dir,
    pg_major: PgMajor = TargetSpec.pg_major,
    force: Annotated[
        bool, typer.Option("--force", help="Stop it even while live taskbench processes use it (they fail).")
    ] = False,
) -> None:
    """Drop the scratch copies of dead runs, then stop the embedded server of --data-dir (with the
    bundled pg_ctl) and remove dead processes from its list; refused while taskbench processes use it."""
    from bench.targets import server

    state = server.stop_server(_data_dir(data_dir, pg_major), force)
    found = state.server
    if state.orphans:
        out.print(f"dropped scratch copies of dead runs: {', '.join(state.orphans)}", highlight=False, markup=False)
    if state.roles:
        out.print(f"dropped samples' roles of dead runs: {', '.join(state.roles)}", highlight=False, markup=False)
    if found.handles.dead:
        out.print(f"removed dead processes from its list: {', '.join(map(str, found.handles.dead))}", highlight=False)
    done = f"stopped (pid {found.pid})" if found.running else "was not running"
    out.print(f"embedded PostgreSQL {found.data_dir}: {done}", highlight=False, markup=False)
