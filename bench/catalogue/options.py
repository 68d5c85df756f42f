"""The catalogue as the command line names it: where its files are, the variant every other is held
against, and the drivers whose dialect compiles the Python (ORM) scenario files.

Standard library only: every ``taskbench`` command that reads the catalogue takes its option
defaults from here as it starts, before it imports the parser and the models (``files``, ``orm``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.results import Driver, PolicyScope

DEFAULT_DIR = Path("scenarios")
# The variant of the models' own indexes only (scenarios/variants/baseline.toml): what the others are
# held against (write cost, rows returned, plan changes) and what advise starts from.
BASELINE_VARIANT = "baseline"
# The drivers whose SQLAlchemy dialect compiles the Python scenario files (``orm``).
DRIVERS: tuple[Driver, ...] = ("asyncpg", "psycopg")
DEFAULT_DRIVER: Driver = "asyncpg"
# Which scenarios a variant with row-level security policies measures (``Catalogue.under``): those
# relying on the policies (each against its explicit twin, the cost of isolation by RLS, and each
# checked for isolation), or every scenario (also what the policies add to the queries that keep
# their own user filter, and what makes a policy variant a candidate for the recommendation).
# "relying" by default: every explicit scenario under six policy forms was 174 of the default
# matrix's 506 cells, and most of its time.
POLICY_SCOPES: tuple[PolicyScope, ...] = ("relying", "all")
DEFAULT_POLICY_SCOPE: PolicyScope = "relying"
