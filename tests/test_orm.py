"""Python scenario files (bench.catalogue.orm): the statements the app's models and SQLAlchemy send,
compiled as its driver sends them, read by the same parser rules, drawn like their twins, measured
and reported beside them; a broken or hostile file is one line, before any database work."""

from __future__ import annotations

import asyncio
import inspect
import random
import shutil
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from bench.catalogue import orm
from bench.catalogue.files import Catalogue, Scenario, load_catalogue
from bench.catalogue.options import DRIVERS
from bench.catalogue.params import Drawer, load_pools
from bench.errors import InputError
from bench.judge.timegate import DEFAULT_TIME
from bench.judge.twins import twin_pairs
from bench.measure.options import RunOptions
from bench.report.build import write_report
from bench.results import Results
from bench.runs.matrix import measure
from bench.targets import schema
from bench.targets.target import Target, connected
from tests.support import SCENARIOS, cell_of, one_line_error, taskbench_here

pytestmark = pytest.mark.usefixtures("no_figures")  # its reports are not its subject (tests/conftest.py)

SHIPPED_TWINS = {
    "orm_recent_tasks": "recent_tasks",
    "orm_open_task_count": "open_task_count",
    "orm_offset_page_deep": "offset_page_deep",
    "orm_tags_any_in": "tags_any",
    "orm_tags_any_any": "tags_any",
    "orm_last_messages": "last_messages",
    "orm_complete_task": "complete_task",
}


class AppSession(Session):
    """A real session with what the scenario files call on theirs."""

    attached = orm.RecordingSession.attached


def _values(scenario: Scenario, lengths: dict[str, int]) -> orm.Values:
    """Real values of each kind's type, as the app holds them: what the compiled text must not depend on."""
    real: dict[str, Any] = {
        "user": uuid.uuid4(),
        "conversation": uuid.uuid4(),
        "task": 7,
        "deep_offset": 1200,
        "today": date(2026, 1, 5),
        "cursor_created_at": datetime(2026, 1, 5, tzinfo=UTC),
        "cursor_id": 9,
        "priority": "high",
        "category": "work",
    }
    values = {
        name: ["work", "home", "errand"][: lengths[name]]
        if name in lengths
        else real.get(spec, "word")
        if isinstance(spec, str)
        else spec
        for name, spec in scenario.params.items()
    }
    return orm.Values(values)


def _run_as_the_app(session: Session, path: Path, scenario: Scenario, lengths: dict[str, int]) -> None:
    _, build = orm.declarations(orm.load_module(path, path.parent), path)
    made = build(*([_values(scenario, lengths), session][: len(inspect.signature(build).parameters)]))
    if made is not None and not isinstance(made, list | int):  # a statement returned: the app executes it
        session.execute(made)


def _prepared(session: Session) -> set[str]:
    return {row[0] for row in session.execute(text("SELECT statement FROM pg_prepared_statements"))}


@pytest.fixture(scope="module")
def empty(make_target) -> Target:
    """The models' tables, empty: the app's statements run on them, returning nothing."""
    target: Target = make_target("tborm")
    schema.recreate_schema(target)
    return target


def _sent_by_asyncpg(target: Target, catalogue: Catalogue) -> set[str]:
    async def run() -> set[str]:
        engine = create_async_engine(target.url.set(drivername="postgresql+asyncpg"))
        try:
            async with AsyncSession(engine, sync_session_class=AppSession) as session:
                for scenario in catalogue.scenarios:
                    for statement in scenario.statements:
                        path = SCENARIOS / "queries" / f"{scenario.name}.py"
                        await session.run_sync(_run_as_the_app, path, scenario, statement.lengths or {"tags": 2})
                sent: set[str] = await session.run_sync(_prepared)
                await session.rollback()
                return sent
        finally:
            await engine.dispose()

    return asyncio.run(run())


def _sent_by_psycopg(target: Target, catalogue: Catalogue) -> set[str]:
    # psycopg prepares from the first execution here (prepare_threshold 0), so each text is listed
    engine = create_engine(target.url.set(drivername="postgresql+psycopg"), connect_args={"prepare_threshold": 0})
    try:
        with AppSession(engine) as session:
            for scenario in catalogue.scenarios:
                for statement in scenario.statements:
                    path = SCENARIOS / "queries" / f"{scenario.name}.py"
                    _run_as_the_app(session, path, scenario, statement.lengths or {"tags": 2})
            sent = _prepared(session)
            session.rollback()
            return sent
    finally:
        engine.dispose()


@pytest.mark.parametrize("driver", DRIVERS)
def test_the_compiled_text_is_what_sqlalchemy_and_the_driver_send(empty, driver):
    """Every shipped ORM statement, run by a real SQLAlchemy engine of that driver with real values:
    the server prepared exactly the text taskbench compiled (casts, bind numbers, in_() expanded)."""
    catalogue = load_catalogue(SCENARIOS, driver=driver).select(list(SHIPPED_TWINS), None)
    sent = (_sent_by_asyncpg if driver == "asyncpg" else _sent_by_psycopg)(empty, catalogue)
    compiled = {s.sql for sc in catalogue.scenarios for s in sc.statements}
    assert compiled <= sent, compiled - sent
    assert len(compiled) == 8  # in_() over 2 or 3 tags: two statements


def test_shipped_twins_stand_beside_their_hand_written_scenarios(catalogue):
    by_name = {s.name: s for s in catalogue.scenarios}
    for name, twin in SHIPPED_TWINS.items():
        scenario = by_name[name]
        assert scenario.orm is not None and scenario.orm.twin == twin and by_name[twin].orm is None
        assert scenario.draws_as == twin  # declared like the twin: drawn the same parameter sets
    assert by_name["orm_complete_task"].kind == "write"
    tags_in = by_name["orm_tags_any_in"]
    assert [s.lengths for s in tags_in.statements] == [{"tags": 2}, {"tags": 3}]
    assert "IN ($3::VARCHAR, $4::VARCHAR, $5::VARCHAR)" in tags_in.statements[1].sql
    assert [s.lengths for s in by_name["orm_tags_any_any"].statements] == [{}]  # one array bind
    # asyncpg casts an enum bind to its type; psycopg's dialect leaves it to the server
    psycopg = load_catalogue(SCENARIOS, driver="psycopg")
    complete = next(s for s in psycopg.scenarios if s.name == "orm_complete_task")
    assert "is_completed=$1," in complete.sql and "is_completed=$1::BOOLEAN" in by_name["orm_complete_task"].sql


async def _draws(target: Target, scenarios: list[Scenario]) -> list[list[Any]]:
    async with connected(target) as conn:
        pools = await load_pools(conn, {"user", "tags_any"}, date(2026, 1, 1))
    return [[Drawer(s, pools, seed=3).draw() for _ in range(6)] for s in scenarios]


def test_an_orm_scenario_draws_its_twins_parameter_sets(seeded, catalogue):
    hand, by_in, by_any = (
        next(s for s in catalogue.scenarios if s.name == n) for n in ("tags_any", "orm_tags_any_in", "orm_tags_any_any")
    )
    tags, tags_in, tags_any = asyncio.run(_draws(seeded, [hand, by_in, by_any]))
    for plain, expanded, array in zip(tags, tags_in, tags_any, strict=True):
        user, chosen, page = plain.args
        assert array.args == [user, chosen, page]
        assert expanded.args == [user, page, *chosen]  # one bind per tag, after the LIMIT's
        assert expanded.sql == by_in.statements[len(chosen) - 2].sql  # the statement for that many tags


def _scenarios(tmp_path: Path, name: str, source: str) -> Path:
    d = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, d)
    (d / "queries" / f"{name}.py").write_text(source)
    return d


_HEADER = 'from sqlmodel import col, select, text\nfrom bench.models import Task\nSLA_CLASS = "list"\n'
_BROKEN = {
    "import_error": ("import no_such_module\n", "cannot import it: ModuleNotFoundError"),
    "syntax_error": ("def statement(p:\n", "cannot import it: SyntaxError"),
    "exits": ("import sys\nsys.exit(3)\n", "cannot import it: SystemExit"),
    "interrupts": ("raise KeyboardInterrupt\n", "cannot import it: KeyboardInterrupt"),
    "no_function": ('PARAMS = {"u": "user"}\n', "no function statement(p)"),
    "typo": ('SLA_CLAS = "list"\ndef statement(p): ...\n', "SLA_CLAS is not a declaration"),
    "returns_text": (
        'PARAMS = {"u": "user"}\ndef statement(p):\n    return text("DELETE FROM tasks")\n',
        "gave TextClause",
    ),
    "undeclared": (
        "def statement(p):\n    return select(Task).where(Task.user_id == p.user_id).order_by(Task.id).limit(5)\n",
        "reads p.user_id, which PARAMS does not declare",
    ),
    "unknown_kind": (
        'PARAMS = {"u": "someone"}\ndef statement(p):\n    return select(Task.id).where(Task.user_id == p.u)\n',
        "unknown kind 'someone'",
    ),
    "no_kind": (
        'PARAMS = {"u": None}\ndef statement(p):\n    return select(Task.id).where(Task.user_id == p.u)\n',
        "params: param 'u' has no kind",
    ),
    "selectin": (
        'from sqlalchemy.orm import selectinload\nfrom bench.models import Conversation\nPARAMS = {"u": "user"}\n'
        "def statement(p, session):\n    query = select(Conversation).where(Conversation.user_id == p.u)\n"
        "    return session.scalars(query.options(selectinload(Conversation.messages))).all()\n",
        "selectinload() sends a statement of its own after this one, which would not be measured",
    ),
    "subquery": (
        'from sqlalchemy.orm import subqueryload\nfrom bench.models import Conversation\nPARAMS = {"u": "user"}\n'
        "def statement(p, session):\n    query = session.query(Conversation).filter(Conversation.user_id == p.u)\n"
        "    return query.options(subqueryload(Conversation.messages)).all()\n",
        "subqueryload() sends a statement of its own",
    ),
    "immediate": (
        'from sqlalchemy.orm import immediateload\nfrom bench.models import Message\nPARAMS = {"c": "conversation"}\n'
        "def statement(p):\n    loads = immediateload(Message.conversation)\n"
        "    return select(Message).where(Message.conversation_id == p.c).options(loads)\n",
        "immediateload() sends a statement of its own",
    ),
    "unused": ('PARAMS = {"u": "user"}\ndef statement(p):\n    return select(Task.id)\n', "never uses it"),
    "formatted": (
        'PARAMS = {"w": "word"}\ndef statement(p):\n    return select(Task.id).where(text(f"title = \'{p.w}\'"))\n',
        "p.w is written into the SQL text",
    ),
    "computed": (
        'from datetime import timedelta\nPARAMS = {"d": "today"}\ndef statement(p):\n'
        "    return select(Task.id).where(Task.due_date < p.d + timedelta(days=7))\n",
        "computed from a parameter",
    ),
    "modifies_as_read": (
        'from sqlalchemy import delete\nPARAMS = {"u": "user"}\ndef statement(p):\n'
        "    return delete(Task).where(Task.user_id == p.u)\n",
        "a read scenario is one SELECT, not DeleteStmt",
    ),
    "foreign_table": (
        'from sqlalchemy import table, column\nPARAMS = {"u": "user"}\ndef statement(p):\n'
        '    return select(column("rolpassword")).select_from(table("pg_authid")).where(column("x") == p.u)\n',
        "'pg_authid' is not one of the tables",
    ),
    "ties": (
        'PARAMS = {"u": "user"}\ndef statement(p):\n'
        "    return select(Task.id).where(Task.user_id == p.u).order_by(Task.due_date).limit(5)\n",
        "ORDER BY",
    ),
    "unknown_twin": (
        'TWIN = "nobody"\nPARAMS = {"u": "user"}\n'
        "def statement(p):\n    return select(Task.id).where(Task.user_id == p.u)\n",
        "TWIN 'nobody' is no scenario",
    ),
}


@pytest.mark.parametrize("name", sorted(_BROKEN))
def test_a_broken_or_hostile_python_scenario_is_one_line(tmp_path, name):
    source, reason = _BROKEN[name]
    with pytest.raises(InputError, match="^.*" + name + r"\.py: ") as raised:
        load_catalogue(_scenarios(tmp_path, name, _HEADER + source))
    assert reason in str(raised.value) and "\n" not in str(raised.value)


def test_a_python_scenario_is_imported_only_from_the_catalogues_queries(tmp_path):
    outside = tmp_path / "elsewhere.py"
    outside.write_text(_HEADER + 'PARAMS = {"u": "user"}\ndef statement(p): ...\n')
    d = _scenarios(tmp_path, "placeholder", "")
    (d / "queries" / "placeholder.py").unlink()
    (d / "queries" / "linked.py").symlink_to(outside)
    with pytest.raises(InputError, match=r"linked\.py: a Python scenario is imported only from"):
        load_catalogue(d)
    (d / "queries" / "linked.py").unlink()
    (d / "queries" / "recent_tasks.py").write_text(_HEADER + "def statement(p): ...\n")
    with pytest.raises(InputError, match=r"recent_tasks\.toml: recent_tasks\.py defines scenario 'recent_tasks' too"):
        load_catalogue(d)


def test_a_python_file_a_toml_file_or_a_results_file_names_is_never_imported(tmp_path, twins_run, catalogue):
    """Python scenario files come from a scenarios directory's queries/ only: a file that a TOML
    scenario names, or that lies beside a reference run's results.json and is named as its ORM cell's
    scenario, is not imported (it would leave a mark); the reference's recorded statements stand."""
    from bench import results as results_io
    from bench.judge.check import resolve_before
    from bench.targets.schema import model_ddl

    mark = tmp_path / "imported"
    hostile = f"open({str(mark)!r}, 'w').close()\n" + _HEADER + 'PARAMS = {"u": "user"}\ndef statement(p): ...\n'
    run_dir = tmp_path / "run"
    results_io.write(twins_run, run_dir)
    for folder in (run_dir, run_dir / "queries"):
        folder.mkdir(exist_ok=True)
        (folder / "orm_open_task_count.py").write_text(hostile)
    d = _scenarios(tmp_path, "placeholder", "")
    (d / "queries" / "placeholder.py").unlink()
    (d / "queries" / "named.toml").write_text(
        f'sla_class = "list"\nsql = "SELECT 1"\nmodule = {str(run_dir / "orm_open_task_count.py")!r}\n'
    )
    with pytest.raises(InputError, match=r"named\.toml: .*module"):
        load_catalogue(d)
    reference = results_io.load(run_dir)
    with resolve_before(catalogue, tmp_path, None, None, reference, model_ddl()) as before:  # no git here
        count = next(s for s in before.catalogue.scenarios if s.name == "orm_open_task_count")
    assert count.orm == cell_of(twins_run, "orm_open_task_count", "partial").orm
    assert not mark.exists()


def test_the_command_line_says_one_line_and_exits_2(tmp_path):
    d = _scenarios(tmp_path, "orm_broken", "import no_such_module\n")
    proc = taskbench_here("validate", "--scenarios-dir", str(d), "--scenario", "recent_tasks")
    assert proc.returncode == 2
    assert "orm_broken.py: cannot import it: ModuleNotFoundError" in one_line_error(proc)
    proc = taskbench_here("run", "--scenarios-dir", str(SCENARIOS), "--driver", "jdbc", "--variant", "baseline")
    assert proc.returncode == 2 and "unknown driver 'jdbc'" in one_line_error(proc)


@pytest.fixture(scope="module")
def twins_run(seeded, catalogue) -> Results:
    """The count through a subquery, the relationship's history and a write, beside their twins, under
    the partial index over open tasks, which the hand-written count reads alone."""
    chosen = ["open_task_count", "orm_open_task_count", "last_messages", "orm_last_messages"]
    opts = RunOptions(cold_samples=0, stability_rounds=0, concurrent=True, warmup_seconds=0.1)
    return measure(seeded, catalogue.select([*chosen, "complete_task", "orm_complete_task"], ["partial"]), opts)


def test_orm_cells_record_what_they_send_and_pair_with_their_twins(twins_run):
    count = cell_of(twins_run, "orm_open_task_count", "partial")
    assert count.orm is not None and count.orm.twin == "open_task_count" and count.orm.driver == "asyncpg"
    assert count.sql == count.orm.statements[0].sql and "AS anon_1" in count.sql
    hand = cell_of(twins_run, "open_task_count", "partial")
    # the same parameter sets: the counts (rows) of every explained sample agree
    assert count.samples.result_hashes == hand.samples.result_hashes
    pairs = {p.orm.scenario: p for p in twin_pairs(twins_run)}
    assert set(pairs) == {"orm_open_task_count", "orm_last_messages", "orm_complete_task"}
    # Query.count() over the ordered list query: the subquery keeps its sort, which the count does not
    # need, and its every column, so where the hand-written count reads the partial index alone
    # (index-only) the ORM's reads the rows: shown by their buffers (the same parameter sets)
    assert pairs["orm_open_task_count"].plan_differs and "Sort" in count.plan.node_types
    assert "Index Only Scan" in hand.plan.node_types and "Index Only Scan" not in count.plan.node_types
    buffers = pairs["orm_open_task_count"].buffers
    assert buffers is not None and buffers[1] > 10 * buffers[0]
    # and it is shown slower: every pair's ORM sample took about 4 (ordinary) and 6 (power) times its
    # twin's on the tiny dataset, 3 runs of 3 (p < 1e-21 per class)
    assert pairs["orm_open_task_count"].time == "slower"
    # the relationship loads the whole history: no LIMIT
    assert "Limit" not in cell_of(twins_run, "orm_last_messages", "partial").plan.node_types
    assert not pairs["orm_complete_task"].plan_differs


def test_the_report_says_what_the_orm_sends(twins_run, tmp_path):
    from bench import results as results_io

    results_io.write(twins_run, tmp_path)
    write_report(tmp_path)
    summary = (tmp_path / "summary.md").read_text()
    section = summary.split("## What the ORM sends", 1)[1].split("\n## ", 1)[0]
    assert "| orm_open_task_count | open_task_count | partial |" in section
    assert "Aggregate → Sort" in section
    assert "FROM (SELECT tasks.user_id AS tasks_user_id" in section  # the ORM's SQL
    assert "WHERE user_id = $1 AND NOT is_completed AND deleted_at IS NULL" in section  # the twin's
    assert "What the ORM sends" in (tmp_path / "index.html").read_text()


def test_an_equally_fast_twin_is_rarely_called_slower_or_faster(twins_run):
    """The time test's false findings, simulated: a twin whose samples are its twin's own, each pair's
    two members swapped at random (under "equally fast" they are exchangeable). Over 400 simulated
    runs of three pairs, findings stay within the bound (alpha per direction, Bonferroni over the run)."""
    rng = random.Random(7)
    hand = cell_of(twins_run, "open_task_count", "partial")
    twin = cell_of(twins_run, "orm_open_task_count", "partial")
    assert twin.orm is not None
    built = twin.orm
    runs, findings = 400, 0
    for _ in range(runs):
        cells = []
        for name in ("a", "b", "c"):
            left, right = [], []
            for ms in hand.samples.client_ms:  # a pair of the same time, and a shifted one, swapped or not
                pair = [ms, ms * rng.uniform(0.5, 1.5)]
                rng.shuffle(pair)
                left.append(pair[0])
                right.append(pair[1])
            samples = hand.samples.model_copy(update={"client_ms": left})
            orm_samples = hand.samples.model_copy(update={"client_ms": right})
            cells.append(hand.model_copy(update={"scenario": name, "samples": samples}))
            cells.append(
                twin.model_copy(
                    update={
                        "scenario": f"orm_{name}",
                        "samples": orm_samples,
                        "orm": built.model_copy(update={"twin": name}),
                    }
                )
            )
        findings += any(p.time for p in twin_pairs(twins_run.model_copy(update={"cells": cells})))
    bound = 2 * DEFAULT_TIME.alpha  # either direction
    assert findings / runs <= bound + 3 * (bound * (1 - bound) / runs) ** 0.5
