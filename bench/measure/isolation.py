"""Isolation checked, not assumed: does a policy variant show each user their own rows, and only those?

For a scenario relying on row-level security (no user filter of its own: ``Scenario.explicit``)
under a policy variant, ``ISOLATION_SETS`` parameter sets, each drawn for a user A:

- **own rows**: the scenario, run as the samples' role (no owner of the tables, no BYPASSRLS) with
  A's claim, returns the rows its explicit twin (its own ``user_id`` filter) returns for A's
  parameters, run by the tables' owner, whom row-level security does not filter: the same hash of
  rows (``rows.result_hash``), or for a write the same count of rows changed. Other rows are a
  policy that hides too much or lets too much through;
- **another user's claim**: A's parameters (A's task, A's conversation) under the claim of a user B
  drawn from another stream: a read must return what the explicit filter returns for B with those
  parameters (no row: A's task is not B's), a write must change no row or be refused by the policy
  (``WITH CHECK``). Anything else is a leak.

Writes run in transactions that are rolled back, like their samples. A failed check fails the cell
whatever its latency (``gates``-free: the verdict itself says so, see ``runner``). What a statement
returns or changes depends on the rows, the claim and the policies, not on the indexes: a run checks
a scenario once per set of policies and lends a check that finished to every variant with the same
policies (``runner``); one cut off by its timeout, which a faster index might have avoided, is not lent.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg

from bench.catalogue.files import Scenario
from bench.catalogue.params import Drawer, Pools
from bench.catalogue.sql import parse_query
from bench.measure.claims import Claim, as_user
from bench.measure.rows import result_hash
from bench.measure.timeout import Session, TimedOut, client_limit, limited
from bench.results import IsolationCheck

ISOLATION_SETS = 20  # own-user parameter sets per cell, and as many under another user's claim


@dataclass(frozen=True)
class _Outcome:
    """What one statement did: a read's rows (hashed), a write's rows changed, or the policy's refusal."""

    rows: str  # a read's result hash, or a write's count of rows changed
    changed: int = 0  # a write: rows changed
    refused: bool = False  # the policy refused it (a write's WITH CHECK: insufficient_privilege)

    def shown(self) -> str:
        return "refused by the policy" if self.refused else self.rows


async def _run(
    session: Session, sql: str, args: list[Any], write: bool, ordered: bool, claim: Claim | None, timeout_ms: int
) -> _Outcome:
    await session.limit(timeout_ms)
    conn = session.conn
    try:
        async with limited(timeout_ms), as_user(conn, claim, write):
            if not write:
                rows = await conn.fetch(sql, *args, timeout=client_limit(timeout_ms))
                return _Outcome(f"{len(rows)} rows, hash {result_hash(rows, ordered)}")
            status = await conn.execute(sql, *args, timeout=client_limit(timeout_ms))
    except asyncpg.InsufficientPrivilegeError:
        return _Outcome("refused", refused=True)
    changed = int(status.rsplit(" ", 1)[-1]) if status.rsplit(" ", 1)[-1].isdigit() else 0
    return _Outcome(f"{changed} rows changed", changed=changed)


def _twin(scenario: Scenario, binds: tuple[str, ...], values: dict[str, Any], who: uuid.UUID) -> list[Any]:
    """The explicit twin's binds for a parameter set of ``scenario``: its values, the user ones
    ``who``, and a constant only the twin declares its own value."""
    own = scenario.explicit_params
    return [who if own.get(name) == "user" else values.get(name, own.get(name)) for name in binds]


async def check_isolation(
    owner: Session, samples: Session, scenario: Scenario, claim: str, pools: Pools, seed: int, timeout_ms: int
) -> IsolationCheck:
    """The isolation check of ``scenario`` (relying on row-level security) under the policy variant
    applied: ``owner`` owns the tables, ``samples`` is the samples' role; ``claim`` the setting the
    policies read. See the module docstring."""
    assert scenario.explicit is not None, "only a scenario relying on row-level security is checked"
    write = scenario.kind == "write"
    explicit = parse_query(scenario.explicit_sql, write=write)
    drawer = Drawer(scenario, pools, seed, "isolation")
    others = Drawer(scenario, pools, seed, "isolation: another user")
    differing = leaks = refused = cross = 0
    example: str | None = None
    timed_out = False
    try:
        for _ in range(ISOLATION_SETS):
            user, values = drawer.user_values()
            sql, args, _ = drawer.bind(values)
            mine = await _run(samples, sql, args, write, explicit.ordered, (claim, user), timeout_ms)
            truth = await _run(
                owner,
                explicit.sql,
                _twin(scenario, explicit.params, values, user),
                write,
                explicit.ordered,
                None,
                timeout_ms,
            )
            if mine.rows != truth.rows:
                differing += 1
                example = example or f"user {user}'s own parameters: {mine.shown()}, the explicit filter {truth.rows}"
            if not set(others.users) - {user}:  # no one else to claim
                continue
            other = user
            while other == user:
                other = others.user_values()[0]
            cross += 1
            theirs = await _run(samples, sql, args, write, explicit.ordered, (claim, other), timeout_ms)
            refused += theirs.refused
            if write:
                leaked = theirs.changed > 0
                expected = "no row changed"
            else:
                expected = (
                    await _run(
                        owner,
                        explicit.sql,
                        _twin(scenario, explicit.params, values, other),
                        write,
                        explicit.ordered,
                        None,
                        timeout_ms,
                    )
                ).rows
                leaked = theirs.rows != expected
            if leaked:
                leaks += 1
                example = example or (
                    f"user {user}'s parameters under user {other}'s claim: {theirs.shown()}, expected {expected}"
                )
    except TimedOut as cut:  # a check cut off proves nothing: it fails, and says why
        differing, timed_out = differing + 1, True
        example = example or f"a check statement timed out after {cut.elapsed_ms:.0f} ms"
    finally:
        await owner.reset()
        await samples.reset()
    return IsolationCheck(
        parameter_sets=ISOLATION_SETS,
        differing=differing,
        cross_user=cross,
        leaks=leaks,
        refused=refused,
        example=example,
        timed_out=timed_out,
    )
