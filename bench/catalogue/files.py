"""Scenarios, index variants and SLA classes: data files in ``scenarios/``, validated on load.

Layout (docs/catalogue.md describes every field):
  scenarios/sla.toml              SLA classes: name -> milliseconds
  scenarios/queries/<name>.toml   one query scenario per file
  scenarios/queries/<name>.py     one built with the app's models and SQLAlchemy (``orm``)
  scenarios/variants/<name>.toml  one index variant per file
  scenarios/mix.toml              the default mix of `taskbench load`: scenario -> weight (optional)
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench.catalogue import orm
from bench.catalogue.options import DEFAULT_DIR, DEFAULT_DRIVER, DEFAULT_POLICY_SCOPE, DRIVERS, POLICY_SCOPES
from bench.catalogue.policies import PolicyDef, parse_policy
from bench.catalogue.sql import IndexDef, Query, SQLRefused, parse_compiled, parse_index, parse_query
from bench.errors import InputError
from bench.results import Driver, OrmBind, OrmBuilt, OrmStatement, PolicyScope

PARAM_KINDS = (
    "user",
    "task",
    "conversation",
    "tag",
    "tags_json",
    "tags_any",
    "word",
    "fragment",
    "priority",
    "category",
    "today",
    "deep_offset",
    "cursor_created_at",
    "cursor_id",
)
# Kinds that draw a list, and the lengths they draw: an in_() over one sends a statement per length.
LIST_LENGTHS: dict[str, tuple[int, ...]] = {"tags_any": (2, 3)}
# File and scenario names (not SQL): lower_snake_case.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# A catalogue file is a few kilobytes; anything far larger is refused before it is read.
MAX_FILE_BYTES = 256 * 1024
# Extensions a variant may create: those that bring index access methods or operator classes.
EXTENSIONS = ("pg_trgm", "btree_gin", "btree_gist", "bloom")

ParamValue = str | int | float | bool
# The setting the samples under a policy variant set to the sampled user's id, when its policies read none.
DEFAULT_CLAIM = "app.user_id"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Statement:
    """One statement a scenario sends, ready to prepare: its SQL ($1, $2...) as PostgreSQL's parser
    read it, what each $n takes, and the lengths of the list parameters it is for ({}: any)."""

    query: Query
    binds: tuple[OrmBind, ...]
    lengths: dict[str, int]

    @property
    def sql(self) -> str:
        return self.query.sql


class Scenario(_Strict):
    name: str
    description: str = ""
    sla_class: str
    # A write scenario (INSERT/UPDATE/DELETE) is measured in transactions that are rolled back.
    kind: Literal["read", "write"] = "read"
    # A TOML file's SQL (:name binds); an ORM scenario's first statement as its driver sends it
    sql: str = ""
    # A string names a drawn kind (see PARAM_KINDS); any other value is passed as a constant.
    params: dict[str, ParamValue] = Field(default_factory=dict)
    sla_ms: float = 0.0  # filled from the SLA class when the catalogue is loaded
    orm: OrmBuilt | None = None  # a Python scenario file's compiled statements (bench.catalogue.orm)
    # The scenario as an app relying on row-level security writes it: without a user filter of its
    # own, measured under policy variants only, its rows checked against this explicit scenario's.
    explicit: str | None = None
    explicit_sql: str = ""  # filled from the explicit scenario when the catalogue is loaded
    explicit_params: dict[str, ParamValue] = Field(default_factory=dict)  # ... and its [params]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be lower_snake_case")
        return v

    @cached_property
    def statements(self) -> tuple[Statement, ...]:
        """What the scenario sends, as PostgreSQL's parser reads it: a TOML file's one statement (its
        :name binds as $1, $2...), an ORM scenario's statements (one per list length an in_() sends)."""
        write = self.kind == "write"
        if self.orm is None:
            query = parse_query(self.sql, write=write)
            return (Statement(query, tuple(OrmBind(param=name) for name in query.params), {}),)
        return tuple(
            Statement(parse_compiled(s.sql, len(s.binds), write=write), tuple(s.binds), dict(s.lengths))
            for s in self.orm.statements
        )

    @property
    def query(self) -> Query:
        """The (first) statement as PostgreSQL's parser reads it: its SQL, tables, functions called."""
        return self.statements[0].query

    @property
    def functions(self) -> frozenset[str]:
        """Every function any of its statements calls."""
        return frozenset().union(*(s.query.functions for s in self.statements))

    @property
    def draws_as(self) -> str:
        """The name its parameters are drawn under: its own, or its twin's when it draws the same sets."""
        return (self.orm.draws_as if self.orm else None) or self.name

    @property
    def relies_on_rls(self) -> bool:
        return self.explicit is not None

    def drawn(self) -> list[tuple[str, str]]:
        """Its drawn parameters (name, kind) in the order they are drawn: a TOML file's in the order its
        SQL first uses them, an ORM scenario's in the order PARAMS declares them."""
        order = list(self.query.params) if self.orm is None else list(self.params)
        return [(name, kind) for name in order if isinstance(kind := self.params[name], str)]

    @model_validator(mode="after")
    def _binds_match_params(self) -> Scenario:
        try:
            used = {name for s in self.statements for name in _referenced(s.binds)}
        except SQLRefused as exc:
            raise ValueError(str(exc)) from None
        missing = used - set(self.params)
        if missing:
            raise ValueError(f"sql uses :{', :'.join(sorted(missing))} but [params] does not define it")
        unused = set(self.params) - used - {k for k, v in self.params.items() if self.orm and isinstance(v, bool)}
        if unused:
            raise ValueError(f"[params] defines {', '.join(sorted(unused))} but the sql never uses it")
        for key, value in self.params.items():
            if isinstance(value, str) and value not in PARAM_KINDS:
                raise ValueError(f"param {key!r}: unknown kind {value!r} (known: {', '.join(PARAM_KINDS)})")
        return self


def _referenced(binds: tuple[OrmBind, ...]) -> list[str]:
    return list(orm.referenced(OrmStatement(sql="", binds=list(binds))))


class Variant(_Strict):
    name: str
    description: str = ""
    extensions: list[str] = Field(default_factory=list)
    statements: list[str] = Field(default_factory=list)
    # row-level security: ALTER TABLE ... ENABLE ROW LEVEL SECURITY and CREATE POLICY (``policies``)
    policies: list[str] = Field(default_factory=list)

    @field_validator("extensions")
    @classmethod
    def _known_extensions(cls, extensions: list[str]) -> list[str]:
        for ext in extensions:
            if ext not in EXTENSIONS:
                raise ValueError(f"extension {ext!r} is not one a variant may create ({', '.join(EXTENSIONS)})")
        return extensions

    @cached_property
    def indexes(self) -> list[IndexDef]:
        """Each statement as PostgreSQL's parser reads it; only their canonical DDL is ever executed."""
        return [parse_index(stmt) for stmt in self.statements]

    @model_validator(mode="after")
    def _only_indexes(self) -> Variant:
        try:
            names = [index.name for index in self.indexes]
        except SQLRefused as exc:
            raise ValueError(str(exc)) from None
        if len(set(names)) != len(names):
            raise ValueError(f"two statements create the same index name ({', '.join(sorted(names))})")
        try:
            policies = self.policy_defs
        except SQLRefused as exc:
            raise ValueError(f"policies: {exc}") from None
        named = [(p.table, p.name) for p in policies if p.kind == "policy"]
        if len(set(named)) != len(named):
            raise ValueError("policies: two policies of one table have the same name")
        claims = {claim for p in policies for claim in p.claims}
        if len(claims) > 1:
            raise ValueError(
                f"policies: they read {len(claims)} claims ({', '.join(sorted(claims))}); one is set per sample"
            )
        return self

    @cached_property
    def policy_defs(self) -> list[PolicyDef]:
        """Each policy statement as PostgreSQL's parser reads it; only their canonical text is executed."""
        return [parse_policy(stmt) for stmt in self.policies]

    @property
    def claim(self) -> str | None:
        """The setting each sample sets to its user's id (``set_config(..., true)``); None: no policies."""
        if not self.policies:
            return None
        return next((c for p in self.policy_defs for c in sorted(p.claims)), DEFAULT_CLAIM)


class Catalogue(BaseModel):
    sla_classes: dict[str, float]
    scenarios: list[Scenario]
    variants: list[Variant]
    mix: dict[str, int] = Field(default_factory=dict)  # load mix: scenario -> relative weight
    driver: Driver = DEFAULT_DRIVER  # whose dialect compiled its Python scenario files
    policy_scope: PolicyScope = DEFAULT_POLICY_SCOPE  # what a variant with policies measures (``under``)

    def select(self, scenarios: list[str] | None, variants: list[str] | None) -> Catalogue:
        chosen = _pick(self.scenarios, scenarios, "scenario")
        names = {s.name for s in chosen}
        return self.model_copy(
            update={
                "scenarios": chosen,
                "variants": _pick(self.variants, variants, "variant"),
                "mix": {k: w for k, w in self.mix.items() if k in names},
            }
        )

    def reads(self) -> Catalogue:
        """The read scenarios only: for what executes scenarios outside a rolled-back sample (load,
        pgbench, pytest-benchmark), where a write would change the rows every later query sees. Not
        those relying on row-level security: those need a policy variant and a claim per sample."""
        return self.model_copy(update={"scenarios": [s for s in self.explicit_only().scenarios if s.kind == "read"]})

    def explicit_only(self) -> Catalogue:
        """Without the scenarios relying on row-level security: for searches over index sets alone."""
        return self.model_copy(update={"scenarios": [s for s in self.scenarios if not s.relies_on_rls]})

    def refuse_policies(self, command: str) -> None:
        """For what sets no user's claim per request (``command``: load, validate): a policy variant
        would show its statements no row, or fail them on a claim that is not set."""
        policy = next((v.name for v in self.variants if v.claim is not None), None)
        if policy is not None:
            raise InputError(
                f"variant {policy!r} has row-level security policies, which {command} cannot measure: it sets "
                "no user's claim per request (run, bench and check do)"
            )

    def measures(self, variant: Variant, scenario: Scenario) -> bool:
        """Whether ``scenario`` is measured under ``variant``: one relying on row-level security only
        under a variant with policies (elsewhere nothing would keep one user's rows from another);
        under one, with ``policy_scope`` "relying", only those (``options.POLICY_SCOPES``)."""
        if variant.claim is None:
            return not scenario.relies_on_rls
        return scenario.relies_on_rls or self.policy_scope == "all"

    def under(self, variant: Variant) -> list[Scenario]:
        """The scenarios measured under ``variant`` (``measures``)."""
        return [s for s in self.scenarios if self.measures(variant, s)]

    def hand_written(self) -> Catalogue:
        """The scenarios whose SQL a TOML file wrote: what pgbench runs (its scripts bind :name
        variables; an ORM scenario's statements are the driver's, and an in_() sends several)."""
        return self.model_copy(update={"scenarios": [s for s in self.scenarios if s.orm is None]})

    def with_mix(self, weights: dict[str, int]) -> Catalogue:
        """Only the scenarios of ``weights`` (the file's mix when empty), weighted so."""
        weights = weights or self.mix
        if not weights:
            raise InputError("no load mix: give --mix SCENARIO=WEIGHT or write scenarios/mix.toml")
        _check_mix(weights, {s.name for s in self.reads().hand_written().scenarios}, "--mix")
        return self.select(list(weights), [v.name for v in self.variants]).model_copy(update={"mix": dict(weights)})


def _pick(items: list[Any], names: list[str] | None, what: str) -> list[Any]:
    if not names:
        return items
    by_name = {i.name: i for i in items}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise InputError(f"unknown {what} {unknown[0]!r} (known: {', '.join(sorted(by_name))})")
    return [by_name[n] for n in names]


def _check_mix(weights: dict[str, Any], known: set[str], where: str) -> None:
    for name, weight in weights.items():
        if name not in known:
            raise InputError(f"{where}: unknown scenario {name!r} (known: {', '.join(sorted(known))})")
        if not isinstance(weight, int) or isinstance(weight, bool) or weight <= 0:
            raise InputError(f"{where}: the weight of {name!r} must be a positive whole number, not {weight!r}")


def _check_size(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None
    if size > MAX_FILE_BYTES:
        raise InputError(f"{path}: {size:,} bytes is too large for a catalogue file (at most {MAX_FILE_BYTES:,})")


def _read_toml(path: Path) -> dict[str, Any]:
    _check_size(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read: {exc}") from None


_Item = TypeVar("_Item", "Scenario", "Variant")


def _parse(model: type[_Item], path: Path, data: dict[str, Any]) -> _Item:
    data.setdefault("name", path.stem)
    try:
        item = model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = "".join(f"{p}: " for p in err["loc"][:1])  # a field, or nothing for a whole-file check
        message = err["msg"].removeprefix("Value error, ")
        raise InputError(f"{path}: {where}{message}") from None
    if item.name != path.stem:
        raise InputError(f"{path}: name {item.name!r} must match the file name {path.stem!r}")
    return item


def _python_scenario(path: Path, queries: Path, driver: Driver) -> Scenario:
    """A Python scenario file, imported (code the team writes: docs/catalogue.md) and compiled for
    ``driver``; its statements are then read like a TOML file's SQL."""
    _check_size(path)
    data, built = orm.built(path, queries, LIST_LENGTHS, driver)
    return _parse(Scenario, path, {**data, "sql": built.statements[0].sql if built.statements else "", "orm": built})


def _with_explicit(scenario: Scenario, scenarios: list[Scenario], path: Path) -> Scenario:
    """A scenario relying on row-level security with its explicit scenario's SQL and parameters: the
    same kind and SLA class, the same drawn parameters but the user ones (its claim stands for
    them), and the same value of every constant both declare (a constant only the explicit scenario
    has is bound to its own value when their rows are compared). Both are TOML files: their rows
    are compared through the explicit scenario's :name binds."""
    if scenario.explicit is None:
        return scenario
    explicit = next((s for s in scenarios if s.name == scenario.explicit and not s.relies_on_rls), None)
    if explicit is None or scenario.orm is not None or explicit.orm is not None:
        raise InputError(f"{path}: explicit: {scenario.explicit!r} is no TOML scenario with a user filter of its own")
    if (explicit.kind, explicit.sla_class) != (scenario.kind, scenario.sla_class):
        raise InputError(f"{path}: explicit: {explicit.name!r} is of another kind or SLA class")
    mine = {k: v for k, v in scenario.params.items() if v != "user"}
    theirs = {k: v for k, v in explicit.params.items() if v != "user"}
    drawn = {k for k, v in {**mine, **theirs}.items() if isinstance(v, str)}
    if any(mine.get(k) != theirs.get(k) for k in drawn | (mine.keys() & theirs.keys())):
        raise InputError(
            f"{path}: [params] must draw what {explicit.name!r} draws but its users (the claim's), "
            "and give the constants both have the same values"
        )
    return scenario.model_copy(update={"explicit_sql": explicit.sql, "explicit_params": dict(explicit.params)})


def _with_twins(scenarios: list[Scenario], paths: dict[str, Path]) -> list[Scenario]:
    """Each ORM scenario's twin checked, and whether it draws the twin's parameter sets: when it
    declares the twin's drawn parameters in the order the twin draws them, it is drawn as the twin,
    so that the two send the same values and their rows and plans pair."""
    by_name = {s.name: s for s in scenarios}
    twinned = []
    for sc in scenarios:
        twin = by_name.get(sc.orm.twin) if sc.orm and sc.orm.twin else None
        if sc.orm and sc.orm.twin and twin is None:
            raise InputError(f"{paths[sc.name]}: TWIN {sc.orm.twin!r} is no scenario of the catalogue")
        if sc.orm and twin is not None and twin.drawn() == sc.drawn():
            sc = sc.model_copy(update={"orm": sc.orm.model_copy(update={"draws_as": twin.draws_as})})
        twinned.append(sc)
    return twinned


_Name = TypeVar("_Name", Driver, PolicyScope)


def _known(name: str, known: tuple[_Name, ...], option: str, what: str) -> _Name:
    """``name`` as one of ``known``, or one line naming ``option`` and what it takes."""
    found = next((k for k in known if k == name), None)
    if found is None:
        raise InputError(f"{option}: unknown {what} {name!r} (known: {', '.join(known)})")
    return found


def driver(name: str) -> Driver:
    """A driver's name checked: one whose SQLAlchemy dialect taskbench compiles with."""
    return _known(name, DRIVERS, "--driver", "driver")


def policy_scope(name: str) -> PolicyScope:
    """A policy scope's name checked (``options.POLICY_SCOPES``)."""
    return _known(name, POLICY_SCOPES, "--policy-scope", "scope")


def load_catalogue(
    directory: Path = DEFAULT_DIR,
    *,
    history: bool = False,
    driver: Driver = DEFAULT_DRIVER,
    policy_scope: PolicyScope = DEFAULT_POLICY_SCOPE,
) -> Catalogue:
    """The catalogue in ``directory``, every file checked. ``history``: the scenarios of a commit or
    directory standing for "before" in a check, measured as they were written, so a rule added
    since (a LIMIT's order leaving no ties) does not refuse them. ``driver``: the app's driver,
    whose dialect compiles the Python scenario files."""
    if not directory.is_dir():
        raise InputError(f"scenario directory {directory} does not exist")
    sla_raw = _read_toml(directory / "sla.toml") if (directory / "sla.toml").exists() else {}
    try:
        sla = {str(k): float(v) for k, v in sla_raw.get("classes", {}).items()}
    except (TypeError, ValueError):
        raise InputError(f"{directory / 'sla.toml'}: [classes] values must be milliseconds") from None
    if not sla:
        raise InputError(f"{directory / 'sla.toml'}: no SLA classes defined under [classes]")
    scenarios = []
    queries = directory / "queries"
    found = sorted([*queries.glob("*.toml"), *queries.glob("*.py")])
    paths = {path.stem: path for path in found}
    for path in found:  # before any file is imported
        if paths[path.stem] != path:
            raise InputError(f"{paths[path.stem]}: {path.name} defines scenario {path.stem!r} too")
    for path in found:
        if path.suffix == ".toml":
            sc = _parse(Scenario, path, _read_toml(path))
        else:
            sc = _python_scenario(path, queries, driver)
        if sc.sla_class not in sla:
            raise InputError(f"{path}: unknown sla_class {sc.sla_class!r} (known: {', '.join(sla)})")
        ties = next((s.query.ties for s in sc.statements if s.query.ties), None)
        if ties and not history:  # tied rows would fire the results gate for no change at all
            raise InputError(f"{path}: sql: {ties}")
        scenarios.append(sc.model_copy(update={"sla_ms": sla[sc.sla_class]}))
    scenarios = _with_twins(scenarios, paths)
    scenarios = [_with_explicit(s, scenarios, paths[s.name]) for s in scenarios]
    variants = [_parse(Variant, p, _read_toml(p)) for p in sorted((directory / "variants").glob("*.toml"))]
    if not scenarios:
        raise InputError(f"no scenarios found in {directory / 'queries'}")
    if not variants:
        raise InputError(f"no variants found in {directory / 'variants'}")
    mix_path = directory / "mix.toml"
    mix = _read_toml(mix_path).get("weights", {}) if mix_path.exists() else {}
    if not isinstance(mix, dict):
        raise InputError(f"{mix_path}: [weights] must map scenario names to weights")
    _check_mix(mix, {s.name for s in scenarios if s.kind == "read" and s.orm is None}, str(mix_path))
    return Catalogue(
        sla_classes=sla, scenarios=scenarios, variants=variants, mix=mix, driver=driver, policy_scope=policy_scope
    )
