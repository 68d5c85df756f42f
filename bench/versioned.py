"""Files taskbench writes for readers it has not met yet (``results.json``, ``advice.json``), read
the same way: each format has a version, a dated history beside it, and a migration step from each
older version it reads (``_update_to_N``, version N - 1 to N). ``Format.load`` brings a file up to
date step by step and refuses any other version, and any file it cannot read, in one line.

Bump a format's version on any change an older reader would misread.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from bench.errors import InputError

Raw = dict[str, Any]
Model = TypeVar("Model", bound=BaseModel)


@dataclass(frozen=True)
class Format(Generic[Model]):
    name: str  # what the messages call a file of it: "results"
    model: type[Model]
    version: int  # the one written
    migrations: dict[int, Callable[[Raw], Raw]]  # version -> the step that brings a file of it to the next
    unversioned: int | None = None  # the version of a file written before there were versions (None: refused)

    def readable_versions(self) -> list[int]:
        return [*sorted(self.migrations), self.version]

    def migrate(self, raw: Raw) -> Raw:
        """A document of any readable version, brought up to ``version`` one step at a time."""
        while raw["schema_version"] != self.version:
            raw = {**self.migrations[raw["schema_version"]](raw), "schema_version": raw["schema_version"] + 1}
        return raw

    def load(self, file: Path) -> Model:
        try:
            raw = json.loads(file.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputError(f"{file}: no such {self.name} file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"{file}: cannot read: {exc}") from None
        except json.JSONDecodeError as exc:
            raise InputError(
                f"{file}: not valid JSON (corrupted or truncated?): {exc.msg} at line {exc.lineno}"
            ) from None
        if isinstance(raw, dict) and "schema_version" not in raw and self.unversioned is not None:
            raw = {**raw, "schema_version": self.unversioned}
        if not isinstance(raw, dict) or "schema_version" not in raw:
            raise InputError(f"{file}: not a taskbench {self.name} file (no schema_version)")
        version = raw["schema_version"]
        # a whole number this taskbench knows; "8", 8.0, true, a list or a dict are none of them
        if type(version) is not int or version not in self.readable_versions():
            raise InputError(
                f"{file}: {self.name} schema_version {json.dumps(version)} is not supported "
                f"(this taskbench reads versions {', '.join(map(str, self.readable_versions()))}, written as a number)"
            )
        try:
            current = self.migrate(raw)
        except (KeyError, TypeError, AttributeError, ValueError) as exc:  # an older shape the steps cannot read
            raise InputError(
                f"{file}: invalid {self.name} file of version {version}: {type(exc).__name__}: {exc}"
            ) from None
        try:
            return self.model.model_validate(current)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise InputError(f"{file}: invalid {self.name} file: {where}: {err['msg']}") from None
