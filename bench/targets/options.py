"""Where PostgreSQL comes from, as the command line says it: ``TargetSpec`` (the kind of target and
its database) and ``NeonSettings`` (a Neon project's, checked against what Neon accepts).

Standard library only: every ``taskbench`` command that opens a database reads its option defaults
from here as it starts, before it imports the drivers and clients (``provision``, ``neon``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.errors import InputError
from bench.targets.majors import DEFAULT_PG_MAJOR, default_data_dir

KINDS = ("auto", "embedded", "url", "neon", "docker")
DEFAULT_DB_NAME = "taskbench"


@dataclass(frozen=True)
class TargetSpec:
    kind: str = "auto"  # auto: the URL when one is given, else embedded
    database_url: str | None = None
    db_name: str = DEFAULT_DB_NAME
    data_dir: Path | None = None  # the embedded server's; None: the major's own (``embedded_dir``)
    force: bool = False  # use a database holding tables taskbench did not create
    neon: NeonSettings | None = None
    pg_major: int = DEFAULT_PG_MAJOR  # the embedded server's, or the Docker image's

    @property
    def embedded_dir(self) -> Path:
        """The embedded server's data directory: the one given, else the major's own."""
        return self.data_dir or default_data_dir(self.pg_major)

    @property
    def resolved_kind(self) -> str:
        if self.kind not in KINDS:
            raise InputError(f"--target must be one of {', '.join(KINDS)}, not {self.kind!r}")
        if self.kind == "auto":
            return "url" if self.database_url else "embedded"
        if self.kind == "url" and not self.database_url:
            raise InputError("--target url needs --database-url (or DATABASE_URL)")
        if self.kind == "neon" and self.neon is None:
            raise InputError("--target neon needs NEON_API_KEY and NEON_PROJECT_ID")
        return self.kind


API_URL = "https://console.neon.tech/api/v2"
# Seeded parents `neon parents --remove-old` keeps: with the default branch, a check's branch and
# three shards' that stays within the 10 branches the Free and Launch plans include.
KEEP_PARENTS = 3

# What Neon accepts, checked before any request so a bad setting is one line, not an HTTP 400 midway.
# Fixed compute sizes (neon.com/docs/manage/computes, "Compute size and autoscaling configuration"):
# 0.25 and 0.5 CU, whole CUs up to 16, then even ones up to 56. The plan caps them lower (Usage
# limits, "Compute limits": fixed compute max 2 CU on Free, 16 on Launch, 56 on Scale), which the API
# does not tell a client, hence the max_compute_cu setting.
SHARED_CU = (0.25, 0.5)
WHOLE_CU_UP_TO = 16
LARGEST_CU = 56
# Scale to zero: 0 is Neon's default (5 minutes), -1 never suspends; else from 1 minute (the
# shortest any plan allows) to the API's maximum of one week.
SUSPEND_SECONDS = (60, 604_800)
MAX_BRANCH_NAME = 256  # characters (create branch: branch.name)
# Branch expiry (neon.com/docs/guides/branch-expiration): expires_at, RFC 3339, at most 30 days ahead.
MAX_EXPIRY_HOURS = 30 * 24


def is_compute_size(cu: float) -> bool:
    """A size Neon offers a fixed compute (before the plan's cap)."""
    whole = cu == int(cu) and (1 <= cu <= WHOLE_CU_UP_TO or (WHOLE_CU_UP_TO < cu <= LARGEST_CU and cu % 2 == 0))
    return cu in SHARED_CU or whole


@dataclass(frozen=True)
class NeonSettings:
    api_key: str = field(repr=False)  # never printed
    project_id: str
    api_url: str = API_URL
    # The branch holding the seeded dataset; None: the seeded parent of the database, dataset and
    # models' schema (seeded_parent_name), which a command that only measures finds by the database.
    parent: str | None = None
    branch: str | None = None  # the run's branch (a sharded run's get -1, -2, ...); None: taskbench-run-<random>
    compute_cu: float = 1.0  # fixed size (min = max): autoscaling mid-run would move the timings
    # The plan's largest fixed compute: Free 2 CU, Launch 16, Scale 56 (see above). 8 refuses a
    # typo such as 80 while allowing what a benchmark of this size needs.
    max_compute_cu: float = 8.0
    suspend_timeout: int = 0  # seconds; 0 = Neon's default, -1 = never suspend
    # A run branch deletes itself this long after creation even if taskbench is killed (0: never).
    expiry_hours: float = 6.0
    # A sharded run's allowance, checked before anything is created: branches per project included
    # in the Free and Launch plans (10; Scale: 25), and Neon's default limit of 20 concurrently
    # active computes (the default branch's is exempt).
    max_branches: int = 10
    max_active_computes: int = 20
    pooled: bool = False
    keep_branch: bool = False
    max_retries: int = 6
    max_wait: float = 60.0  # longest single back-off, seconds
    operation_timeout: float = 600.0

    def __post_init__(self) -> None:
        """Refuse what Neon would refuse, before any request, naming the option."""
        if not is_compute_size(self.max_compute_cu):
            raise InputError(
                f"--neon-max-compute {self.max_compute_cu:g} is not a Neon compute size (0.25, 0.5, "
                f"whole CUs up to {WHOLE_CU_UP_TO}, even ones up to {LARGEST_CU})"
            )
        if not is_compute_size(self.compute_cu) or self.compute_cu > self.max_compute_cu:
            raise InputError(
                f"--neon-compute {self.compute_cu:g}: Neon computes are 0.25, 0.5 or whole CUs (even "
                f"above {WHOLE_CU_UP_TO}), here up to {self.max_compute_cu:g} (--neon-max-compute: "
                "the plan's maximum, 2 on Free, 16 on Launch, 56 on Scale)"
            )
        low, high = SUSPEND_SECONDS
        if self.suspend_timeout not in (0, -1) and not low <= self.suspend_timeout <= high:
            raise InputError(
                f"--neon-suspend-timeout {self.suspend_timeout}: Neon takes 0 (its default), -1 "
                f"(never suspend) or {low}-{high} seconds"
            )
        if self.branch is not None and not 1 <= len(self.branch) <= MAX_BRANCH_NAME:
            raise InputError(f"--neon-branch must have 1 to {MAX_BRANCH_NAME} characters, not {len(self.branch)}")
        if not 0 <= self.expiry_hours <= MAX_EXPIRY_HOURS:
            raise InputError(
                f"a Neon branch expiry is 0 (none) to {MAX_EXPIRY_HOURS} hours (30 days), not {self.expiry_hours:g}"
            )
        if self.max_branches < 1 or self.max_active_computes < 1:
            raise InputError("the Neon allowances of branches and active computes must be at least 1")

    def expires_at(self) -> str | None:
        """When a run branch created now is to delete itself, as the API takes it (RFC 3339, UTC);
        None for a branch that is to be kept."""
        if not self.expiry_hours or self.keep_branch:
            return None
        when = datetime.now(UTC) + timedelta(hours=self.expiry_hours)
        return when.strftime("%Y-%m-%dT%H:%M:%SZ")
