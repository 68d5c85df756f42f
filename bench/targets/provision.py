"""Which PostgreSQL a command works on, set up before and torn down after: the embedded server
(default), a server given by URL, a Neon branch, or a Docker container.

Two roles: the *dataset home* is where the seeded dataset lives (the embedded or URL database, a
named Neon parent branch, a container); the *measurement target* is where a run measures (the
home itself, except on Neon, where each run gets a copy-on-write child branch of the home that is
deleted afterwards, and a sharded run one branch per shard: computes that share no CPU).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING, Protocol

from bench.errors import DatabaseError, InputError
from bench.targets import schema
from bench.targets.container import docker_postgres
from bench.targets.options import NeonSettings, TargetSpec
from bench.targets.target import Target, check_db_name, open_server, open_target, parse_database_url

# The Neon client (httpx) is imported where a Neon target is used, as the Docker one is (``container``):
# a seed or a run on any other server does not pay for it.
if TYPE_CHECKING:
    from bench.targets.neon import Branch, NeonClient

Announce = Callable[[str], None]


class Profile(Protocol):
    """What a dataset home needs of a data profile: its fingerprint. A protocol that
    seed.profiles.Profile meets, because seed is built on targets and targets must not import it."""

    def fingerprint(self) -> str: ...


def _quiet(message: str) -> None:
    pass


def require_lasting(spec: TargetSpec) -> None:
    """A Docker container lives for one command: seeding into it for a later command, or measuring
    a dataset that an earlier command seeded, cannot work."""
    if spec.resolved_kind == "docker":
        raise InputError(
            "--target docker starts a new, empty container for each command and removes it "
            "afterwards: use `taskbench bench`, `scale` or `seed-bench`, which seed and measure "
            "in one go"
        )


@contextmanager
def dataset_home(spec: TargetSpec, announce: Announce = _quiet) -> Iterator[Target]:
    """Where the dataset is seeded and kept; claimed for taskbench (a foreign, non-empty database
    is refused unless ``spec.force``)."""
    kind = spec.resolved_kind
    check_db_name(spec.db_name)
    if kind == "docker":
        with docker_postgres(spec.pg_major) as url:
            announce(f"started a postgres:{spec.pg_major} container (removed when done)")
            yield _claimed(open_server(url, "docker", spec.db_name), spec)
        return
    if kind == "neon":
        from bench.targets.neon import parent_branch

        assert spec.neon is not None
        with _client(spec.neon) as client:
            branch = parent_branch(client, spec.db_name, create=True)
            target = _neon_target(client, branch, spec.db_name)
        announce(f"dataset home: Neon branch {branch.name} ({branch.id})")
        yield _claimed(target, spec)
        return
    given = spec.database_url if kind == "url" else None
    yield _claimed(open_target(given, spec.db_name, spec.embedded_dir, spec.pg_major), spec)


def for_dataset(spec: TargetSpec, profile: Profile) -> TargetSpec:
    """``spec`` with its Neon parent named after its database, ``profile``'s dataset and the models'
    schema (unless --neon-parent named one): what a command that seeds, and then perhaps measures, uses."""
    if spec.neon is None or spec.neon.parent is not None:
        return spec
    from bench.targets.neon import schema_fingerprint, seeded_parent_name

    name = seeded_parent_name(spec.db_name, profile.fingerprint(), schema_fingerprint(schema.model_ddl()))
    return replace(spec, neon=replace(spec.neon, parent=name))


@contextmanager
def seeded_home(
    spec: TargetSpec,
    profile: Profile,
    seed: Callable[[Target], object],
    announce: Announce = _quiet,
    reload: bool = False,
) -> Iterator[Target]:
    """The dataset home holding ``profile``'s dataset: ``seed`` is called on it (and skips a dataset
    already there). On Neon, a seeded parent (for_dataset) that exists is used as it is, never seeded
    again in place (its children may be measuring); a missing one is seeded on a new branch and
    published under its name once complete (seed_parent)."""
    spec = for_dataset(spec, profile)
    name = spec.neon.parent if spec.neon is not None and spec.resolved_kind == "neon" else None
    if name is None or not _seeded_parent(name):
        with dataset_home(spec, announce) as home:
            seed(home)
            yield home
        return
    from bench.targets.neon import parent_branch, seed_parent

    assert spec.neon is not None
    check_db_name(spec.db_name)
    with _client(spec.neon) as client:
        existed = client.find_branch(name) is not None
        if existed and reload:
            raise InputError(
                f"--reload: Neon parent {name} is never seeded again in place (runs may be branching from "
                f"it); delete it first: neonctl branches delete {name} --project-id {spec.neon.project_id}"
            )
        if not existed:
            with seed_parent(client, name, spec.db_name, announce) as staging:
                seed(_claimed(_neon_target(client, staging, spec.db_name), spec))
        target = _neon_target(client, parent_branch(client, spec.db_name, create=False), spec.db_name)
    announce(f"dataset home: Neon branch {name}")
    if existed:
        info = schema.current_dataset(target)
        if not info or info.get("fingerprint") != profile.fingerprint():
            raise DatabaseError(
                f"Neon branch {name} does not hold dataset {profile.fingerprint()} in the models' tables; a "
                f"seeded parent is never seeded in place: delete it (neonctl branches delete {name} "
                f"--project-id {spec.neon.project_id}) and seed again"
            )
        seed(target)  # finds the dataset there: says so, loads nothing
    yield target


@contextmanager
def measurement_target(spec: TargetSpec, home: Target | None = None, announce: Announce = _quiet) -> Iterator[Target]:
    """Where a run measures. On Neon: a fresh child branch of the dataset home, deleted on exit
    whatever happens (unless ``keep_branch``); elsewhere the home itself."""
    if spec.resolved_kind == "neon":
        with measurement_targets(spec, 1, announce) as (target,):
            yield target
    elif home is not None:
        yield home
    else:
        require_lasting(spec)
        with dataset_home(spec, announce) as target:
            yield target


@contextmanager
def measurement_targets(spec: TargetSpec, count: int, announce: Announce = _quiet) -> Iterator[list[Target]]:
    """``count`` measurement targets that share no CPU, for a sharded run: on Neon, child branches of
    the dataset home created one after another, all deleted on exit whatever happens. Elsewhere
    there is one machine, and shards measured on it at once would distort each other's timings."""
    if spec.resolved_kind != "neon":
        if count != 1:
            raise InputError(
                f"{count} targets measured at once need --target neon (one compute per shard); "
                "on one machine, run the shards one after another"
            )
        with measurement_target(spec, announce=announce) as target:
            yield [target]
        return
    from bench.targets.neon import run_branches

    assert spec.neon is not None
    with _client(spec.neon) as client, run_branches(client, spec.db_name, count, announce) as branches:
        yield [_neon_target(client, branch, spec.db_name) for branch in branches]


@contextmanager
def _client(settings: NeonSettings) -> Iterator[NeonClient]:
    from bench.targets.neon import NeonClient

    client = NeonClient(settings)
    try:
        yield client
    finally:
        client.close()


def _seeded_parent(name: str) -> bool:
    """``name`` is a seeded parent's (one per database, dataset and models' schema)."""
    from bench.targets.neon import SEEDED_NAME

    return SEEDED_NAME.fullmatch(name) is not None


def _neon_target(client: NeonClient, branch: Branch, db_name: str) -> Target:
    # The database names come from the API's connection strings, not from db_name: the API is the
    # authority on where a branch's database lives.
    url = parse_database_url(client.connection_uri(branch, db_name))
    maintenance = parse_database_url(client.connection_uri(branch, branch.default_db)).database
    return open_server(url, "neon", url.database or db_name, maintenance_db=maintenance)


def _claimed(target: Target, spec: TargetSpec) -> Target:
    schema.claim_database(target, force=spec.force)
    return target
