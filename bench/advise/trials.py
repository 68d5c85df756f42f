"""Index sets built for real and measured with the runner, each measurement kept for as long as
nothing that could change it has changed.

A scenario reads and writes only its own tables, so its cell under a set of indexes depends only
on the set's indexes on those tables (its *restriction*): a cell measured under one set stands for
every set with the same restriction, and a trial measures only the scenarios whose restriction is
new, building only the indexes on their tables. One more case is exact: dropping an index that a
cell's plan did not use leaves the planner's choice as it was, so that cell carries over too
(``carry_over``). Every run is a matrix run (``runs.matrix``) on a variant made in memory, with the sampling
options given (the search's are cheaper than a full run's; the verdict is the same sequential test).

Under a policy variant (``advise --policy``) every trial's variant carries its policies, and a
scenario's tables include those its tables' policies read (messages' reads conversations): an index
there can change the policy's part of the plan. A cell that fails its isolation check stops the
search (``refuse_leaks``): a leaking policy cannot be advised.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field

from bench.advise.candidates import Candidate
from bench.advise.objective import Costs, write_figures
from bench.catalogue.files import Catalogue, Variant
from bench.errors import InputError, IsolationFailure
from bench.measure.options import RunOptions
from bench.progress import Advance, no_progress
from bench.results import Cell
from bench.runs import matrix
from bench.targets.target import Target


def measure_with_runner(
    target: Target, catalogue: Catalogue, opts: RunOptions, advance: Advance
) -> tuple[list[Cell], dict[str, tuple[int, float]]]:
    """The runner on ``catalogue`` (one variant): its cells, and each built index's size and build time."""
    res = matrix.measure(target, catalogue, opts, advance)
    built = {i.name: (i.size_bytes, i.build_seconds) for v in res.variants for i in v.indexes}
    return res.cells, built


def variant_of(
    name: str, indexes: Iterable[Candidate], description: str = "", policy: Variant | None = None
) -> Variant:
    """A variant made in memory: the candidates' statements and the extensions they need, and
    ``policy``'s row-level security (not its indexes: the search decides those; nor its extensions,
    which only its indexes can use, since a policy may call no function but the claim's)."""
    chosen = list(indexes)
    return Variant(
        name=name,
        description=description,
        extensions=sorted({e for c in chosen for e in c.extensions}),
        statements=[c.index.ddl() for c in chosen],
        policies=policy.policies if policy is not None else [],
    )


def refuse_leaks(cells: Iterable[Cell], policy: Variant | None) -> None:
    """Stop (exit 1) when a cell under ``policy`` failed its isolation check: a policy that lets one
    user see or change another's rows is wrong at any speed, so no index set can be advised for it."""
    leaking = [c for c in cells if c.isolation is not None and c.isolation.failed]
    if policy is None or not leaking:
        return
    first = leaking[0].isolation
    assert first is not None
    scenarios = ", ".join(dict.fromkeys(c.scenario for c in leaking))
    raise IsolationFailure(
        f"policy variant {policy.name!r} leaks: isolation failure in {scenarios} ({first.describe()}); "
        "a leaking policy cannot be advised"
    )


@dataclass
class Trial:
    """One index set and what is known of it: a cell per scenario (measured in this trial or
    carried over), and how many indexes this trial built."""

    number: int
    purpose: str
    indexes: tuple[str, ...]  # candidate fingerprints
    cells: dict[str, Cell]
    measured: list[str]  # scenarios measured in this trial (the others were known)
    builds: int
    seconds: float

    def passes(self, scenario: str) -> bool:
        cell = self.cells.get(scenario)
        return cell is not None and cell.verdict == "pass"

    def complete(self, scenarios: Collection[str]) -> bool:
        return all(s in self.cells for s in scenarios)


@dataclass
class Trials:
    target: Target
    catalogue: Catalogue  # scenarios with the SLAs the search must meet (headroom and growth applied)
    candidates: dict[str, Candidate]  # by fingerprint
    options: RunOptions
    advance: Advance = no_progress
    max_builds: int | None = None
    deadline: float | None = None  # time.monotonic() after which no new trial starts
    policy: Variant | None = None  # the policy variant every trial runs under (advise --policy)
    history: list[Trial] = field(default_factory=list)
    builds: int = 0
    _cells: dict[tuple[str, frozenset[str]], Cell] = field(default_factory=dict)
    _costs: dict[str, tuple[int, float]] = field(default_factory=dict)  # fingerprint -> size, build s

    def __post_init__(self) -> None:
        policies = self.policy.policy_defs if self.policy is not None else []
        self._tables = {
            s.name: s.query.tables.union(*(p.reads for p in policies if p.table in s.query.tables))
            for s in self.catalogue.scenarios
        }

    def tables(self, scenario: str) -> frozenset[str]:
        """The tables whose indexes can change ``scenario``'s cell: its own, and those its policies read."""
        return frozenset(self._tables[scenario])

    @property
    def scenarios(self) -> list[str]:
        return [s.name for s in self.catalogue.scenarios]

    def on_tables(self, tables: Collection[str]) -> list[str]:
        """The scenarios that touch any of ``tables``: those an index there can change."""
        return [s for s in self.scenarios if self._tables[s] & set(tables)]

    def exhausted(self, builds: int = 0) -> bool:
        """Whether the budget (builds, time) forbids a trial building ``builds`` more indexes."""
        over_builds = self.max_builds is not None and self.builds + builds > self.max_builds
        return over_builds or (self.deadline is not None and time.monotonic() > self.deadline)

    def restriction(self, scenario: str, indexes: Iterable[str]) -> frozenset[str]:
        tables = self._tables[scenario]
        return frozenset(f for f in indexes if self.candidates[f].table in tables)

    def cell(self, scenario: str, indexes: Iterable[str]) -> Cell | None:
        return self._cells.get((scenario, self.restriction(scenario, indexes)))

    def carry_over(self, before: Iterable[str], after: Iterable[str], dropped: str) -> None:
        """Where the index ``dropped`` (``before`` minus ``after``) was in no plan a cell saw, that
        cell stands for ``after`` too: the planner's choice did not involve it."""
        name = self.candidates[dropped].name
        for scenario in self.scenarios:
            cell = self.cell(scenario, before)
            if cell is not None and cell.plan_count == 1 and name not in cell.plan.indexes:
                self._cells.setdefault((scenario, self.restriction(scenario, after)), cell)

    def costs(self, indexes: Iterable[str]) -> Costs | None:
        """The set's costs; None while an index's size or a write scenario's cell is unknown."""
        chosen = list(indexes)
        if any(f not in self._costs for f in chosen):
            return None
        writes = [s.name for s in self.catalogue.scenarios if s.kind == "write"]
        cells = [self.cell(s, chosen) for s in writes]
        if any(c is None for c in cells):
            return None
        wal, p95 = write_figures([c for c in cells if c is not None])
        return Costs(
            index_bytes=sum(self._costs[f][0] for f in chosen),
            build_seconds=round(sum(self._costs[f][1] for f in chosen), 3),
            wal_per_write=wal,
            write_p95_ms=p95,
        )

    def index_cost(self, fingerprint: str) -> tuple[int, float] | None:
        """The index's size (bytes) and build seconds, once it has been built."""
        return self._costs.get(fingerprint)

    def evaluate(self, indexes: Sequence[str], scenarios: Iterable[str], purpose: str) -> Trial:
        """Measure ``scenarios`` under the set ``indexes`` where not known yet; one runner call."""
        chosen = tuple(dict.fromkeys(indexes))
        wanted = list(dict.fromkeys(scenarios))
        missing = [s for s in wanted if self.cell(s, chosen) is None]
        tables = {t for s in missing for t in self._tables[s]}
        # only the indexes that can change what is measured are built (and any whose size is unknown)
        build = [f for f in chosen if self.candidates[f].table in tables or f not in self._costs]
        started = time.monotonic()
        if missing or build:
            label = f"trial {len(self.history) + 1}: {purpose}"
            catalogue = self.catalogue.model_copy(
                update={
                    "scenarios": [s for s in self.catalogue.scenarios if s.name in missing]
                    or self.catalogue.scenarios[:1],
                    "variants": [
                        variant_of(
                            f"trial_{len(self.history) + 1}", (self.candidates[f] for f in build), policy=self.policy
                        )
                    ],
                    "mix": {},
                }
            )
            cells, built = measure_with_runner(
                self.target, catalogue, self.options, lambda _, done, total: self.advance(label, done, total)
            )
            refuse_leaks(cells, self.policy)
            by_name = {self.candidates[f].name: f for f in build}
            for name, cost in built.items():
                if name not in by_name:
                    raise InputError(f"trial {purpose}: the server built an index {name!r} no candidate names")
                self._costs[by_name[name]] = cost
            for cell in cells:
                self._cells[(cell.scenario, self.restriction(cell.scenario, chosen))] = cell
            self.builds += len(build)
        known = {s: c for s in self.scenarios if (c := self.cell(s, chosen)) is not None}
        trial = Trial(
            number=len(self.history) + 1,
            purpose=purpose,
            indexes=chosen,
            cells=known,
            measured=missing,
            builds=len(build) if (missing or build) else 0,
            seconds=round(time.monotonic() - started, 2),
        )
        self.history.append(trial)
        return trial
