"""Scenarios, index variants and SLA classes: data files in ``scenarios/``, validated on load.

Layout (docs/catalogue.md describes every field):
  scenarios/sla.toml              SLA classes: name -> milliseconds
  scenarios/queries/<name>.toml   one query scenario per file
  scenarios/variants/<name>.toml  one index variant per file
  scenarios/mix.toml              the default mix of `taskbench load`: scenario -> weight (optional)
"""

from __future__ import annotations

import re
import tomllib
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bench.catalogue.sql import IndexDef, Query, SQLRefused, parse_index, parse_query
from bench.errors import InputError

DEFAULT_DIR = Path("scenarios")
# The variant of the models' own indexes only (scenarios/variants/baseline.toml): what the others are
# held against (write cost, rows returned, plan changes) and what advise starts from.
BASELINE_VARIANT = "baseline"
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
# File and scenario names (not SQL): lower_snake_case.
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
# A catalogue file is a few kilobytes; anything far larger is refused before it is read.
MAX_FILE_BYTES = 256 * 1024
# Extensions a variant may create: those that bring index access methods or operator classes.
EXTENSIONS = ("pg_trgm", "btree_gin", "btree_gist", "bloom")

ParamValue = str | int | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scenario(_Strict):
    name: str
    description: str = ""
    sla_class: str
    # A write scenario (INSERT/UPDATE/DELETE) is measured in transactions that are rolled back.
    kind: Literal["read", "write"] = "read"
    sql: str
    # A string names a drawn kind (see PARAM_KINDS); any other value is passed as a constant.
    params: dict[str, ParamValue] = Field(default_factory=dict)
    sla_ms: float = 0.0  # filled from the SLA class when the catalogue is loaded

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v):
            raise ValueError("must be lower_snake_case")
        return v

    @cached_property
    def query(self) -> Query:
        """The SQL as PostgreSQL's parser reads it: binds as $1, $2..., tables, functions called."""
        return parse_query(self.sql, write=self.kind == "write")

    @model_validator(mode="after")
    def _binds_match_params(self) -> Scenario:
        try:
            used = set(self.query.params)
        except SQLRefused as exc:
            raise ValueError(str(exc)) from None
        missing = used - set(self.params)
        if missing:
            raise ValueError(f"sql uses :{', :'.join(sorted(missing))} but [params] does not define it")
        unused = set(self.params) - used
        if unused:
            raise ValueError(f"[params] defines {', '.join(sorted(unused))} but the sql never uses it")
        for key, value in self.params.items():
            if isinstance(value, str) and value not in PARAM_KINDS:
                raise ValueError(f"param {key!r}: unknown kind {value!r} (known: {', '.join(PARAM_KINDS)})")
        return self

    def positional(self) -> tuple[str, list[str]]:
        """The SQL with :name binds turned into $1, $2... and the parameter order."""
        return self.query.sql, list(self.query.params)


class Variant(_Strict):
    name: str
    description: str = ""
    extensions: list[str] = Field(default_factory=list)
    statements: list[str] = Field(default_factory=list)

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
        return self


class Catalogue(BaseModel):
    sla_classes: dict[str, float]
    scenarios: list[Scenario]
    variants: list[Variant]
    mix: dict[str, int] = Field(default_factory=dict)  # load mix: scenario -> relative weight

    def select(self, scenarios: list[str] | None, variants: list[str] | None) -> Catalogue:
        chosen = _pick(self.scenarios, scenarios, "scenario")
        names = {s.name for s in chosen}
        return Catalogue(
            sla_classes=self.sla_classes,
            scenarios=chosen,
            variants=_pick(self.variants, variants, "variant"),
            mix={k: w for k, w in self.mix.items() if k in names},
        )

    def reads(self) -> Catalogue:
        """The read scenarios only: for what executes scenarios outside a rolled-back sample (load,
        pgbench, pytest-benchmark), where a write would change the rows every later query sees."""
        return self.model_copy(update={"scenarios": [s for s in self.scenarios if s.kind == "read"]})

    def with_mix(self, weights: dict[str, int]) -> Catalogue:
        """Only the scenarios of ``weights`` (the file's mix when empty), weighted so."""
        weights = weights or self.mix
        if not weights:
            raise InputError("no load mix: give --mix SCENARIO=WEIGHT or write scenarios/mix.toml")
        _check_mix(weights, {s.name for s in self.reads().scenarios}, "--mix")
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


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise InputError(
                f"{path}: {path.stat().st_size:,} bytes is too large for a catalogue file (at most {MAX_FILE_BYTES:,})"
            )
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


def load_catalogue(directory: Path = DEFAULT_DIR, *, history: bool = False) -> Catalogue:
    """The catalogue in ``directory``, every file checked. ``history``: the scenarios of a commit or
    directory standing for "before" in a check, measured as they were written, so a rule added
    since (a LIMIT's order leaving no ties) does not refuse them."""
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
    for path in sorted((directory / "queries").glob("*.toml")):
        sc = _parse(Scenario, path, _read_toml(path))
        if sc.sla_class not in sla:
            raise InputError(f"{path}: unknown sla_class {sc.sla_class!r} (known: {', '.join(sla)})")
        if sc.query.ties and not history:  # tied rows would fire the results gate for no change at all
            raise InputError(f"{path}: sql: {sc.query.ties}")
        scenarios.append(sc.model_copy(update={"sla_ms": sla[sc.sla_class]}))
    variants = [_parse(Variant, p, _read_toml(p)) for p in sorted((directory / "variants").glob("*.toml"))]
    if not scenarios:
        raise InputError(f"no scenarios found in {directory / 'queries'}")
    if not variants:
        raise InputError(f"no variants found in {directory / 'variants'}")
    mix_path = directory / "mix.toml"
    mix = _read_toml(mix_path).get("weights", {}) if mix_path.exists() else {}
    if not isinstance(mix, dict):
        raise InputError(f"{mix_path}: [weights] must map scenario names to weights")
    _check_mix(mix, {s.name for s in scenarios if s.kind == "read"}, str(mix_path))
    return Catalogue(sla_classes=sla, scenarios=scenarios, variants=variants, mix=mix)
