"""Validate generated Arrow batches column by column against the canonical models.

Rules come from the ``*Fields`` models themselves — each field's type, nullability, pydantic
constraints (``min_length``, ``max_length``...) and the model's own ``field_validator``s — so a
change to a model changes what the seeder accepts. Per-row ``Model.model_validate`` costs more
than generating the row (~15 µs for a task); checking whole columns keeps validation at a
fraction of a microsecond per row while still checking every value:

- columns whose Arrow type carries the value's type (UUID, timestamps, dates, booleans) are
  checked for that type and for nulls where the field is not optional;
- text columns (including JSON text) have every *distinct* value validated by a pydantic
  TypeAdapter built from the field, followed by the field's validators.

Any violation is a generator bug: it raises ``AssertionError`` naming table, column and value.
"""

from __future__ import annotations

import json
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from functools import cache
from typing import Annotated, Any

import annotated_types
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import TypeAdapter, ValidationError
from sqlmodel import SQLModel

from bench.models import ConversationFields, MessageFields, TaskFields, UserFields

MODELS: dict[str, type[SQLModel]] = {
    "users": UserFields,
    "tasks": TaskFields,
    "conversations": ConversationFields,
    "messages": MessageFields,
}
# How each Python field type travels in a batch (ids are not in the *Fields models: UUID below).
_ARROW_CHECKS: dict[type, Callable[[pa.DataType], bool]] = {
    uuid.UUID: lambda t: t == pa.binary(16),
    datetime: pa.types.is_timestamp,
    date: pa.types.is_date32,
    time: pa.types.is_time64,
    bool: pa.types.is_boolean,
}


@dataclass(frozen=True)
class ColumnRule:
    name: str
    python_type: Any  # the field's annotation without Optional
    nullable: bool
    adapter: TypeAdapter[Any]  # type + pydantic constraints, for text values
    validators: tuple[Callable[[Any], Any], ...]  # the model's field validators, in order
    json: bool  # a list/dict field carried as JSON text


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return rest[0], True
    return annotation, False


@cache
def rules(table: str) -> dict[str, ColumnRule]:
    model = MODELS[table]
    decorators = model.__pydantic_decorators__.field_validators.values()
    out: dict[str, ColumnRule] = {}
    for name, field in model.model_fields.items():
        py_type, optional = _strip_optional(field.annotation)
        constraints = [m for m in field.metadata if isinstance(m, annotated_types.BaseMetadata)]
        # Types built at run time from each field, which a type checker cannot follow.
        element = Annotated[py_type, *constraints] if constraints else py_type
        adapter = TypeAdapter(list[element])  # type: ignore[valid-type]
        validators = tuple(getattr(model, d.cls_var_name) for d in decorators if name in d.info.fields)
        out[name] = ColumnRule(
            name, py_type, optional, adapter, validators, json=typing.get_origin(py_type) in (list, dict)
        )
    return out


def _fail(table: str, column: str, problem: str) -> AssertionError:
    return AssertionError(f"the seeder generated an invalid {table}.{column}: {problem}")


def _check_text(table: str, rule: ColumnRule, column: pa.Array) -> None:
    distinct = pc.unique(column.drop_null()).to_pylist()
    values = [json.loads(v) for v in distinct] if rule.json else distinct
    try:
        checked = rule.adapter.validate_python(values)
        for validator in rule.validators:
            for value in checked:
                validator(value)
    except (ValidationError, ValueError) as exc:
        raise _fail(table, rule.name, " ".join(str(exc).split())[:300]) from None


def validate_batch(table: str, batch: pa.RecordBatch, extra_uuid_columns: tuple[str, ...] = ("id",)) -> None:
    """Check every value of ``batch`` against the table's model; raise AssertionError if any fails."""
    table_rules = rules(table)
    for name in batch.schema.names:
        column = batch.column(name)
        if name in extra_uuid_columns and name not in table_rules:
            if column.type != pa.binary(16) or column.null_count:
                raise _fail(table, name, "primary key must be a non-null 16-byte UUID")
            continue
        rule = table_rules.get(name)
        if rule is None:
            raise _fail(table, name, "no such field in the model")
        if column.null_count and not rule.nullable:
            raise _fail(table, name, f"{column.null_count} null value(s) in a required field")
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            _check_text(table, rule, column)
            continue
        check = _ARROW_CHECKS.get(rule.python_type)
        if check is None or not check(column.type):
            raise _fail(table, name, f"Arrow type {column.type} does not carry {rule.python_type}")
