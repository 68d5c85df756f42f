"""The scenarios as pytest-benchmark benchmarks — one per scenario × variant — for teams whose
regression habit is ``--benchmark-autosave`` and ``--benchmark-compare-fail=median:10%``.

``benchmarks/conftest.py`` loads this plugin (``pytest_plugins``); elsewhere, ``-p
bench.pytest_plugin``. A session seeds (or reuses) the dataset, works on a scratch copy of it,
applies one variant at a time (the variant parameter is session-scoped, so pytest groups the
scenarios under it) and times the scenario's SQL through psycopg with server-side prepared
statements, cycling over parameter sets drawn as ``taskbench run`` draws them. Timings stay in
pytest-benchmark's hands; nothing here asserts a latency.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from pglast.parser import scan

from bench.catalogue.files import Catalogue, Scenario, load_catalogue
from bench.catalogue.params import Drawer, Pools, pools_for
from bench.catalogue.variants import applied_variant
from bench.targets import schema
from bench.targets.options import TargetSpec
from bench.targets.provision import dataset_home
from bench.targets.target import Target, connected, scratch_copy
from seed.load import seed_database
from seed.profiles import get_profile


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("taskbench", "taskbench scenarios as benchmarks")
    group.addoption("--tb-profile", default="ci", help="dataset profile (default: ci)")
    group.addoption("--tb-users", type=int, default=None, help="override the profile's users")
    group.addoption("--tb-tasks-per-user", type=int, default=None, help="override the profile's tasks per user")
    group.addoption("--tb-db-name", default="taskbench_pytest", help="database the dataset lives in")
    group.addoption("--tb-scenarios-dir", default="scenarios", help="sla.toml, queries/, variants/")
    group.addoption("--tb-param-sets", type=int, default=200, help="parameter sets cycled per benchmark")


def _catalogue(config: pytest.Config) -> Catalogue:
    # Reads only: a benchmark round repeats the statement outside any rolled-back transaction.
    return load_catalogue(Path(config.getoption("--tb-scenarios-dir"))).reads()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    catalogue = None
    if "tb_variant" in metafunc.fixturenames:
        catalogue = _catalogue(metafunc.config)
        # Session scope: pytest runs every scenario under one variant before applying the next.
        metafunc.parametrize("tb_variant", [v.name for v in catalogue.variants], indirect=True, scope="session")
    if "tb_scenario" in metafunc.fixturenames:
        catalogue = catalogue or _catalogue(metafunc.config)
        metafunc.parametrize("tb_scenario", [s.name for s in catalogue.scenarios])


@pytest.fixture(scope="session")
def tb_catalogue(pytestconfig: pytest.Config) -> Catalogue:
    return _catalogue(pytestconfig)


@pytest.fixture(scope="session")
def tb_target(pytestconfig: pytest.Config) -> Iterator[Target]:
    """A scratch copy of the seeded dataset (the embedded server unless DATABASE_URL is set)."""
    opt = pytestconfig.getoption
    spec = TargetSpec(database_url=os.environ.get("DATABASE_URL") or None, db_name=opt("--tb-db-name"))
    profile = get_profile(opt("--tb-profile"), users=opt("--tb-users"), tasks_per_user=opt("--tb-tasks-per-user"))
    with dataset_home(spec) as home:
        seed_database(home, profile)
        with scratch_copy(home, "pytest") as copy:
            yield copy


@pytest.fixture(scope="session")
def tb_pools(tb_target: Target, tb_catalogue: Catalogue) -> Pools:
    today = schema.seeded_dataset(tb_target).anchor_date

    async def load() -> Pools:
        async with connected(tb_target) as conn:
            return await pools_for(conn, tb_catalogue.scenarios, today)

    return asyncio.run(load())


@pytest.fixture(scope="session")
def tb_variant(request: pytest.FixtureRequest, tb_target: Target, tb_catalogue: Catalogue) -> Iterator[str]:
    """The variant applied while pytest runs its scenarios, removed after them: one event loop holds
    the connection and the applied variant across the yield."""
    variant = next(v for v in tb_catalogue.variants if v.name == request.param)

    async def apply(stack: AsyncExitStack) -> None:
        conn = await stack.enter_async_context(connected(tb_target))
        await stack.enter_async_context(applied_variant(conn, variant))

    with asyncio.Runner() as loop:
        stack = AsyncExitStack()
        try:
            loop.run(apply(stack))
            yield variant.name
        finally:
            loop.run(stack.aclose())


@pytest.fixture(scope="session")
def tb_connection(tb_target: Target) -> Iterator[psycopg.Connection]:
    with psycopg.connect(tb_target.libpq_conninfo(direct=False), autocommit=True) as conn:
        yield conn


@pytest.fixture
def tb_scenario(request: pytest.FixtureRequest) -> str:
    scenario: str = request.param  # pytest_generate_tests parametrizes it with scenario names
    return scenario


@dataclass
class Query:
    """One scenario, ready to run: each call executes it with the next parameter set."""

    scenario: Scenario
    variant: str
    run: Callable[[], list[Any]]

    def __call__(self) -> list[Any]:
        return self.run()

    @property
    def info(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario.name,
            "variant": self.variant,
            "sla_ms": self.scenario.sla_ms,
            "sla_class": self.scenario.sla_class,
        }


def psycopg_sql(sql: str) -> str:
    """``$n`` parameters as psycopg's named ones (a parameter may be used twice), found by PostgreSQL's
    lexer (the PARAM tokens, as ``bench.catalogue.sql`` finds them): a ``$1`` inside a string, a quoted
    identifier or a comment is no parameter. Every other ``%`` is doubled: psycopg reads the whole text
    for its placeholders, literals included. pglast's token offsets count characters (end inclusive)."""
    pieces: list[str] = []
    copied = 0
    for token in scan(sql):
        if token.name == "PARAM":
            number = sql[token.start + 1 : token.end + 1]
            pieces += [sql[copied : token.start].replace("%", "%%"), f"%(p{number})s"]
            copied = token.end + 1
    pieces.append(sql[copied:].replace("%", "%%"))
    return "".join(pieces)


@pytest.fixture
def tb_query(
    tb_scenario: str,
    tb_variant: str,
    tb_catalogue: Catalogue,
    tb_pools: Pools,
    tb_connection: psycopg.Connection,
    pytestconfig: pytest.Config,
) -> Query:
    scenario = next(s for s in tb_catalogue.scenarios if s.name == tb_scenario)
    drawer = Drawer(scenario, tb_pools, seed=1)
    sets = itertools.cycle(
        [
            (psycopg_sql(drawn.sql), {f"p{i + 1}": v for i, v in enumerate(drawn.args)})
            for drawn in (drawer.draw() for _ in range(pytestconfig.getoption("--tb-param-sets")))
        ]
    )

    def run() -> list[Any]:
        sql, params = next(sets)
        return tb_connection.execute(sql, params, prepare=True).fetchall()

    return Query(scenario, tb_variant, run)
