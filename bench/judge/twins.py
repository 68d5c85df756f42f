"""What the ORM sends: each ORM scenario's cell beside its hand-written twin's, under the same variant.

A pair *differs* when its plans differ (the most explained plan's fingerprint), when its buffers do
(the buffers gate's rule, ``gates.buffers_gate``: the explained samples' medians, 10% and 2 buffers
apart; an ORM scenario that draws as its twin explains the same parameter sets, so this is as
deterministic as the gate), or when its time does.

Time is judged as the time gate judges a check's pairs (``timegate``): both cells were measured in
the same run, one sample per cell per round, the ORM cell right beside its twin and the two taking
turns at going first (``runner._round_order``), so the n-th sample of a user class of one and the
n-th of the same class of the other were taken one after the other (with the same parameters when
the ORM scenario draws as its twin). Under "equally fast" the two members of such a pair are
exchangeable, so a sign test on the pairs of each class is exact; the ORM cell is slower (faster)
when that test is significant at ``alpha`` split over every pair and class of the run (Bonferroni: a
run's chance of calling any equally fast pair slower or faster is at most ``alpha`` for each
direction) and the median paired ratio and difference clear the gate's factor and floor, which only
remove findings.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from statistics import median

from bench.judge.gates import DEFAULT_GATES, buffers_gate
from bench.judge.options import TimeThresholds
from bench.judge.timegate import DEFAULT_TIME, PairedVerdict, is_faster, is_slower, paired
from bench.results import Cell, Results

Time = str  # "slower", "faster" or "" (not shown to differ)


@dataclass(frozen=True)
class ClassTime:
    user_class: str
    verdict: PairedVerdict
    time: Time


@dataclass(frozen=True)
class TwinPair:
    orm: Cell
    hand: Cell
    classes: list[ClassTime]  # the classes both cells sampled, each judged on its pairs

    @property
    def plan_differs(self) -> bool:
        return self.orm.plan.fingerprint != self.hand.plan.fingerprint

    @property
    def buffers(self) -> tuple[float, float] | None:
        """The two medians (hand, ORM) when they differ by the buffers gate's rule, else None."""
        if not buffers_gate(self.hand, self.orm, DEFAULT_GATES):
            return None
        return median(self.hand.samples.buffers), median(self.orm.samples.buffers)

    @property
    def time(self) -> Time:
        """slower when some class is slower and none faster; faster the other way; "" otherwise."""
        found = {c.time for c in self.classes} - {""}
        return found.pop() if len(found) == 1 else ""

    @property
    def differs(self) -> bool:
        return self.plan_differs or self.buffers is not None or bool(self.time)


def _by_class(cell: Cell) -> dict[str, list[float]]:
    samples: dict[str, list[float]] = {}
    for user_class, ms in zip(cell.samples.user_class, cell.samples.client_ms, strict=True):
        samples.setdefault(user_class, []).append(ms)
    return samples


def _matched(res: Results) -> Iterator[tuple[Cell, Cell]]:
    for orm in res.cells:
        if orm.orm is not None and orm.orm.twin is not None:
            hand = res.cell(orm.orm.twin, orm.variant)
            if hand is not None:
                yield orm, hand


def twin_pairs(res: Results, th: TimeThresholds = DEFAULT_TIME) -> list[TwinPair]:
    """Every ORM cell with its twin's cell under the same variant, judged (see the module docstring)."""
    matched = list(_matched(res))
    tests = sum(len(set(orm.samples.user_class) & set(hand.samples.user_class)) for orm, hand in matched)
    pairs = []
    for orm, hand in matched:
        ours, theirs = _by_class(orm), _by_class(hand)
        classes = []
        for name in (c for c in ours if c in theirs):
            n = min(len(ours[name]), len(theirs[name]))
            verdict = paired(theirs[name][:n], ours[name][:n])
            time = "slower" if is_slower(verdict, th, tests) else "faster" if is_faster(verdict, th, tests) else ""
            classes.append(ClassTime(name, verdict, time))
        pairs.append(TwinPair(orm, hand, classes))
    return pairs
