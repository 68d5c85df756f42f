"""The plan a prepared statement really runs: a custom plan, made for its values, or the generic one.

asyncpg prepares every statement and executes it again and again; from the sixth execution on,
PostgreSQL switches a prepared statement to its generic plan (planned for any values) when that
costs no more than its custom plans did on average — and EXPLAIN with bound values always shows a
custom plan. So a run:

- sets its plan-cache behaviour on the connection its samples run on (``PLAN_CACHE``): as the
  driver does it (``driver``: PostgreSQL's own choice, ``plan_cache_mode = auto``), always custom
  (``custom``: as behind a transaction pooler without prepared statements, every execution planned
  for its values), or always generic (``generic``);
- counts which kind of plan each timed execution ran (``Counters``: the statement's
  ``generic_plans`` and ``custom_plans`` in ``pg_prepared_statements``, read before its first
  timed execution and after each round of samples, in which it ran once);
- reads each statement's generic plan, a read's and a write's, as the plan trees do
  (``trees.explain``: PREPARE, then EXPLAIN EXECUTE under ``plan_cache_mode = force_generic_plan``
  with NULLs, which a generic plan does not look at; this works on every server, where EXPLAIN
  (GENERIC_PLAN), PostgreSQL 16+, cannot be sent with the bound parameters of asyncpg's protocol,
  and shows the same plan);
- times a read's explained parameter sets (not a write's: that would execute it) through a custom
  plan and through the generic plan, as a statement of its own (so that those executions do not
  count towards the switch of the sampled statement), the two taking turns at going first within
  each user class (``pair_order``): at most ``pairs`` of each user class (its share of the explained
  samples), and none more once the class's pairs cannot call the generic plan slower whatever the
  rest would show (``still_open``).

The generic plan is *slower* for a user class when a one-sided sign test on that class's pairs says
so at ``SLOWER_LEVEL`` and their median ratio and difference clear the time gate's factor and
floor (``slower_classes``). Stopping a class's pairs early changes no finding: it stops only where
even ``pairs`` slower pairs in all would leave the sign test short of the level, and then the class
is not slower however the pairs it did not take would have come out. Where the generic plan is the
custom plan, about half the pairs go either way and a class stops after two pairs on average instead
of ten (the probes were a fifth of a run's sampling time).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import asyncpg

from bench.catalogue.params import Drawn
from bench.judge.options import TimeThresholds
from bench.judge.timegate import DEFAULT_TIME, paired, sign_test_tail
from bench.measure.options import PLAN_CACHE
from bench.measure.plan import plan_facts
from bench.measure.timeout import TimedOut
from bench.measure.trees import explain
from bench.results import GenericCheck, PlanCache, PlanFacts

SLOWER_LEVEL = 0.01
"""A generic plan as fast as the custom ones is called slower for a user class of a cell at most this
often: an exact one-sided sign test (the factor and the floor only lower it)."""

_COUNTERS = (
    "SELECT statement, generic_plans, custom_plans FROM pg_catalog.pg_prepared_statements WHERE statement = ANY($1)"
)
# Appended to a probed statement: a prepared statement of its own, whose executions do not count
# towards the switch of the sampled one (a comment changes no plan)
_PROBE = "\n-- taskbench: through a custom and through the generic plan"
Kind = Literal["custom", "generic"]
Timer = Callable[[str, list[Any]], Awaitable[float]]  # client ms of one execution; TimedOut past its limit


async def set_plan_cache(conn: asyncpg.Connection, mode: PlanCache) -> None:
    """``mode`` on ``conn`` for the session (a pooler in transaction mode does not keep it)."""
    await conn.execute(f"SET plan_cache_mode = {PLAN_CACHE[mode]}")


class Counters:
    """Which kind of plan each timed execution ran: its statement's counters in pg_prepared_statements,
    read before the statement's first timed execution, and after each one — for every statement a
    round of samples ran, at once (``settle``): one sample per cell in a round, so each of its
    statements ran once since the last reading. A statement about to run a second time before the
    round is settled (two cells sending the same text) settles it first. One read a round instead of
    one a sample: 0.2–0.4 ms a sample, 26,000 samples in the default matrix."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn
        self.last: dict[str, tuple[int, int]] = {}
        self.pending: dict[str, Callable[[Kind | None], None]] = {}  # ran since the last reading: its record

    async def _read(self, statements: list[str]) -> dict[str, tuple[int, int]]:
        rows = await self.conn.fetch(_COUNTERS, statements)
        return {row[0]: (int(row[1]), int(row[2])) for row in rows}

    async def before(self, sql: str) -> None:
        if sql in self.pending:
            await self.settle()
        if sql not in self.last:
            self.last[sql] = (await self._read([sql])).get(sql, (0, 0))

    def ran(self, sql: str, record: Callable[[Kind | None], None]) -> None:
        """``sql`` ran once since ``before``: ``record`` gets the kind of plan it ran when settled."""
        self.pending[sql] = record

    async def settle(self) -> None:
        """Read the counters of every statement that ran since the last reading, and record each one's kind."""
        if not self.pending:
            return
        pending, self.pending = self.pending, {}
        now = await self._read(list(pending))
        for sql, record in pending.items():
            record(self._kind(sql, now.get(sql, (0, 0))))

    def _kind(self, sql: str, now: tuple[int, int]) -> Kind | None:
        """The kind of plan the execution since the last reading ran; None when it shows none."""
        was = self.last.get(sql, (0, 0))
        if now[0] < was[0] or now[1] < was[1]:  # prepared anew (asyncpg's statement cache let it go)
            was = (0, 0)
        self.last[sql] = now
        if now[0] > was[0]:
            return "generic"
        return "custom" if now[1] > was[1] else None


def slower_classes(
    custom_ms: list[float], generic_ms: list[float], classes: list[str], th: TimeThresholds = DEFAULT_TIME
) -> list[str]:
    """The user classes whose pairs (the same parameters through a custom and through the generic
    plan) say the generic plan is slower: the sign test at SLOWER_LEVEL, the median ratio at least
    ``th.factor`` and the median difference at least ``th.floor_ms``."""
    slower = []
    for name in dict.fromkeys(classes):
        of = [i for i, c in enumerate(classes) if c == name]
        v = paired([custom_ms[i] for i in of], [generic_ms[i] for i in of])
        if v.p_slower < SLOWER_LEVEL and v.ratio >= th.factor and v.difference_ms >= th.floor_ms:
            slower.append(name)
    return slower


def still_open(custom_ms: list[float], generic_ms: list[float], remaining: int) -> bool:
    """Whether a class's pairs so far and ``remaining`` more could still call the generic plan slower:
    the sign test's best case, every remaining pair slower (a tie, which the test drops, or a faster
    pair can only raise its p-value)."""
    so_far = paired(custom_ms, generic_ms) if custom_ms else None
    untied, slower = (so_far.n, so_far.slower) if so_far else (0, 0)
    return sign_test_tail(slower + remaining, untied + remaining) < SLOWER_LEVEL


def pair_order(taken: int) -> tuple[PlanCache, PlanCache]:
    """Which plan goes first in a class's next pair, after ``taken`` pairs of that class: custom and
    generic take turns within each class, so that whatever the first execution of a pair pays (a
    colder cache) is paid as often by either plan and the class's pairs stay exchangeable. (Turns
    counted over the cell's pairs would give each class of two that alternate always the same
    first plan.)"""
    return ("custom", "generic") if taken % 2 == 0 else ("generic", "custom")


class CellPlans:
    """A cell's record of the plans its prepared statements ran, on its sampling connection: each
    timed execution's kind of plan by user class (``before`` and ``after`` it), and its generic plan
    against its explained samples' custom plans (``probe``), timed too for a read (``timing``): at
    most ``pairs`` explained samples of each class."""

    def __init__(self, counters: Counters, mode: PlanCache, timing: bool, pairs: int) -> None:
        self.conn, self.mode, self.timing, self.pairs = counters.conn, mode, timing, pairs
        self.counters = counters  # the connection's, shared by the cells measured on it
        self.kinds: dict[str, Counter[Kind]] = {}
        self.shapes: dict[str, PlanFacts] = {}  # statement -> its generic plan
        self.fingerprints: list[str] = []  # per explained sample
        self.custom_ms: list[float] = []
        self.generic_ms: list[float] = []
        self.classes: list[str] = []  # per pair, its user class
        self.cut = False

    async def before(self, sql: str) -> None:
        await self.counters.before(sql)

    def after(self, sql: str, user_class: str) -> None:
        """``sql`` ran for ``user_class``: its kind of plan is counted when the counters are settled."""
        self.counters.ran(sql, lambda kind: self._count(user_class, kind))

    def _count(self, user_class: str, kind: Kind | None) -> None:
        if kind is not None:
            self.kinds.setdefault(user_class, Counter())[kind] += 1

    def counts(self, user_class: str) -> tuple[int, int]:
        """(custom, generic) timed executions of a class."""
        kinds = self.kinds.get(user_class, Counter())
        return kinds["custom"], kinds["generic"]

    def _pairs_of(self, user_class: str) -> tuple[list[float], list[float]]:
        """A class's pairs so far: its custom and its generic times."""
        of = [i for i, c in enumerate(self.classes) if c == user_class]
        return [self.custom_ms[i] for i in of], [self.generic_ms[i] for i in of]

    def _wanted(self, custom: list[float], generic: list[float]) -> bool:
        """Whether a class with these pairs so far times its next explained sample both ways: a read's,
        while it has fewer than ``pairs`` and they can still call the generic plan slower."""
        taken = len(custom)
        return self.timing and not self.cut and taken < self.pairs and still_open(custom, generic, self.pairs - taken)

    async def probe(self, drawn: Drawn, user_class: str, timer: Timer) -> None:
        """An explained sample's parameters through a custom and through the generic plan (their
        order alternating; a read's only, see ``_wanted``), after its statement's generic plan is
        read once."""
        if drawn.sql not in self.shapes:
            document = await explain(self.conn, drawn.sql, [None] * len(drawn.args), True, False, None)
            self.shapes[drawn.sql] = plan_facts(document)
        self.fingerprints.append(self.shapes[drawn.sql].fingerprint)
        custom, generic = self._pairs_of(user_class)
        if not self._wanted(custom, generic):
            return
        order = pair_order(len(custom))
        taken: dict[PlanCache, float] = {}
        try:
            for mode in order:
                await set_plan_cache(self.conn, mode)
                taken[mode] = await timer(drawn.sql + _PROBE, drawn.args)
        except TimedOut:
            self.cut = True
            return
        finally:
            await set_plan_cache(self.conn, self.mode)
        self.custom_ms.append(round(taken["custom"], 4))
        self.generic_ms.append(round(taken["generic"], 4))
        self.classes.append(user_class)

    def check(self, custom_fingerprints: list[str]) -> GenericCheck | None:
        """What the probes found: ``custom_fingerprints`` are the explained samples'."""
        if not self.fingerprints:
            return None
        first = next(iter(self.shapes.values()))
        return GenericCheck(
            fingerprint=first.fingerprint,
            node_types=first.node_types,
            fingerprints=self.fingerprints,
            differs=any(g != c for g, c in zip(self.fingerprints, custom_fingerprints, strict=False)),
            custom_ms=self.custom_ms,
            generic_ms=self.generic_ms,
            classes=self.classes,
            slower=slower_classes(self.custom_ms, self.generic_ms, self.classes),
            timed_out=self.cut,
        )
