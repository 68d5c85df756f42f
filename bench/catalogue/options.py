"""The catalogue as the command line names it: where its files are, the variant every other is held
against, and the drivers whose dialect compiles the Python (ORM) scenario files.

Standard library only: every ``taskbench`` command that reads the catalogue takes its option
defaults from here as it starts, before it imports the parser and the models (``files``, ``orm``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.results import Driver

DEFAULT_DIR = Path("scenarios")
# The variant of the models' own indexes only (scenarios/variants/baseline.toml): what the others are
# held against (write cost, rows returned, plan changes) and what advise starts from.
BASELINE_VARIANT = "baseline"
# The drivers whose SQLAlchemy dialect compiles the Python scenario files (``orm``).
DRIVERS: tuple[Driver, ...] = ("asyncpg", "psycopg")
DEFAULT_DRIVER: Driver = "asyncpg"
