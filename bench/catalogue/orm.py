"""Python scenario files: the app's statements built with its SQLModel models and SQLAlchemy, compiled
to the text and parameters the app's driver sends.

A file ``scenarios/queries/<name>.py`` is code the team writes, like a test: loading it imports it.
It is imported only from the ``queries/`` directory of a scenarios directory named on the command
line (``--scenarios-dir``, check's ``--before``) or exported from a commit (``--before-ref``), never
by a path a file names, never through ``sys.path``; it declares, at module level and nothing else in
capitals::

    \"\"\"The description (the module's docstring).\"\"\"
    SLA_CLASS = "list"                 # required, as in a TOML file
    PARAMS = {"user_id": "user", "page_size": 20}   # kinds and constants, as a TOML file's [params]
    KIND = "read"                      # optional: "read" (the default) or "write"
    TWIN = "recent_tasks"              # optional: the hand-written scenario it stands beside

    def statement(p, session):         # or statement(p)
        ...

``statement`` gets ``p``, whose attributes are the declared parameters as values of the type each kind
draws (a UUID for ``user``, an int for ``task``, a list of strings for ``tags_any``...), and builds the
statement as the app does with values: it returns a ``select``, ``insert``, ``update`` or ``delete``,
or makes ``session`` execute one (``session.query(Task).filter(...).count()``, a relationship's lazy
load on ``session.attached(Conversation(id=p.conversation_id))``). ``session`` executes nothing: the
first statement it is asked to run is the scenario, captured as SQLAlchemy hands it to the driver; a
loader option that would send more after it (``selectinload``...) is refused.

Each value ``p`` gives is a *sentinel*, unique to its parameter, so the compiled statement's bound
values say which ``$n`` takes which parameter; every other bound value is a constant SQLAlchemy
binds (a ``.limit(20)``). The compiled text is the driver's own: asyncpg's dialect numbers the
binds itself; psycopg's renders ``%(name)s`` placeholders that psycopg turns into ``$n`` by its own
rules (``_psycopg_text``). An ``in_()`` over a list sends one bind per element, so a list parameter
gives one statement per length it is drawn at (``LIST_LENGTHS``). The result is data
(``OrmBuilt``): what a run measures and ``results.json`` records, read by PostgreSQL's parser with
the same rules as the SQL of a TOML file (``sql.parse_compiled``).
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime, timedelta
from itertools import product
from pathlib import Path
from types import ModuleType
from typing import Any

from sqlalchemy import Delete, Insert, Select, Update, event
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import ORMExecuteState, Session, make_transient_to_detached
from sqlalchemy.sql.compiler import SQLCompiler

from bench.errors import InputError, first_line
from bench.results import Driver, OrmBind, OrmBuilt, OrmStatement

STATEMENT = "statement"
# What a file may declare in capitals: other data in capitals is a typo the catalogue would ignore.
DECLARED = frozenset({"SLA_CLASS", "PARAMS", "KIND", "TWIN"})
_DATA = (str, int, float, dict, list, tuple, type(None))  # what a declaration holds
_REFERENCE = "taskbench.param"  # the key that marks a parameter inside a JSON bind's template

# The Python value each kind draws (bench.catalogue.params), as a function of a sentinel's number.
_UUID_NAMESPACE = uuid.UUID("6f1c4a52-7d0e-4c11-9a7e-2d8c0b1f5e26")
# Far from any id, offset or count (a value computed from one stays near), and still a 32-bit integer:
# SQLAlchemy casts a larger .limit() to BIGINT, which would not be the text the app sends.
_INT_BASE = -2_000_000_000
_DATE_BASE = date(1111, 1, 1)  # a computed date stays in that century
_MARK = "\ue000"  # a private-use character: no drawn word, tag or constant holds one


def _uuid(n: int) -> uuid.UUID:
    return uuid.uuid5(_UUID_NAMESPACE, str(n))


def _string(n: int) -> str:
    return f"{_MARK}{n}{_MARK}"


_SENTINELS: dict[str, Callable[[int], Any]] = {
    "user": _uuid,
    "conversation": _uuid,
    "task": lambda n: _INT_BASE - n,
    "cursor_id": lambda n: _INT_BASE - n,
    "deep_offset": lambda n: _INT_BASE - n,
    "tag": _string,
    "tags_json": _string,
    "word": _string,
    "fragment": _string,
    "priority": _string,
    "category": _string,
    "today": lambda n: _DATE_BASE + timedelta(days=n),
    "cursor_created_at": lambda n: datetime(1111, 1, 1, tzinfo=UTC) + timedelta(days=n),
}


# Loader strategies that send statements of their own after the statement that loads the rows
_LATER_LOADERS = {"selectin": "selectinload", "subquery": "subqueryload", "immediate": "immediateload"}


class _Captured(Exception):
    """Raised by the recording session at the first statement it is asked to execute."""


class RecordingSession(Session):
    """A session that executes nothing: the first statement it is asked to run (a query's, a lazy
    loader's) is recorded with its parameters, and stops the scenario's function there."""

    def __init__(self) -> None:
        super().__init__()
        self.recorded: tuple[Any, Mapping[str, Any]] | None = None
        event.listen(self, "do_orm_execute", self._record)

    def _record(self, state: ORMExecuteState) -> None:
        parameters = state.parameters
        self.recorded = (state.statement, dict(parameters) if isinstance(parameters, Mapping) else {})
        raise _Captured

    def attached(self, instance: Any) -> Any:
        """``instance`` (a model with its primary key set) as if it had been loaded: what the app
        holds when it reads a relationship, whose loader then issues its own statement."""
        make_transient_to_detached(instance)
        self.add(instance)
        return instance


class Values:
    """``p``: each declared parameter as a sentinel value of its kind's type; a constant as declared."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"statement() reads p.{name}, which PARAMS does not declare") from None


class _Sentinels:
    """The sentinels of one compilation, and which parameter (or list element) each stands for."""

    def __init__(self, params: dict[str, Any], lengths: dict[str, int]) -> None:
        self.values: dict[str, Any] = {}
        self.scalars: dict[tuple[type, Any], str] = {}  # (type, sentinel) -> parameter
        self.elements: dict[str, tuple[str, int]] = {}  # an element's sentinel -> (list parameter, index)
        self.lists: dict[int, str] = {}  # id of a list sentinel -> parameter
        for number, (name, spec) in enumerate(params.items(), start=1):
            if name in lengths:  # a list kind (tags_any): a list of string sentinels
                items = [_string(number * 100 + i) for i in range(lengths[name])]
                self.elements.update({item: (name, i) for i, item in enumerate(items)})
                self.lists[id(items)] = name
                self.values[name] = items
            elif isinstance(spec, str):
                self._scalar(name, _SENTINELS[spec](number))
            elif isinstance(spec, bool):  # two values cannot mark a parameter: passed as it is
                self.values[name] = spec
            elif isinstance(spec, int):
                self._scalar(name, _INT_BASE - 50_000 - number)
            else:
                self._scalar(name, _INT_BASE - 60_000 - number + 0.5)

    def _scalar(self, name: str, sentinel: Any) -> None:
        self.values[name] = sentinel
        self.scalars[(type(sentinel), sentinel)] = name

    def reference(self, value: Any) -> OrmBind | None:
        """The bind of a value that is a parameter as it was given (or an element of a list one)."""
        if isinstance(value, list) and id(value) in self.lists:
            return OrmBind(param=self.lists[id(value)])
        if isinstance(value, str) and value in self.elements:
            name, index = self.elements[value]
            return OrmBind(param=name, element=index)
        if isinstance(value, list | dict):
            return None
        found = self.scalars.get((type(value), value))
        return None if found is None else OrmBind(param=found)

    def template(self, value: Any) -> Any:
        """A JSON document with each parameter in it replaced by a reference to it."""
        bound = self.reference(value)
        if bound is not None:
            return {_REFERENCE: bound.param, "element": bound.element}
        if isinstance(value, list):
            return [self.template(item) for item in value]
        if isinstance(value, dict):
            return {key: self.template(item) for key, item in value.items()}
        return value

    def written(self, sql: str) -> str | None:
        """The parameter whose sentinel stands in the SQL text itself (formatted into it, not bound)."""
        for name, value in self.values.items():
            shown = value if isinstance(value, list) else [value]
            if not isinstance(value, bool) and any(str(item) in sql for item in shown):
                return name
        return None

    def traced(self, value: Any) -> bool:
        """Whether a constant was computed from a parameter (a date a week after ``p.today``, a
        string around ``p.fragment``): it could not be drawn again for each sample."""
        if isinstance(value, str):
            return _MARK in value
        if isinstance(value, bool):
            return False
        if isinstance(value, int | float):
            return value <= _INT_BASE + 1_000_000
        if isinstance(value, datetime | date):
            return value.year < 1300
        if isinstance(value, uuid.UUID):
            return any(value == _uuid(n) for n in range(1, len(self.values) + 1))
        if isinstance(value, list | tuple):
            return any(self.traced(item) for item in value)
        if isinstance(value, dict):
            return any(self.traced(item) for item in value.values())
        return False


def dialect_of(driver: Driver) -> Dialect:
    """SQLAlchemy's dialect for the app's driver, as ``postgresql+<driver>://`` engines make it."""
    if driver == "asyncpg":
        return asyncpg_dialect()
    return psycopg_dialect()


def load_module(path: Path, queries: Path) -> ModuleType:
    """Import a scenario file of the catalogue's ``queries`` directory, and only one of those: a
    symlink out of it is refused. Every exception of the import (a syntax error, a missing module,
    SystemExit, KeyboardInterrupt) is one line naming the file."""
    resolved, folder = path.resolve(), queries.resolve()
    if resolved.parent != folder:
        raise InputError(f"{path}: a Python scenario is imported only from {queries}, not from {resolved.parent}")
    spec = importlib.util.spec_from_file_location(f"taskbench_scenario_{path.stem}", resolved)
    assert spec is not None and spec.loader is not None  # a .py path always has a source loader
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - the team's code: any failure (KeyboardInterrupt too) is its error
        raise InputError(f"{path}: cannot import it: {type(exc).__name__}: {first_line(exc)}") from None
    return module


def declarations(module: ModuleType, path: Path) -> tuple[dict[str, Any], Callable[..., Any]]:
    """The file's declarations as a TOML file's keys would be, and its statement function."""
    unknown = sorted(
        name
        for name, value in vars(module).items()
        if name.isupper() and name not in DECLARED and isinstance(value, _DATA)  # not an import (ARRAY)
    )
    if unknown:
        raise InputError(f"{path}: {unknown[0]} is not a declaration ({', '.join(sorted(DECLARED))} are)")
    build = getattr(module, STATEMENT, None)
    if not inspect.isfunction(build):
        raise InputError(f"{path}: no function {STATEMENT}(p) or {STATEMENT}(p, session)")
    if len(inspect.signature(build).parameters) not in (1, 2):
        raise InputError(f"{path}: {STATEMENT}() takes p, or p and session")
    data: dict[str, Any] = {"description": " ".join((module.__doc__ or "").split())}
    for key in ("SLA_CLASS", "PARAMS", "KIND", "TWIN"):
        if hasattr(module, key):
            data[key.lower()] = getattr(module, key)
    if "sla_class" not in data:
        raise InputError(f"{path}: SLA_CLASS is not declared")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise InputError(f"{path}: PARAMS must map parameter names to kinds or constants")
    return data, build


def compile_file(
    path: Path,
    build: Callable[..., Any],
    params: dict[str, Any],
    lengths: Mapping[str, tuple[int, ...]],
    driver: Driver,
) -> list[OrmStatement]:
    """The statements ``build`` makes, compiled for ``driver``: one per combination of the lengths its
    list parameters are drawn at (fewer where they render alike, as with ``any_()``)."""
    known = [*_SENTINELS, *lengths]
    for name, spec in params.items():
        if not isinstance(spec, str | int | float):  # a bool is an int
            raise InputError(f"{path}: params: param {name!r} has no kind: {spec!r} is no kind (a string) or constant")
        if isinstance(spec, str) and spec not in known:
            raise InputError(f"{path}: params: param {name!r}: unknown kind {spec!r} (known: {', '.join(known)})")
    lists = {name: lengths[spec] for name, spec in params.items() if isinstance(spec, str) and spec in lengths}
    statements: list[OrmStatement] = []
    for combination in product(*lists.values()):
        chosen = dict(zip(lists, combination, strict=True))
        sentinels = _Sentinels(params, chosen)
        compiled, given = _compiled(path, build, sentinels, driver)
        sql, order = _text(compiled, given, driver)
        if leaked := sentinels.written(sql):
            raise InputError(f"{path}: p.{leaked} is written into the SQL text: bind it (compare a column with it)")
        binds = [_bind(path, compiled, name, given[name], sentinels) for name in order]
        statement = OrmStatement(lengths=chosen, sql=sql, binds=binds)
        same = next((s for s in statements if (s.sql, s.binds) == (sql, binds)), None)
        if same is None:
            statements.append(statement)
        else:  # the list is bound whole (any_()): one statement serves every length
            statements[statements.index(same)] = same.model_copy(update={"lengths": {}})
    return statements


def _compiled(
    path: Path, build: Callable[..., Any], sentinels: _Sentinels, driver: Driver
) -> tuple[SQLCompiler, Mapping[str, Any]]:
    session = RecordingSession()
    p = Values(sentinels.values)
    try:
        made = build(p, session) if len(inspect.signature(build).parameters) == 2 else build(p)
    except _Captured:
        made = None
    except BaseException as exc:  # noqa: BLE001 - the team's code: any failure (KeyboardInterrupt too) is its error
        raise InputError(f"{path}: {STATEMENT}() failed: {type(exc).__name__}: {first_line(exc)}") from None
    finally:
        session.close()
    parameters: Mapping[str, Any] = {}
    if session.recorded is not None:
        if made is not None and made is not session.recorded[0]:
            raise InputError(f"{path}: {STATEMENT}() both returned a statement and had the session execute one")
        made, parameters = session.recorded
    if not isinstance(made, Select | Insert | Update | Delete):
        shown = "nothing" if made is None else type(made).__name__
        raise InputError(
            f"{path}: {STATEMENT}() gave {shown}: it returns a select, insert, update or delete, or has the "
            "session execute one"
        )
    if loader := _loader_with_statements(made):
        raise InputError(
            f"{path}: {loader}() sends a statement of its own after this one, which would not be measured: the "
            "relationship's lazy load is (session.attached(...).<relationship>, as orm_last_messages)"
        )
    try:
        compiled = made.compile(dialect=dialect_of(driver), compile_kwargs={"render_postcompile": True})
        given = compiled.construct_params(dict(parameters) or None)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - SQLAlchemy refuses a statement in many ways; each is the file's
        raise InputError(f"{path}: SQLAlchemy cannot compile it: {type(exc).__name__}: {first_line(exc)}") from None
    assert isinstance(compiled, SQLCompiler)  # a DML or select statement compiles with the SQL compiler
    return compiled, given


def _loader_with_statements(statement: Any) -> str | None:
    """The loader option of ``statement`` that sends statements of its own once its rows are loaded
    (selectinload, subqueryload, immediateload), or None: the session records the first statement only."""
    for option in getattr(statement, "_with_options", ()):
        for element in getattr(option, "context", ()):
            for key, value in getattr(element, "strategy", None) or ():
                if key == "lazy" and value in _LATER_LOADERS:
                    return _LATER_LOADERS[value]
    return None


def _text(compiled: SQLCompiler, given: Mapping[str, Any], driver: Driver) -> tuple[str, list[str]]:
    """The statement's text as the driver sends it, and the bind names in the order of $1, $2..."""
    if driver == "asyncpg":  # SQLAlchemy's asyncpg dialect numbers the binds itself ($n)
        assert compiled.positiontup is not None  # numeric_dollar is positional
        return compiled.string, list(compiled.positiontup)
    return _psycopg_text(compiled.string, given)


def _psycopg_text(pyformat: str, given: Mapping[str, Any]) -> tuple[str, list[str]]:
    """psycopg's own conversion of ``%(name)s`` placeholders into ``$n`` (each name numbered at its
    first appearance, ``%%`` back to ``%``): what it sends the server. Its module is private, so the
    fidelity test (tests/test_orm.py) compares the result with what psycopg really prepares."""
    from psycopg._queries import PostgresQuery
    from psycopg.adapt import Transformer

    query = PostgresQuery(Transformer())
    query.convert(pyformat, {name: None for name in given})
    order: list[str] = list(query._order or [])
    return query.query.decode(), order


def _bind(path: Path, compiled: SQLCompiler, name: str, value: Any, sentinels: _Sentinels) -> OrmBind:
    """What one ``$n`` takes: a parameter, an element of a list one, a JSON document around them, or a
    constant; as SQLAlchemy's bind processor would hand it to the driver."""
    processor = _processor(compiled, name)
    encoded = value if processor is None else processor(value)
    if _json_encoded(value, encoded):  # SQLAlchemy serializes it: so does each draw, from the template
        template = sentinels.template(value)
        return OrmBind(template=template, as_json=True) if template != value else OrmBind(value=json.dumps(value))
    bound = sentinels.reference(value)
    if bound is not None:
        return bound
    if sentinels.traced(value) or sentinels.traced(encoded):
        raise InputError(
            f"{path}: a bound value is computed from a parameter ({name}): bind p.<name> as it is (compute "
            "in SQL), so that each sample can draw it"
        )
    if encoded is not None and not isinstance(encoded, str | int | float | bool):
        raise InputError(f"{path}: the constant bound as {name} is a {type(encoded).__name__}: write it in SQL")
    return OrmBind(value=encoded)


def _json_encoded(value: Any, encoded: Any) -> bool:
    """Whether the bind processor made JSON of ``value``: asyncpg's dialect serializes it to text,
    psycopg's wraps it for psycopg to serialize (``psycopg.types.json``)."""
    if isinstance(encoded, str):
        try:
            return encoded != value and encoded == json.dumps(value)
        except TypeError:  # not a JSON value (a UUID made text): no JSON bind
            return False
    return type(encoded).__module__ == "psycopg.types.json" and getattr(encoded, "obj", None) is value


def _processor(compiled: SQLCompiler, name: str) -> Callable[[Any], Any] | None:
    """SQLAlchemy's bind processor for ``name`` (an expanded element's is its list's)."""
    bind = compiled.binds.get(name)
    if bind is None:
        return None
    processor: Callable[[Any], Any] | None = bind.type._cached_bind_processor(compiled.dialect)
    return processor


def resolve(bind: OrmBind, values: Mapping[str, Any]) -> Any:
    """The value ``bind`` sends for one draw of the parameters (``values``, by name)."""
    if bind.param is not None:
        value = values[bind.param]
        return value if bind.element is None else value[bind.element]
    if bind.as_json:
        return json.dumps(_filled(bind.template, values))
    return bind.value


def _filled(template: Any, values: Mapping[str, Any]) -> Any:
    if isinstance(template, dict) and _REFERENCE in template:
        value = values[template[_REFERENCE]]
        return value if template.get("element") is None else value[template["element"]]
    if isinstance(template, list):
        return [_filled(item, values) for item in template]
    if isinstance(template, dict):
        return {key: _filled(item, values) for key, item in template.items()}
    return template


def referenced(statement: OrmStatement) -> Iterator[str]:
    """The parameters a statement's binds take."""
    for bind in statement.binds:
        if bind.param is not None:
            yield bind.param
        elif bind.as_json:
            yield from _template_params(bind.template)


def _template_params(template: Any) -> Iterator[str]:
    if isinstance(template, dict) and _REFERENCE in template:
        yield template[_REFERENCE]
    elif isinstance(template, list):
        for item in template:
            yield from _template_params(item)
    elif isinstance(template, dict):
        for item in template.values():
            yield from _template_params(item)


def built(
    path: Path,
    queries: Path,
    lengths: Mapping[str, tuple[int, ...]],
    driver: Driver,
) -> tuple[dict[str, Any], OrmBuilt]:
    """A Python scenario file as a TOML file's keys (without its SQL) and its compiled statements."""
    module = load_module(path, queries)
    data, build = declarations(module, path)
    params = data.get("params", {})
    statements = compile_file(path, build, params, lengths, driver)
    twin = data.pop("twin", None)
    if twin is not None and not isinstance(twin, str):
        raise InputError(f"{path}: TWIN names a scenario: a string")
    return data, OrmBuilt(driver=driver, twin=twin, statements=statements)
