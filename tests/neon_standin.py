"""A stand-in for the Neon API v2 on loopback, for the tests (Neon itself cannot be reached here).

It follows the documented request and response shapes of the endpoints taskbench uses (branches,
operations, databases, roles, endpoints, connection_uri; Bearer auth; 401, 404) and hands out
connection URIs of the embedded PostgreSQL. A branch is a set of databases on that server named
``<branch id>__<database>``; creating a child copies the parent's databases (CREATE DATABASE ...
TEMPLATE), which is what a copy-on-write branch looks like from a client.

It behaves as Neon documents, so the client's handling of it is tested end to end:
- the branch list comes in pages of at most ``page_size`` (whatever ``limit`` asks), each with a
  ``pagination.next`` cursor that the next request passes as ``cursor`` (listProjectBranches); a
  small page size makes every client lookup follow the pages;
- deleting a branch that does not exist (any more) is answered 204 with no body, as Neon now does
  (deleteProjectBranch: "Returned if the branch doesn't exist or has already been deleted");
- a branch is renamed by PATCH (updateProjectBranch), 409 when the name is taken;
- an operation runs for ``operation_seconds``, and while one runs every request that would start
  another (POST, PATCH, DELETE) is answered 423 Locked: Neon serialises a project's operations;
- 429 comes without Retry-After, which Neon does not document;
- it refuses what Neon refuses in the requests taskbench sends: compute sizes Neon does not offer or
  the plan (``max_cu``) does not allow, min above max, an autoscaling range over 8 CU, a suspend
  timeout outside 0, -1 and 60-604800 s, a branch name of 0 or over 256 characters or one already
  taken, an expiry without time zone, in the past or over 30 days ahead, a child of an expiring
  branch, a second read_write compute on a branch, and deleting the default branch or a parent.
These rules are written down here from Neon's documentation, independently of the client's own
checks: a shared rule would let a mistake in it pass on both sides.
"""

from __future__ import annotations

import itertools
import json
import re
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
from sqlalchemy.engine import URL

PASSWORD = "standin-S3cret-pw"  # trust auth ignores it; tests check it never leaks
# neon.com/docs/manage/computes, "Compute size and autoscaling configuration"
NEON_CU = frozenset({0.25, 0.5, *range(1, 17), *range(18, 57, 2)})
AUTOSCALING_MAX_CU = 16
AUTOSCALING_SPAN_CU = 8


class NeonStandIn:
    def __init__(self, server: URL, api_key: str, project_id: str = "proj-standin", max_cu: float = 16) -> None:
        self.server = server  # the embedded server, any database
        self.api_key = api_key
        self.project_id = project_id
        self.max_cu = max_cu  # the plan's largest fixed compute (16: Launch)
        self.role = server.username or "postgres"
        self.tag = secrets.token_hex(2)  # this instance's databases, for the final clean-up
        self.branches: dict[str, dict[str, Any]] = {}
        self.endpoints: dict[str, dict[str, Any]] = {}
        self.operations: dict[str, dict[str, Any]] = {}
        self.operation_seconds = 0.2
        self.page_size = 10_000  # Neon's largest `limit`; the tests lower it to make the client page
        self.log: list[tuple[str, str, int, Any]] = []  # method, path, status, request body
        self.throttled = 0  # the next N requests answer 429
        self.unavailable: dict[str, int] = {}  # method → the next N requests of it answer 503
        self.unanswered: dict[str, int] = {}  # method → the next N requests of it are done, the answer lost
        self.lock = threading.RLock()
        self.created = itertools.count()
        main = self._new_branch("main", None, default=True)
        self._create_database(main["id"], "neondb")
        self.http = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/api/v2"
        threading.Thread(target=self.http.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        with self._admin() as conn:
            for (name,) in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", (f"br_{self.tag}%",)
            ).fetchall():
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # -- state ---------------------------------------------------------------------------------

    def branch_named(self, name: str) -> dict[str, Any] | None:
        return next((b for b in self.branches.values() if b["name"] == name), None)

    def calls(self, since: int = 0) -> list[str]:
        """The requests logged since entry ``since`` as "METHOD route", ids left out, to be counted."""

        def route(path: str) -> str:
            path = re.sub(r"/br-[0-9a-f-]+", "/{branch}", path.removeprefix(f"/api/v2/projects/{self.project_id}"))
            return re.sub(r"/operations/[0-9a-f]+", "/operations/{id}", path)

        return [f"{method} {route(path)}" for method, path, _, _ in self.log[since:]]

    def databases_of(self, branch_id: str) -> list[str]:
        prefix = _db_prefix(branch_id)
        with self._admin() as conn:
            rows = conn.execute(
                "SELECT datname FROM pg_database WHERE starts_with(datname, %s) ORDER BY 1", (prefix,)
            ).fetchall()
        return [r[0][len(prefix) :] for r in rows]

    def physical_name(self, branch_id: str, database: str) -> str:
        return _db_prefix(branch_id) + database

    def _admin(self) -> psycopg.Connection:
        return psycopg.connect(
            self.server.set(drivername="postgresql", database="postgres").render_as_string(hide_password=False),
            autocommit=True,
        )

    def _new_branch(self, name: str, parent_id: str | None, default: bool = False) -> dict[str, Any]:
        branch_id = f"br-{self.tag}-{secrets.token_hex(3)}"
        now = datetime.now(UTC).isoformat()
        branch = {
            "id": branch_id,
            "project_id": self.project_id,
            "name": name,
            "parent_id": parent_id,
            "current_state": "ready",
            "default": default,
            "protected": False,
            "created_at": now,
            "updated_at": now,
            "seq": next(self.created),  # creation order, for the list's cursor (not sent)
        }
        self.branches[branch_id] = branch
        return branch

    def _new_endpoint(self, branch_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        endpoint_id = f"ep-standin-{secrets.token_hex(4)}"
        endpoint = {
            "id": endpoint_id,
            "project_id": self.project_id,
            "branch_id": branch_id,
            "type": spec.get("type", "read_write"),
            "host": f"{endpoint_id}.standin.invalid",
            "current_state": "active",
            "autoscaling_limit_min_cu": spec.get("autoscaling_limit_min_cu", 0.25),
            "autoscaling_limit_max_cu": spec.get("autoscaling_limit_max_cu", 0.25),
            "suspend_timeout_seconds": spec.get("suspend_timeout_seconds", 0),
        }
        self.endpoints[endpoint_id] = endpoint
        return endpoint

    def _operation(self, action: str, branch_id: str, endpoint_id: str | None = None) -> dict[str, Any]:
        op: dict[str, Any] = {
            "id": secrets.token_hex(8),
            "project_id": self.project_id,
            "branch_id": branch_id,
            "endpoint_id": endpoint_id,
            "action": action,
            "status": "running",
            "done_at": time.monotonic() + self.operation_seconds,
        }
        self.operations[op["id"]] = op
        return _public(op)

    def pass_time(self, seconds: float) -> None:
        """Let ``seconds`` pass for the operations at once: each running one finishes that much sooner.
        For a test whose client backs off in whole seconds: its waits are taken as they come, not sat out."""
        with self.lock:
            for op in self.operations.values():
                op["done_at"] -= seconds

    def settle(self) -> None:
        """Wait until no operation runs, for a test whose impatient client must not meet a 423."""
        while True:
            with self.lock:
                if not self._running():
                    return
            time.sleep(0.05)

    def _running(self) -> bool:
        now = time.monotonic()
        for op in self.operations.values():
            if op["status"] == "running" and now >= op["done_at"]:
                op["status"] = "finished"
        return any(op["status"] == "running" for op in self.operations.values())

    def _create_database(self, branch_id: str, name: str, template: str | None = None) -> None:
        with self._admin() as conn:
            clause = f' TEMPLATE "{template}"' if template else ""
            conn.execute(f'CREATE DATABASE "{self.physical_name(branch_id, name)}"{clause}')

    def _uri(self, branch_id: str, database: str, pooled: bool = False) -> str:
        # Pooled or not, the stand-in has one server; the host kind is what the URI says.
        return self.server.set(
            drivername="postgresql", password=PASSWORD, database=self.physical_name(branch_id, database)
        ).render_as_string(hide_password=False)

    # -- API -----------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: Any) -> tuple[int, dict[str, Any]]:
        m = re.fullmatch(r"/api/v2/projects/([^/]+)(/.*)", path)
        if not m or m.group(1) != self.project_id:
            return 404, {"code": "", "message": "project not found"}
        route = m.group(2)
        with self.lock:
            if method != "GET" and self._running():
                return 423, {
                    "code": "",
                    "message": "project already has running conflicting operations, "
                    "scheduling of new ones is prohibited",
                }
            if method == "GET" and route == "/branches":
                return self._list_branches(query)
            if method == "POST" and route == "/branches":
                return self._create_branch(body or {})
            if method == "GET" and route == "/endpoints":
                return 200, {"endpoints": list(self.endpoints.values())}
            if method == "POST" and route == "/endpoints":
                spec = (body or {}).get("endpoint", {})
                if spec.get("branch_id") not in self.branches:
                    return 404, {"code": "", "message": "branch not found"}
                if problem := self._endpoint_problem(spec, spec["branch_id"]):
                    return problem
                endpoint = self._new_endpoint(spec["branch_id"], spec)
                return 201, {
                    "endpoint": endpoint,
                    "operations": [self._operation("start_compute", spec["branch_id"], endpoint["id"])],
                }
            if method == "GET" and route == "/connection_uri":
                branch_id, database = query.get("branch_id", ""), query.get("database_name", "")
                if branch_id not in self.branches or database not in self.databases_of(branch_id):
                    return 404, {"code": "", "message": "database not found"}
                return 200, {"uri": self._uri(branch_id, database, query.get("pooled") == "true")}
            if m := re.fullmatch(r"/operations/([^/]+)", route):
                return self._poll(m.group(1))
            if m := re.fullmatch(r"/branches/([^/]+)(/\w+)?", route):
                return self._branch_route(method, m.group(1), m.group(2) or "", body)
        return 404, {"code": "", "message": f"no route {method} {route}"}

    def _list_branches(self, query: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """One page, in creation order; the cursor is the page's last branch's place in that order.
        ``next`` comes with every page that has branches, so a client stops at an empty page."""
        found = [b for b in self.branches.values() if query.get("search", "") in b["name"]]
        start = int(query["cursor"]) if "cursor" in query else 0
        size = min(int(query.get("limit", self.page_size)), self.page_size)
        page = [b for b in found if b["seq"] >= start][:size]
        pagination = {"next": str(page[-1]["seq"] + 1)} if page else {}
        return 200, {"branches": [_public(b) for b in page], "pagination": pagination}

    def _create_branch(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        spec = body.get("branch", {})
        parent_id = spec.get("parent_id") or next(b["id"] for b in self.branches.values() if b["default"])
        if parent_id not in self.branches:
            return 404, {"code": "", "message": "parent branch not found"}
        name = spec.get("name") or f"br-{secrets.token_hex(3)}"
        if not 1 <= len(name) <= 256:
            return 400, {"code": "", "message": "branch name must have 1 to 256 characters"}
        if self.branch_named(name):
            return 409, {"code": "", "message": f'branch already exists; branch_name:"{name}"'}
        if self.branches[parent_id].get("expires_at"):
            return 400, {"code": "", "message": "cannot create a branch from a branch with an expiration"}
        if "expires_at" in spec and (problem := _expiry_problem(spec["expires_at"])):
            return 400, {"code": "", "message": problem}
        if sum(e.get("type") == "read_write" for e in body.get("endpoints", [])) > 1:
            return 400, {"code": "", "message": "a branch can have only one read_write endpoint"}
        for endpoint in body.get("endpoints", []):
            if refusal := self._endpoint_problem(endpoint):
                return refusal
        branch = self._new_branch(name, parent_id)
        if "expires_at" in spec:
            branch["expires_at"] = spec["expires_at"]
        for database in self.databases_of(parent_id):
            self._create_database(branch["id"], database, template=self.physical_name(parent_id, database))
        endpoints = [self._new_endpoint(branch["id"], e) for e in body.get("endpoints", [])]
        ops = [self._operation("create_branch", branch["id"])]
        ops += [self._operation("start_compute", branch["id"], e["id"]) for e in endpoints]
        databases = self.databases_of(branch["id"])
        uris = [
            {
                "connection_uri": self._uri(branch["id"], d),
                "connection_parameters": {
                    "database": d,
                    "password": PASSWORD,
                    "role": self.role,
                    "host": e["host"],
                    "pooler_host": e["host"].replace(".", "-pooler.", 1),
                },
            }
            for d in databases[:1]
            for e in endpoints
        ]
        return 201, {
            "branch": _public(branch),
            "endpoints": endpoints,
            "operations": ops,
            "roles": [{"branch_id": branch["id"], "name": self.role, "protected": False}],
            "databases": [self._database(branch["id"], d) for d in databases],
            "connection_uris": uris,
        }

    def _endpoint_problem(
        self, spec: dict[str, Any], branch_id: str | None = None
    ) -> tuple[int, dict[str, Any]] | None:
        """Neon's answer to an endpoint it refuses, else None."""

        def bad(message: str) -> tuple[int, dict[str, Any]]:
            return 400, {"code": "", "message": message}

        if spec.get("type") not in ("read_write", "read_only"):
            return bad(f"endpoint type must be read_write or read_only, not {spec.get('type')!r}")
        low, high = spec.get("autoscaling_limit_min_cu", 0.25), spec.get("autoscaling_limit_max_cu", 0.25)
        for cu in (low, high):
            if cu not in NEON_CU:
                return bad(f"compute size {cu} CU is not one Neon offers")
            if cu > self.max_cu:
                return bad(f"compute size {cu} CU is above the plan's maximum of {self.max_cu:g} CU")
        if low > high:
            return bad("autoscaling_limit_min_cu must not be above autoscaling_limit_max_cu")
        if low < high and (high > AUTOSCALING_MAX_CU or high - low > AUTOSCALING_SPAN_CU):
            return bad(
                f"autoscaling goes up to {AUTOSCALING_MAX_CU} CU over a range of at most {AUTOSCALING_SPAN_CU} CU"
            )
        timeout = spec.get("suspend_timeout_seconds", 0)
        if timeout not in (0, -1) and not 60 <= timeout <= 604_800:
            return bad("suspend_timeout_seconds must be 0, -1 or 60 to 604800")
        if (
            branch_id
            and spec["type"] == "read_write"
            and any(e["branch_id"] == branch_id and e["type"] == "read_write" for e in self.endpoints.values())
        ):
            return 409, {"code": "", "message": "read-write endpoint already exists"}
        return None

    def _poll(self, op_id: str) -> tuple[int, dict[str, Any]]:
        op = self.operations.get(op_id)
        if op is None:
            return 404, {"code": "", "message": "operation not found"}
        self._running()  # brings the statuses up to date
        return 200, {"operation": _public(op)}

    def _branch_route(self, method: str, branch_id: str, sub: str, body: Any) -> tuple[int, dict[str, Any]]:
        branch = self.branches.get(branch_id)
        if branch is None and method == "DELETE" and not sub:
            return 204, {}  # gone already: Neon answers 204, no body
        if branch is None:
            return 404, {"code": "", "message": "branch not found"}
        if method == "PATCH" and not sub:
            name = ((body or {}).get("branch") or {}).get("name", branch["name"])
            if name != branch["name"] and self.branch_named(name):
                return 409, {"code": "", "message": f'branch already exists; branch_name:"{name}"'}
            branch["name"] = name
            return 200, {"branch": _public(branch), "operations": []}
        if method == "DELETE" and not sub:
            if branch["default"] or any(b["parent_id"] == branch_id for b in self.branches.values()):
                return 400, {"code": "", "message": "cannot delete the default branch or a branch with children"}
            with self._admin() as conn:
                for database in self.databases_of(branch_id):
                    conn.execute(f'DROP DATABASE "{self.physical_name(branch_id, database)}" WITH (FORCE)')
            del self.branches[branch_id]
            for endpoint_id in [e for e, v in self.endpoints.items() if v["branch_id"] == branch_id]:
                del self.endpoints[endpoint_id]
            return 200, {
                "branch": {**_public(branch), "current_state": "deleted"},
                "operations": [self._operation("delete_timeline", branch_id)],
            }
        if method == "GET" and not sub:
            return 200, {"branch": _public(branch)}
        if method == "GET" and sub == "/databases":
            return 200, {"databases": [self._database(branch_id, d) for d in self.databases_of(branch_id)]}
        if method == "POST" and sub == "/databases":
            spec = (body or {}).get("database", {})
            self._create_database(branch_id, spec["name"])
            return 201, {
                "database": self._database(branch_id, spec["name"]),
                "operations": [self._operation("apply_config", branch_id)],
            }
        if method == "GET" and sub == "/roles":
            return 200, {"roles": [{"branch_id": branch_id, "name": self.role, "protected": False}]}
        if method == "GET" and sub == "/endpoints":
            return 200, {"endpoints": [e for e in self.endpoints.values() if e["branch_id"] == branch_id]}
        return 404, {"code": "", "message": f"no route {method} {sub}"}

    def _database(self, branch_id: str, name: str) -> dict[str, Any]:
        return {"branch_id": branch_id, "name": name, "owner_name": self.role}


def _db_prefix(branch_id: str) -> str:
    return branch_id.replace("-", "_") + "__"


def _public(item: dict[str, Any]) -> dict[str, Any]:
    """An operation or branch as the API shows it, without the stand-in's own bookkeeping."""
    return {k: v for k, v in item.items() if k not in ("done_at", "seq")}


def _expiry_problem(value: Any) -> str | None:
    """What Neon says about an ``expires_at`` it refuses (neon.com/docs/guides/branch-expiration)."""
    try:
        when = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return f"expires_at must be an RFC 3339 timestamp, not {value!r}"
    now = datetime.now(UTC)
    if when.tzinfo is None:
        return "expires_at needs a time zone (Z or an offset)"
    if when <= now:
        return "expires_at must be in the future"
    if when > now + timedelta(days=30):
        return "expires_at must be at most 30 days ahead"
    return None


def _handler(standin: NeonStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _serve(self, method: str) -> None:
            split = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(split.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            if self.headers.get("Authorization") != f"Bearer {standin.api_key}":
                status, payload = 401, {"code": "", "message": "authentication required"}
            elif standin.throttled:
                standin.throttled -= 1
                status, payload = 429, {"code": "", "message": "too many requests"}
            elif standin.unavailable.get(method):
                standin.unavailable[method] -= 1
                status, payload = 503, {"code": "", "message": "service unavailable"}
            else:
                status, payload = standin.handle(method, split.path, query, body)
            standin.log.append((method, split.path, status, body))
            if standin.unanswered.get(method):
                standin.unanswered[method] -= 1
                self.close_connection = True  # done, but the client never hears of it
                return
            data = b"" if status == 204 else json.dumps(payload).encode()  # 204: no content, no type
            self.send_response(status)
            if data:
                self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def do_PATCH(self) -> None:
            self._serve("PATCH")

    return Handler
