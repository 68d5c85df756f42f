"""Neon branches through the Neon API v2: the parent branch that holds the seeded dataset, and the
copy-on-write child branch each run measures on, deleted whatever happens.

Only documented endpoints are used (``/projects/{id}/branches``, ``/operations/{id}``,
``/branches/{id}/databases|roles|endpoints``, ``/connection_uri``), so the client runs unchanged
against Neon and against the loopback stand-in the tests use.
"""

from __future__ import annotations

import email.utils
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from bench.errors import DatabaseError

API_URL = "https://console.neon.tech/api/v2"
DEFAULT_PARENT = "taskbench-seeded"
RUN_BRANCH_PREFIX = "taskbench-run-"
# 429: rate limited; 423: the project already has operations running (Neon serialises them): nothing
# was done, so any request is retried. A 5xx may come after the work was done: GET and DELETE only.
# Neon does not document Retry-After: it is honoured when sent, else the wait doubles from 1 s.
RETRY_ALWAYS = frozenset({423, 429})
RETRY_IDEMPOTENT = frozenset({500, 502, 503, 504})
_FAILED_OPERATION = frozenset({"failed", "error", "cancelled", "cancelling"})


class NeonError(DatabaseError):
    """The Neon API refused or failed a request (exit code 3, like any unreachable target)."""


@dataclass(frozen=True)
class NeonSettings:
    api_key: str = field(repr=False)  # never printed
    project_id: str
    api_url: str = API_URL
    parent: str = DEFAULT_PARENT
    compute_cu: float = 1.0  # fixed size (min = max): autoscaling mid-run would move the timings
    suspend_timeout: int = 0  # seconds; 0 = Neon's default, -1 = never suspend
    pooled: bool = False
    keep_branch: bool = False
    max_retries: int = 6
    max_wait: float = 60.0  # longest single back-off, seconds
    operation_timeout: float = 600.0


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
                return min(cap, max(0.0, (when - datetime.now(timezone.utc)).total_seconds()))
            except (TypeError, ValueError):
                pass
    return min(cap, 2.0 ** attempt)


class NeonClient:
    def __init__(self, settings: NeonSettings, sleep: Callable[[float], None] = time.sleep,
                 poll_interval: float = 1.0) -> None:
        self.settings = settings
        self._sleep = sleep
        self._poll = poll_interval
        self._http = httpx.Client(base_url=settings.api_url.rstrip("/"), timeout=30.0, headers={
            "Authorization": f"Bearer {settings.api_key}", "Accept": "application/json",
            "User-Agent": "taskbench"})
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
                raise NeonError(f"cannot reach the Neon API at {self.settings.api_url}: "
                                f"{type(exc).__name__}: {exc}") from None
            retry = response.status_code in RETRY_ALWAYS or (idempotent and response.status_code in RETRY_IDEMPOTENT)
            if retry and not last:
                self._sleep(retry_after_seconds(response.headers.get("Retry-After"), attempt,
                                                self.settings.max_wait))
                continue
            return _checked(response, method, path)
        raise AssertionError("unreachable")  # the last attempt returns or raises

    # -- branches -------------------------------------------------------------------------------

    def find_branches(self, name: str) -> list[dict[str, Any]]:
        """Branches called exactly ``name`` (the API's search also matches parts of names)."""
        branches = self.request("GET", "/branches", params={"search": name}).get("branches", [])
        return [b for b in branches if b.get("name") == name]

    def find_branch(self, name: str) -> dict[str, Any] | None:
        return next(iter(self.find_branches(name)), None)

    def create_branch(self, name: str, parent_id: str | None,
                      on_created: Callable[[str], None] = lambda branch_id: None) -> dict[str, Any]:
        """Create a branch with a read_write endpoint of a fixed size and wait until it is ready.
        ``on_created`` learns the id before the wait, so an interrupted wait can still clean up."""
        branch: dict[str, Any] = {"name": name}
        if parent_id:
            branch["parent_id"] = parent_id
        created = self.request("POST", "/branches", json={"branch": branch, "endpoints": [self._endpoint()]})
        on_created(created["branch"]["id"])
        self.wait(created.get("operations", []))
        return created

    def _endpoint(self, **extra: Any) -> dict[str, Any]:
        s = self.settings
        endpoint: dict[str, Any] = {"type": "read_write", "autoscaling_limit_min_cu": s.compute_cu,
                                    "autoscaling_limit_max_cu": s.compute_cu, **extra}
        if s.suspend_timeout:
            endpoint["suspend_timeout_seconds"] = s.suspend_timeout
        return endpoint

    def delete_branch(self, branch_id: str) -> None:
        try:
            self.request("DELETE", f"/branches/{branch_id}")
        except NeonError as exc:
            if "HTTP 404" not in str(exc):  # already gone is what we wanted
                raise

    def wait(self, operations: list[dict[str, Any]]) -> None:
        """Poll each operation until it has finished; a failed one is an error."""
        deadline = time.monotonic() + self.settings.operation_timeout
        for op in operations:
            status = op.get("status")
            while status != "finished" and status != "skipped":
                if status in _FAILED_OPERATION:
                    raise NeonError(f"Neon operation {op.get('action', '?')} {op['id']} ended {status}: "
                                    f"{op.get('error', '')}".rstrip(": "))
                if time.monotonic() > deadline:
                    raise NeonError(f"Neon operation {op['id']} still {status} after "
                                    f"{self.settings.operation_timeout:.0f} s")
                self._sleep(self._poll)
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

    def describe(self, branch: dict[str, Any], db_name: str) -> Branch:
        roles = self.request("GET", f"/branches/{branch['id']}/roles").get("roles", [])
        role = next((r["name"] for r in roles if not r.get("protected")), None)
        databases = self.request("GET", f"/branches/{branch['id']}/databases").get("databases", [])
        default_db = next((d["name"] for d in databases if d["name"] != db_name), None)
        if role is None or default_db is None:
            raise NeonError(f"branch {branch['name']} needs a role and a database besides {db_name!r} "
                            f"(it has roles {[r['name'] for r in roles]}, databases "
                            f"{[d['name'] for d in databases]})")
        return Branch(id=branch["id"], name=branch["name"], role=role, default_db=default_db)

    def has_database(self, branch: Branch, name: str) -> bool:
        databases = self.request("GET", f"/branches/{branch.id}/databases").get("databases", [])
        return any(d["name"] == name for d in databases)

    def create_database(self, branch: Branch, name: str) -> None:
        created = self.request("POST", f"/branches/{branch.id}/databases",
                               json={"database": {"name": name, "owner_name": branch.role}})
        self.wait(created.get("operations", []))

    def connection_uri(self, branch: Branch, database: str) -> str:
        params = {"branch_id": branch.id, "database_name": database, "role_name": branch.role,
                  "pooled": str(self.settings.pooled).lower()}
        return self.request("GET", "/connection_uri", params=params)["uri"]


def _checked(response: httpx.Response, method: str, path: str) -> dict[str, Any]:
    if response.is_success:
        return response.json() if response.content else {}
    try:
        message = response.json().get("message") or response.reason_phrase
    except ValueError:
        message = response.reason_phrase
    status = response.status_code
    if status in (401, 403):
        raise NeonError(f"the Neon API refused the API key (HTTP {status}: {message}); check NEON_API_KEY "
                        "(expired or revoked keys are refused) and that it may use the project")
    if status == 429:
        raise NeonError(f"the Neon API kept rate-limiting {method} {path} (HTTP 429); try again later")
    raise NeonError(f"the Neon API answered {method} {path} with HTTP {status}: {message}")


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
    """The named branch that holds the seeded dataset. Seeding (``create``) makes it from the
    project's default branch if needed, with a compute and the database; a run only reads it, and
    needs it seeded."""
    name = client.settings.parent
    found = client.find_branch(name)
    if found is None and not create:
        raise NeonError(f"Neon branch {name!r} does not exist: seed it first "
                        f"(taskbench seed --target neon --neon-parent {name})")
    if found is None:
        found = client.create_branch(name, parent_id=None)["branch"]
    elif create:
        client.ensure_endpoint(found["id"])
    branch = client.describe(found, db_name)
    if not client.has_database(branch, db_name):
        if not create:
            raise NeonError(f"Neon branch {name!r} has no database {db_name!r}: seed it first "
                            f"(taskbench seed --target neon --neon-parent {name} --db-name {db_name})")
        client.create_database(branch, db_name)
    return branch


@contextmanager
def run_branch(client: NeonClient, db_name: str, announce: Callable[[str], None]) -> Iterator[Branch]:
    """A fresh child of the parent branch for one run; deleted on exit — success, error, Ctrl-C or
    SIGTERM — unless ``keep_branch``."""
    parent = parent_branch(client, db_name, create=False)
    name = f"{RUN_BRANCH_PREFIX}{secrets.token_hex(4)}"
    created_id: list[str] = []

    def on_created(branch_id: str) -> None:
        created_id.append(branch_id)
        announce(f"created Neon branch {name} ({branch_id}) from {parent.name}")

    ok = False
    try:
        created = client.create_branch(name, parent.id, on_created)
        yield client.describe(created["branch"], db_name)
        ok = True
    finally:
        _dispose(client, name, created_id, announce, raise_errors=ok)


def _dispose(client: NeonClient, name: str, known_ids: list[str], announce: Callable[[str], None],
             raise_errors: bool) -> None:
    """Delete the run's branch. When the run itself failed, a failed delete is announced (with the
    command that finishes the job) but does not hide the run's own error."""
    def by_hand(ids: list[str]) -> str:
        return f"neonctl branches delete {' '.join(ids) or name} --project-id {client.settings.project_id}"

    if client.settings.keep_branch and known_ids:
        announce(f"kept Neon branch {name} ({known_ids[0]}); delete it with: {by_hand(known_ids[:1])}")
        return
    with _uninterruptible():
        ids = list(known_ids)
        try:
            if not ids:  # interrupted while the create request was in flight: look it up by name
                ids = [b["id"] for b in client.find_branches(name)]
            for branch_id in ids:
                announce(f"deleting Neon branch {name} ({branch_id})...")
                client.delete_branch(branch_id)
                announce(f"deleted Neon branch {name} ({branch_id})")
        except NeonError as exc:
            announce(f"could not delete Neon branch {name}: {exc}; delete it with: {by_hand(ids)}")
            if raise_errors:
                raise
