"""The cheapest index set under which every scenario passes, searched with real builds.

1. **Baseline**: every scenario under the models' own indexes; the failing ones are what to fix.
2. **Screening**: each candidate alone, on the failing scenarios it serves (the best-scored
   ``screen_per_scenario`` per scenario) and the write scenarios of its table: what it fixes, and
   what it costs (its size and build time are exact; WAL and write p95 from its write cells). A
   B-tree HypoPG screened is built only when the planner would use it for one of those scenarios.
3. **Greedy forward selection**: add the candidate with the most still-failing scenarios fixed per
   unit of cost (the classic weighted set-cover rule), then measure the set for real on every
   scenario of that table; a candidate that fixes nothing in the set is set aside.
4. **Backward elimination**: drop each chosen index in turn, most expensive first, and keep it
   dropped when every scenario still passes (cells whose plans never used it carry over).
5. **Bounded exhaustive search**: every subset of the useful candidates, up to ``exhaustive_size``
   indexes, whose members' screening covers every scenario the baseline failed and whose additive
   cost (the sum of the members' own costs: exact for bytes and build time, close for WAL and
   latency) is below the incumbent's measured cost, is built and measured, cheapest bound first.

Budget: every step checks the trials' budget (builds, seconds) and stops the search where it is,
saying so. "Passes" is the runner's verdict against the SLAs the trials hold (headroom and growth
applied); inconclusive is not a pass.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from bench.advise.candidates import Candidate
from bench.advise.objective import Costs
from bench.advise.options import SCREEN_PER_SCENARIO, Objective
from bench.advise.trials import Trial, Trials


@dataclass(frozen=True)
class SearchOptions:
    objective: Objective = field(default_factory=Objective)
    screen_per_scenario: int = SCREEN_PER_SCENARIO  # candidates screened per failing scenario, best-scored first
    exhaustive_size: int = 4  # the largest subset the exhaustive phase builds
    exhaustive_trials: int = 10  # subsets it builds at most


@dataclass(frozen=True)
class Step:
    phase: str  # screen, add, set aside, drop, keep, subset
    candidate: str | None  # its name, where the step is about one
    trial: int
    note: str


@dataclass
class SearchResult:
    baseline: Trial
    failing: list[str]  # at baseline
    screened: list[str]  # fingerprints, in screening order
    chosen: tuple[str, ...]
    final: Trial  # the chosen set, every scenario known
    steps: list[Step] = field(default_factory=list)
    stopped: str | None = None  # why the search ended before its last phase, if it did

    @property
    def unmet(self) -> list[str]:
        return [s for s in self.final.cells if not self.final.passes(s)]


class _Search:
    def __init__(self, trials: Trials, options: SearchOptions, planned: dict[str, set[str]]) -> None:
        self.trials = trials
        self.options = options
        self.planned = planned
        self.steps: list[Step] = []
        self.stopped: str | None = None
        self.everything = trials.scenarios

    def step(self, phase: str, candidate: str | None, trial: Trial, note: str) -> None:
        name = self.trials.candidates[candidate].name if candidate else None
        self.steps.append(Step(phase, name, trial.number, note))

    def budget_left(self, builds: int, phase: str) -> bool:
        if self.trials.exhausted(builds):
            self.stopped = self.stopped or f"budget spent during {phase}"
            return False
        return True

    def cost(self, indexes: tuple[str, ...]) -> float | None:
        costs = self.trials.costs(indexes)
        return None if costs is None else costs.value(self.options.objective, self.base_costs)

    def run(self) -> SearchResult:
        base = self.trials.evaluate((), self.everything, "baseline schema")
        base_costs = self.trials.costs(())
        assert base_costs is not None  # every scenario was measured
        self.base_costs: Costs = base_costs
        failing = [s for s in self.everything if not base.passes(s)]
        screened = self.screen(failing)
        chosen = self.forward(failing, screened)
        chosen = self.backward(chosen)
        chosen = self.exhaustive(failing, screened, chosen)
        final = self.trials.evaluate(chosen, self.everything, "advised set")
        return SearchResult(
            baseline=base,
            failing=failing,
            screened=screened,
            chosen=chosen,
            final=final,
            steps=self.steps,
            stopped=self.stopped,
        )

    def screen(self, failing: list[str]) -> list[str]:
        candidates = list(self.trials.candidates.values())
        picked: dict[str, Candidate] = {}
        for scenario in failing:
            serving = sorted((c for c in candidates if scenario in c.serves), key=lambda c: -c.serves[scenario])
            picked.update((c.fingerprint, c) for c in serving[: self.options.screen_per_scenario])
        order = sorted(picked.values(), key=lambda c: -sum(c.serves[s] for s in failing if s in c.serves))
        screened = []
        for candidate in order:
            if not self.budget_left(1, "screening"):
                break
            served = [s for s in failing if s in candidate.serves]
            if candidate.fingerprint in self.planned and not self.planned[candidate.fingerprint] & set(served):
                continue  # HypoPG: the planner would use it for none of them, so it is not built
            writes = [
                s.name
                for s in self.trials.catalogue.scenarios
                if s.kind == "write" and candidate.table in self.trials.tables(s.name)
            ]
            trial = self.trials.evaluate((candidate.fingerprint,), served + writes, f"screen {candidate.name}")
            fixed = [s for s in served if trial.passes(s)]
            self.step(
                "screen",
                candidate.fingerprint,
                trial,
                f"fixes {', '.join(fixed)}" if fixed else f"fixes none of {', '.join(served)}",
            )
            screened.append(candidate.fingerprint)
        return screened

    def gain(self, fingerprint: str, pending: set[str]) -> set[str]:
        return {s for s in pending if (c := self.trials.cell(s, (fingerprint,))) is not None and c.verdict == "pass"}

    def forward(self, failing: list[str], screened: list[str]) -> tuple[str, ...]:
        chosen: list[str] = []
        pending = set(failing)
        aside: set[str] = set()
        while pending:
            options = [
                (f, g, self.cost((f,)))
                for f in screened
                if f not in chosen and f not in aside and (g := self.gain(f, pending))
            ]
            priced = [(f, g, c) for f, g, c in options if c is not None]
            if not priced or not self.budget_left(len(chosen) + 1, "greedy selection"):
                break
            fingerprint, gained, _ = max(priced, key=lambda o: (len(o[1]) / max(o[2], 0.01), -o[2]))
            table = self.trials.candidates[fingerprint].table
            trial = self.trials.evaluate(
                (*chosen, fingerprint),
                self.trials.on_tables([table]),
                f"add {self.trials.candidates[fingerprint].name}",
            )
            now = {s for s in self.everything if not trial.passes(s)}
            if not pending - now:
                aside.add(fingerprint)
                self.step(
                    "set aside",
                    fingerprint,
                    trial,
                    f"alone it fixed {', '.join(sorted(gained))}; in the set it fixes nothing",
                )
                continue
            # a scenario that passed before and fails now stays pending: the next picks must fix it
            # (a borderline cell's verdict can change between measurements; the set's must hold)
            chosen.append(fingerprint)
            broke = f"; now failing: {', '.join(sorted(now - pending))}" if now - pending else ""
            self.step(
                "add", fingerprint, trial, f"fixes {', '.join(sorted(pending - now))}{broke}; {len(now)} still failing"
            )
            pending = now
        return tuple(chosen)

    def backward(self, chosen: tuple[str, ...]) -> tuple[str, ...]:
        if not chosen:
            return chosen
        full = self.trials.evaluate(chosen, self.everything, "greedy set")
        passing = {s for s in self.everything if full.passes(s)}
        for fingerprint in sorted(chosen, key=lambda f: -(self.cost((f,)) or 0.0)):
            rest = tuple(f for f in chosen if f != fingerprint)
            table = self.trials.candidates[fingerprint].table
            if not self.budget_left(
                len([f for f in rest if self.trials.candidates[f].table == table]), "backward elimination"
            ):
                break
            self.trials.carry_over(chosen, rest, fingerprint)
            trial = self.trials.evaluate(rest, self.everything, f"drop {self.trials.candidates[fingerprint].name}")
            lost = sorted(s for s in passing if not trial.passes(s))
            if lost:
                self.step("keep", fingerprint, trial, f"without it {', '.join(lost)} fail")
            else:
                chosen = rest
                self.step("drop", fingerprint, trial, "every scenario that passed still passes")
        return chosen

    def exhaustive(self, failing: list[str], screened: list[str], incumbent: tuple[str, ...]) -> tuple[str, ...]:
        best = self.cost(incumbent)
        final = self.trials.evaluate(incumbent, self.everything, "incumbent")
        must = {s for s in self.everything if final.passes(s)}
        fixes = {f: self.gain(f, set(failing)) for f in screened}
        useful = [f for f in screened if fixes[f]]
        needed = set(failing) & must
        bounds = {f: self.cost((f,)) for f in useful}
        priced = [f for f in useful if bounds[f] is not None]
        subsets = []
        for size in range(1, min(self.options.exhaustive_size, len(priced)) + 1):
            for subset in itertools.combinations(priced, size):
                bound = sum(bounds[f] or 0.0 for f in subset)
                if (
                    set(subset) != set(incumbent)
                    and (best is None or bound < best)
                    and needed <= set().union(*(fixes[f] for f in subset))
                ):
                    subsets.append((bound, subset))
        subsets.sort()
        for bound, subset in subsets[: self.options.exhaustive_trials]:
            if best is not None and bound >= best:
                break  # the incumbent improved past every remaining bound
            if not self.budget_left(len(subset), "exhaustive search"):
                break
            names = " + ".join(self.trials.candidates[f].name for f in subset)
            trial = self.trials.evaluate(subset, self.everything, f"subset {names}")
            cost = self.cost(subset)
            wins = (
                must <= {s for s in self.everything if trial.passes(s)}
                and cost is not None
                and (best is None or cost < best)
            )
            self.step(
                "subset",
                None,
                trial,
                f"{names}: bound {bound:.1f}, measured "
                f"{'–' if cost is None else f'{cost:.1f}'}" + (" — cheaper, and every scenario passes" if wins else ""),
            )
            if wins:
                incumbent, best = subset, cost
        return incumbent


def search(
    trials: Trials, options: SearchOptions = SearchOptions(), planned: dict[str, set[str]] | None = None
) -> SearchResult:
    """Find the cheapest set. ``planned``: per candidate HypoPG screened, the scenarios whose
    estimated plan used it; such a candidate is built only for a failing scenario among them."""
    return _Search(trials, options, planned or {}).run()
