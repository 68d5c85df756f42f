"""Neon branches through the Neon API v2: the parent branch that holds the seeded dataset, and the
copy-on-write child branches a run measures on (one, or one per shard), deleted whatever happens.

The parent is, by default, one branch per database, dataset and models' schema, named after them
(``taskbench-seeded-<database>-<dataset fingerprint>-<schema fingerprint>``): seeded once on a branch of
another name and renamed only when complete, never seeded again in place, so two pull requests with
different models never branch from each other's tables, nor anyone from a half-loaded dataset. A
command that only measures finds it from the database name and the models' schema; ``--neon-parent``
names any other branch instead (seeded in place, as the user chose).

Only documented endpoints are used (``/projects/{id}/branches``, ``/endpoints``, ``/operations/{id}``,
``/branches/{id}/databases|roles|endpoints``, ``/connection_uri``), so the client runs unchanged
against Neon and against the loopback stand-in the tests use.
"""

from __future__ import annotations

import email.utils
import hashlib
import re
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from bench.errors import DatabaseError, InputError
from bench.targets.options import MAX_BRANCH_NAME, NeonSettings

RUN_BRANCH_PREFIX = "taskbench-run-"
# + <database>-<dataset fingerprint>-<schema fingerprint>: a complete parent (a database name has no "-")
SEEDED_PREFIX = "taskbench-seeded-"
SEEDING_PREFIX = "taskbench-seeding-"  # + the same + -<random>: a parent being seeded, not yet renamed
_IDENTITY = r"(?P<database>\w+)-(?P<dataset>[0-9a-f]{16})-(?P<schema>[0-9a-f]{12})"
SEEDED_NAME = re.compile(SEEDED_PREFIX + _IDENTITY)
SEEDING_NAME = re.compile(SEEDING_PREFIX + _IDENTITY + "-[0-9a-f]+")
# A seed that never finished (the process was killed) leaves its branch; one older than this is no
# seed still running (the large profile seeds in minutes) and `neon parents --remove-old` removes it.
STALE_SEEDING_HOURS = 24
# Branch listing (GET /branches): `limit` 1-10000 and a `cursor`, the previous page's
# `pagination.next` (Neon API reference, listProjectBranches).
LIST_LIMIT = 1000
# 429: rate limited; 423: the project already has operations running (Neon serialises them): nothing
# was done, so any request is retried. A 5xx may come after the work was done: GET and DELETE only.
# Neon does not document Retry-After: it is honoured when sent, else the wait doubles from 1 s.
RETRY_ALWAYS = frozenset({423, 429})
RETRY_IDEMPOTENT = frozenset({500, 502, 503, 504})
_FAILED_OPERATION = frozenset({"failed", "error", "cancelled", "cancelling"})


def schema_fingerprint(ddl: str) -> str:
    """The models' DDL in 12 hex digits: the schema half of a seeded parent's name."""
    return hashlib.sha256(ddl.encode()).hexdigest()[:12]


def seeded_parent_name(db_name: str, dataset_fingerprint: str, schema: str) -> str:
    """The parent branch whose database ``db_name`` holds this dataset in the tables of this schema
    (schema_fingerprint)."""
    return f"{SEEDED_PREFIX}{db_name}-{dataset_fingerprint}-{schema}"


class NeonError(DatabaseError):
    """The Neon API refused or failed a request (exit code 3, like any unreachable target)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the API's HTTP status; None when no answer came


@dataclass(frozen=True)
class Branch:
    id: str
    name: str
    role: str
    default_db: str  # a database of the branch other than taskbench's: where CREATE DATABASE runs


def retry_after_seconds(value: str | None, attempt: int, cap: float) -> float:
    """The wait a 429/423 asks for: Retry-After as seconds or an HTTP date, else exponential."""
    if value:
        try:
            return min(cap, max(0.0, float(value)))
        except ValueError:
            try:
                when = email.utils.parsedate_to_datetime(value)
                return min(cap, max(0.0, (when - datetime.now(UTC)).total_seconds()))
            except (TypeError, ValueError):
                pass
    return min(cap, 2.0**attempt)


FIRST_POLL_S = 0.1  # the first look at a running operation; each next one waits twice as long, up to poll_interval


class NeonClient:
    def __init__(
        self, settings: NeonSettings, sleep: Callable[[float], None] = time.sleep, poll_interval: float = 1.0
    ) -> None:
        self.settings = settings
        self._sleep = sleep
        self._poll = poll_interval
        self._http = httpx.Client(
            base_url=settings.api_url.rstrip("/"),
            timeout=30.0,
            headers={
                "Authorization": f"Bearer {settings.api_key}",
                "Accept": "application/json",
                "User-Agent": "taskbench",
            },
        )
        self._project = f"/projects/{settings.project_id}"

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One API call. 423 and 429 (nothing was done) are retried for every method; a 5xx only for
        GET and DELETE, since a POST may have taken effect; a dropped connection only for DELETE,
        the clean-up that must try hard (elsewhere a wrong URL should fail at once)."""
        idempotent = method in ("GET", "DELETE")
        for attempt in range(self.settings.max_retries + 1):
            last = attempt == self.settings.max_retries
            try:
                response = self._http.request(method, self._project + path, **kwargs)
            except httpx.TransportError as exc:
                if method == "DELETE" and not last:
                    self._sleep(retry_after_seconds(None, attempt, self.settings.max_wait))
                    continue
                raise NeonError(
                    f"cannot reach the Neon API at {self.settings.api_url}: {type(exc).__name__}: {exc}"
                ) from None
            retry = response.status_code in RETRY_ALWAYS or (idempotent and response.status_code in RETRY_IDEMPOTENT)
            if retry and not last:
                self._sleep(retry_after_seconds(response.headers.get("Retry-After"), attempt, self.settings.max_wait))
                continue
            return _checked(response, method, path)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    # -- branches -------------------------------------------------------------------------------

    def list_branches(self, search: str | None = None) -> list[dict[str, Any]]:
        """Every branch of the project (or those whose name or id contains ``search``), page after
        page: the API answers at most ``limit`` per request and a ``pagination.next`` cursor for the
        next page. A project past one page (thousands of branches on a paid plan) would otherwise
        hide branches from the allowance count and from a lookup by name. Stops at an empty page, a
        page without a cursor, or a cursor already followed (a server that repeats itself)."""
        params: dict[str, Any] = {"limit": LIST_LIMIT, **({"search": search} if search else {})}
        branches: list[dict[str, Any]] = []
        followed: set[str] = set()
        while True:
            page = self.request("GET", "/branches", params=params)
            branches += page.get("branches", [])
            cursor = (page.get("pagination") or {}).get("next")
            if not page.get("branches") or not cursor or cursor in followed:
                return branches
            followed.add(cursor)
            params = {**params, "cursor": cursor}

    def find_branches(self, name: str) -> list[dict[str, Any]]:
        """Branches called exactly ``name`` (the API's search also matches parts of names)."""
        return [b for b in self.list_branches(search=name) if b.get("name") == name]

    def find_branch(self, name: str) -> dict[str, Any] | None:
        return next(iter(self.find_branches(name)), None)

    def create_branch(
        self,
        name: str,
        parent_id: str | None,
        on_created: Callable[[str], None] = lambda branch_id: None,
        expires_at: str | None = None,
    ) -> dict[str, Any]:
        """Create a branch with a read_write endpoint of a fixed size and wait until it is ready.
        ``on_created`` learns the id before the wait, so an interrupted wait can still clean up."""
        branch: dict[str, Any] = {"name": name}
        if parent_id:
            branch["parent_id"] = parent_id
        if expires_at:
            branch["expires_at"] = expires_at
        created = self.request("POST", "/branches", json={"branch": branch, "endpoints": [self._endpoint()]})
        on_created(created["branch"]["id"])
        self.wait(created.get("operations", []))
        return created

    def _endpoint(self, **extra: Any) -> dict[str, Any]:
        s = self.settings
        endpoint: dict[str, Any] = {
            "type": "read_write",
            "autoscaling_limit_min_cu": s.compute_cu,
            "autoscaling_limit_max_cu": s.compute_cu,
            **extra,
        }
        if s.suspend_timeout:
            endpoint["suspend_timeout_seconds"] = s.suspend_timeout
        return endpoint

    def delete_branch(self, branch_id: str) -> None:
        """Delete a branch; one that is already gone counts as deleted. Neon answers that case 204
        ("the branch doesn't exist or has already been deleted", deleteProjectBranch), which is a
        success with no body; an older API answered 404, still taken as done."""
        try:
            self.request("DELETE", f"/branches/{branch_id}")
        except NeonError as exc:
            if exc.status != 404:
                raise

    def rename_branch(self, branch_id: str, name: str) -> None:
        """PATCH the branch's name (updateProjectBranch); 409 when a branch already has it."""
        renamed = self.request("PATCH", f"/branches/{branch_id}", json={"branch": {"name": name}})
        self.wait(renamed.get("operations", []))

    def wait(self, operations: list[dict[str, Any]]) -> None:
        """Poll each operation until it has finished; a failed one is an error."""
        deadline = time.monotonic() + self.settings.operation_timeout
        for op in operations:
            status = op.get("status")
            # Most operations (a branch from a parent, a delete) finish within a second: the first
            # looks come soon, then every poll_interval, so a wait costs about the operation itself.
            interval = FIRST_POLL_S
            while status != "finished" and status != "skipped":
                if status in _FAILED_OPERATION:
                    raise NeonError(
                        f"Neon operation {op.get('action', '?')} {op['id']} ended {status}: "
                        f"{op.get('error', '')}".rstrip(": ")
                    )
                if time.monotonic() > deadline:
                    raise NeonError(
                        f"Neon operation {op['id']} still {status} after {self.settings.operation_timeout:.0f} s"
                    )
                self._sleep(interval)
                interval = min(2 * interval, self._poll)
                op = self.request("GET", f"/operations/{op['id']}")["operation"]
                status = op.get("status")

    def ensure_endpoint(self, branch_id: str) -> None:
        """A branch made elsewhere may have no compute; give it a read_write one."""
        endpoints = self.request("GET", f"/branches/{branch_id}/endpoints").get("endpoints", [])
        if any(e.get("type") == "read_write" for e in endpoints):
            return
        created = self.request("POST", "/endpoints", json={"endpoint": self._endpoint(branch_id=branch_id)})
        self.wait(created.get("operations", []))

    # -- databases and connection strings --------------------------------------------------------

    def describe(
        self,
        branch: dict[str, Any],
        db_name: str,
        roles: list[dict[str, Any]] | None = None,
        databases: list[dict[str, Any]] | None = None,
    ) -> Branch:
        """The role and databases of a branch; a new branch's come with its create response, which
        saves two calls per branch."""
        if roles is None:
            roles = self.request("GET", f"/branches/{branch['id']}/roles").get("roles", [])
        role = next((r["name"] for r in roles if not r.get("protected")), None)
        if databases is None:
            databases = self.request("GET", f"/branches/{branch['id']}/databases").get("databases", [])
        default_db = next((d["name"] for d in databases if d["name"] != db_name), None)
        if role is None or default_db is None:
            raise NeonError(
                f"branch {branch['name']} needs a role and a database besides {db_name!r} "
                f"(it has roles {[r['name'] for r in roles]}, databases "
                f"{[d['name'] for d in databases]})"
            )
        return Branch(id=branch["id"], name=branch["name"], role=role, default_db=default_db)

    def has_database(self, branch: Branch, name: str) -> bool:
        databases = self.request("GET", f"/branches/{branch.id}/databases").get("databases", [])
        return any(d["name"] == name for d in databases)

    def create_database(self, branch: Branch, name: str) -> None:
        created = self.request(
            "POST", f"/branches/{branch.id}/databases", json={"database": {"name": name, "owner_name": branch.role}}
        )
        self.wait(created.get("operations", []))

    def connection_uri(self, branch: Branch, database: str) -> str:
        params = {
            "branch_id": branch.id,
            "database_name": database,
            "role_name": branch.role,
            "pooled": str(self.settings.pooled).lower(),
        }
        uri: str = self.request("GET", "/connection_uri", params=params)["uri"]
        return uri


def _checked(response: httpx.Response, method: str, path: str) -> dict[str, Any]:
    if response.is_success:
        return response.json() if response.content else {}
    try:
        message = response.json().get("message") or response.reason_phrase
    except ValueError:
        message = response.reason_phrase
    status = response.status_code
    if status in (401, 403):
        raise NeonError(
            f"the Neon API refused the API key (HTTP {status}: {message}); check NEON_API_KEY "
            "(expired or revoked keys are refused) and that it may use the project",
            status,
        )
    if status == 429:
        raise NeonError(f"the Neon API kept rate-limiting {method} {path} (HTTP 429); try again later", status)
    raise NeonError(f"the Neon API answered {method} {path} with HTTP {status}: {message}", status)


@contextmanager
def _uninterruptible() -> Iterator[None]:
    """Ignore Ctrl-C / SIGTERM while a branch is deleted: a second Ctrl-C must not leave it behind."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN), signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def parent_branch(client: NeonClient, db_name: str, create: bool) -> Branch:
    """The branch that holds the seeded dataset: ``--neon-parent`` when given, else the seeded parent
    of the models' schema that holds ``db_name`` (seeded_parent). With ``create`` (seeding into a
    named branch) it is made from the project's default branch if needed, with a compute and the
    database; a run only reads it, and needs it seeded. A seeded parent's own name is never created
    here: seed_parent makes it, complete."""
    name = client.settings.parent
    found = client.find_branch(name) if name else seeded_parent(client, db_name)
    create = create and name is not None and not SEEDED_NAME.fullmatch(name)
    if found is None and not create:
        raise NeonError(
            f"Neon branch {name!r} does not exist: seed it first (taskbench seed --target neon --db-name {db_name})"
        )
    if found is None:
        assert name is not None  # create is only set for a named branch
        found = client.create_branch(name, parent_id=None)["branch"]
    elif create:
        client.ensure_endpoint(found["id"])
    branch = client.describe(found, db_name)
    if not client.has_database(branch, db_name):
        if not create:
            raise NeonError(
                f"Neon branch {found['name']!r} has no database {db_name!r}: seed it first "
                f"(taskbench seed --target neon --neon-parent {found['name']} --db-name {db_name})"
            )
        client.create_database(branch, db_name)
    return branch


def seeded_parent(client: NeonClient, db_name: str) -> dict[str, Any]:
    """The seeded parent a command that only measures branches from: the one made from the models'
    schema as it is now that holds ``db_name``. Found, not computed: the dataset's fingerprint comes
    from the profile, which only `seed` is given; the database name and the models are what `seed`
    and a measuring command share. Several datasets seeded into one database name are ambiguous."""
    from bench.targets.schema import model_ddl  # the models: only when a parent is looked for

    schema = schema_fingerprint(model_ddl())
    branches = client.list_branches()
    parents = seeded_parents(client, branches)
    holding = [p for p in parents if p.complete and p.schema == schema and p.database == db_name]
    if not holding:
        raise NeonError(
            f"no seeded Neon parent holds database {db_name!r} for the models as they are now (schema "
            f"{schema}): seed it first (taskbench seed --target neon --db-name {db_name} --profile ...)"
        )
    if len(holding) > 1:
        raise InputError(
            f"several seeded Neon parents hold database {db_name!r} for these models ("
            + ", ".join(p.name for p in holding)
            + "): name one with --neon-parent, or seed each dataset into a --db-name of its own"
        )
    return next(b for b in branches if b["id"] == holding[0].id)


@contextmanager
def seed_parent(client: NeonClient, name: str, db_name: str, announce: Callable[[str], None]) -> Iterator[Branch]:
    """A new branch (from the project's default branch, with a compute and the database) for the
    block to seed, renamed ``name`` once the block has finished: a branch of that name only ever
    holds a complete dataset. If another seeder published ``name`` first, its parent stands and this
    one is deleted; on any error or interrupt this one is deleted too. No expiry: Neon refuses a child
    of an expiring branch, and this one is to have children."""
    match = SEEDED_NAME.fullmatch(name)
    assert match, f"{name} is not a seeded parent's name"
    staging = f"{SEEDING_PREFIX}{name.removeprefix(SEEDED_PREFIX)}-{secrets.token_hex(3)}"
    asked: dict[str, list[str]] = {staging: []}
    published = False
    try:
        created = client.create_branch(staging, None, asked[staging].append)
        announce(f"seeding Neon branch {staging}, to become {name}")
        branch = client.describe(created["branch"], db_name, created.get("roles"), created.get("databases"))
        if not any(d.get("name") == db_name for d in created.get("databases", [])):
            client.create_database(branch, db_name)
        yield branch
        try:
            client.rename_branch(branch.id, name)
            published = True
            announce(f"seeded Neon parent {name} ({branch.id})")
        except NeonError as exc:
            if exc.status != 409:
                raise
            announce(f"Neon parent {name} was published by another seed meanwhile; using it")
    finally:
        if not published:
            _dispose(client, asked, announce, raise_errors=False)


@dataclass(frozen=True)
class SeededParent:
    """A branch taskbench seeded as a parent (``complete``), or one whose seed never finished."""

    id: str
    name: str
    database: str  # the database on it that holds the dataset
    dataset: str  # the dataset's fingerprint
    schema: str  # schema_fingerprint of the models' DDL it was seeded with
    complete: bool
    created_at: datetime
    children: int  # branches made from it (runs measuring now); Neon refuses to delete it then

    def age_hours(self, now: datetime | None = None) -> float:
        return ((now or datetime.now(UTC)) - self.created_at) / timedelta(hours=1)


def seeded_parents(client: NeonClient, branches: list[dict[str, Any]] | None = None) -> list[SeededParent]:
    """The project's seeded parents and unfinished seeds, newest first."""
    branches = client.list_branches() if branches is None else branches
    parents = []
    for b in branches:
        match = SEEDED_NAME.fullmatch(b.get("name", "")) or SEEDING_NAME.fullmatch(b.get("name", ""))
        if match:
            parents.append(
                SeededParent(
                    id=b["id"],
                    name=b["name"],
                    database=match["database"],
                    dataset=match["dataset"],
                    schema=match["schema"],
                    complete=match.re is SEEDED_NAME,
                    created_at=datetime.fromisoformat(b["created_at"]),
                    children=sum(1 for c in branches if c.get("parent_id") == b["id"]),
                )
            )
    return sorted(parents, key=lambda p: p.created_at, reverse=True)


def old_parents(parents: list[SeededParent], keep: int, now: datetime | None = None) -> list[SeededParent]:
    """What `neon parents --remove-old` removes: the seeded parents after the ``keep`` newest, and
    seeds unfinished for STALE_SEEDING_HOURS; never a branch with children (a run is measuring on
    one of them, and Neon refuses to delete it)."""
    complete = [p for p in parents if p.complete]
    stale = [p for p in parents if not p.complete and p.age_hours(now) > STALE_SEEDING_HOURS]
    return [p for p in [*complete[keep:], *stale] if not p.children]


def remove_parents(client: NeonClient, parents: list[SeededParent], announce: Callable[[str], None]) -> None:
    """Delete the given parents (each even when another cannot be); a failure is raised at the end."""
    _dispose(client, {p.name: [p.id] for p in parents}, announce, raise_errors=True)


@contextmanager
def run_branches(
    client: NeonClient, db_name: str, count: int, announce: Callable[[str], None]
) -> Iterator[list[Branch]]:
    """``count`` fresh children of the parent branch: one for a run, one per shard for a sharded run.
    Created one after another, each waiting for its operations (Neon runs one operation per project
    at a time and answers 423 to the next), each with a fixed-size compute and an expiry, so that a
    killed process leaks nothing for long. Every one is deleted on exit (success, error, Ctrl-C or
    SIGTERM, also midway through the creation) unless ``keep_branch``."""
    if count < 1:
        raise InputError(f"a run needs at least one Neon branch, not {count}")
    parent = parent_branch(client, db_name, create=False)
    names = _run_branch_names(client.settings, count)
    _make_room(client, names)
    asked: dict[str, list[str]] = {}  # name → the ids Neon gave it ([] while its create is unanswered)
    ok = False
    try:
        yield [_create_child(client, parent, name, db_name, asked, announce) for name in names]
        ok = True
    finally:
        _dispose(client, asked, announce, raise_errors=ok)


def _run_branch_names(settings: NeonSettings, count: int) -> list[str]:
    base = settings.branch or f"{RUN_BRANCH_PREFIX}{secrets.token_hex(4)}"
    names = [base] if count == 1 else [f"{base}-{i}" for i in range(1, count + 1)]
    if len(names[-1]) > MAX_BRANCH_NAME:
        raise InputError(f"Neon branch names have at most {MAX_BRANCH_NAME} characters: {names[-1]!r} is longer")
    return names


def _make_room(client: NeonClient, names: list[str]) -> None:
    """Refuse, before anything is created, a name that is taken (only a given name can be) and a
    sharded run above the project's allowance, counted through the API. A single branch is left to
    Neon to refuse: on a paid plan, branches beyond the included ones are billed, not refused."""
    s = client.settings
    if len(names) == 1 and s.branch is None:
        return
    branches = client.list_branches()  # every page: the allowance counts every branch, parents too
    taken = sorted(set(names) & {b["name"] for b in branches})
    if taken:
        raise InputError(
            f"Neon branch {taken[0]} already exists (left by an earlier run?): delete it with "
            f"`neonctl branches delete {taken[0]} --project-id {s.project_id}` or choose another "
            "--neon-branch"
        )
    if len(names) == 1:
        return
    endpoints = client.request("GET", "/endpoints").get("endpoints", [])
    exempt = {b["id"] for b in branches if b.get("default")}
    active = sum(1 for e in endpoints if e.get("current_state") == "active" and e.get("branch_id") not in exempt)
    wanted = len(names)
    if len(branches) + wanted > s.max_branches or active + wanted > s.max_active_computes:
        parents = seeded_parents(client, branches)
        raise InputError(
            f"{wanted} Neon branches would exceed the project's allowance: it has {len(branches)} of "
            f"{s.max_branches} branches ({len(parents)} of them seeded parents: `taskbench neon parents "
            f"--remove-old` removes old ones) and {active} of {s.max_active_computes} active computes "
            f"(the default branch's not counted), and {wanted} more would make {len(branches) + wanted} "
            f"and {active + wanted}; nothing was created"
        )


def _create_child(
    client: NeonClient,
    parent: Branch,
    name: str,
    db_name: str,
    asked: dict[str, list[str]],
    announce: Callable[[str], None],
) -> Branch:
    ids = asked.setdefault(name, [])

    def on_created(branch_id: str) -> None:
        ids.append(branch_id)
        announce(f"created Neon branch {name} ({branch_id}) from {parent.name}")

    try:
        created = client.create_branch(name, parent.id, on_created, expires_at=client.settings.expires_at())
    except NeonError as exc:
        if not ids and exc.status is not None and exc.status < 500:
            del asked[name]  # Neon answered no: nothing was made, and a branch of that name is not ours
        raise
    return client.describe(created["branch"], db_name, created.get("roles"), created.get("databases"))


def _dispose(
    client: NeonClient, asked: dict[str, list[str]], announce: Callable[[str], None], raise_errors: bool
) -> None:
    """Delete the run's branches, each even when another cannot be. When the run itself failed, a
    failed delete is announced (with the commands that finish the job) but does not hide the run's
    own error."""
    project = client.settings.project_id
    if client.settings.keep_branch:
        for name, ids in asked.items():
            for branch_id in ids:
                announce(
                    f"kept Neon branch {name} ({branch_id}); delete it with: "
                    f"neonctl branches delete {branch_id} --project-id {project}"
                )
        asked = {name: ids for name, ids in asked.items() if not ids}  # unanswered creates are not kept
    left: list[str] = []
    failures: list[NeonError] = []
    with _uninterruptible():
        for name, ids in asked.items():
            pending = list(ids)
            try:
                # interrupted while its create request was in flight: look it up by name
                pending = pending or [b["id"] for b in client.find_branches(name)]
                while pending:
                    announce(f"deleting Neon branch {name} ({pending[0]})...")
                    client.delete_branch(pending[0])
                    announce(f"deleted Neon branch {name} ({pending.pop(0)})")
            except NeonError as exc:
                failures.append(exc)
                left += pending or [name]
                announce(f"could not delete Neon branch {name}: {exc}")
    if left:
        announce(
            "delete what is left with: "
            + "; ".join(f"neonctl branches delete {branch} --project-id {project}" for branch in left)
        )
        if raise_errors:
            raise failures[0]
