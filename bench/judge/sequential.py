"""Exact group-sequential test of an SLA on the count of samples over it (the exceedances).

The question per cell is whether p = P(sample latency > SLA) is at most p0 (0.05: for a continuous
latency distribution, p <= 0.05 is the same statement as p95 <= SLA). Samples are independent, so
the number E of exceedances among the first n samples is Binomial(n, p), whatever the shape of the
latency distribution. At each look n_k of a fixed schedule:

- "fail" when E >= fail_at[k],
- "pass" when E <= pass_at[k],
- otherwise "continue", and "inconclusive" at the last look.

The boundaries come from exact alpha spending under p = p0. The distribution of E over the paths
that have not stopped yet is carried from look to look (convolved with the Binomial(n_k - n_{k-1},
p0) increment), both boundaries are taken out of it at every look, so each boundary is computed on
exactly the paths the other one has left. At look k:

- fail_at[k] is the smallest f whose cumulative fail probability under p0 (this look's E >= f plus
  what earlier looks spent) is at most alpha_fail * n_k / n_K (spending linear in information);
- pass_at[k] is the largest a whose cumulative pass probability under p0 is at most the pass
  spending at look k. Passing is monotone in p (more exceedances never help a pass), so the
  probability of a wrong pass is largest at p = p0, and computing it there bounds it for every p > p0.

Pass spending is zero before the look ``pass_from``. At ``pass_from`` it equals the exact price of
the smallest possible pass there, P(E = 0 at pass_from), and from there it grows linearly in
information up to alpha_pass at n_K:

    s_pass(n_k) = c + (alpha_pass - c) * (n_k - n_pf) / (n_K - n_pf),   c = P_p0(E_pf = 0)

Plain linear spending (alpha_pass * n_k / n_K) gives too little alpha early: passing with no
exceedance at all costs 0.95^77 = 1.9% at n = 77, more than three quarters of alpha_pass, so under it
a clean cell could not pass before n = 100. Spending exactly that price at the first look where a
pass is possible and the rest linearly over the remaining information lets a clean cell stop at 77.
This is the form that gives the default design: fail at E >= 4 at n = 4, E >= 12 at n = 100,
E >= 31 at n = 400; pass at E = 0 at n = 77 or 100, E <= 2 at n = 220, E <= 9 at n = 400; exact
wrong-fail 2.13% and wrong-pass 2.49% at p = 0.05.

A budget may end a cell without a verdict, and cannot create one: the caller stops when its time
is up, and ``Design.decide(..., budget_exhausted=True)`` turns what would be "continue" into
"inconclusive".

There is no futility stop (ending a cell "inconclusive" at a look from which neither boundary can be
reached any more): with the default looks it could never fire. Their last step, 290 to 400 samples,
is longer than the last fail boundary (31 for one class, 32 for two, 38 for forty: a class's
alpha_fail shrinks with their number), so from every E at every earlier look the remaining samples
can still reach a fail. Only a design whose last looks are closer than its final fail boundary
could stop for futility, and taskbench runs none (the looks are not an option).

Several user classes in one cell: the cell passes only if every class passes and fails if any class
fails. The probability that some class fails is at most the sum over the classes, so each class
gets alpha_fail / k (``design_for_classes``); a wrong pass needs every class to pass, including the
one that sits over the SLA, so it is bounded by that class's alpha_pass with no correction.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from bench.judge import binomial

Decision = Literal["pass", "fail", "continue", "borderline", "inconclusive"]
Distribution = npt.NDArray[np.float64]

DEFAULT_LOOKS: tuple[int, ...] = (4, 5, 7, 9, 12, 16, 21, 28, 37, 49, 64, 77, 100, 130, 170, 220, 290, 400)
DEFAULT_P0 = 0.05  # p95 <= SLA
DEFAULT_ALPHA = 0.025  # a side: what a two-sided 95% interval states
DEFAULT_PASS_FROM = 77  # a clean cell passes here: 0 of 77 over costs 0.95^77 = 1.9% of alpha, the rest is for later
# Borderline: stop at a look where a later pass, were p as low as BORDERLINE_P[0], and a later fail,
# were it as high as BORDERLINE_P[1], are both less likely than BORDERLINE_CHANCE.
BORDERLINE_P = (0.02, 0.08)
BORDERLINE_CHANCE = 0.2
# A fail at a look before CONFIRM_BEFORE rests on a handful of samples taken within a second or two,
# which one burst of other work on the machine can cover: the class is measured again from nothing
# after a pause (the runner's RunOptions.confirm_pause_s), and the second test's verdict stands (its
# early fails too).
CONFIRM_BEFORE = 16

FAIL_SPENDING = "alpha_fail * n_k / n_K"
PASS_SPENDING = (
    "0 before pass_from; c + (alpha_pass - c) * (n_k - n_pf) / (n_K - n_pf) from it, c = P(E = 0 at pass_from | p0)"
)


@dataclass(frozen=True)
class OperatingCharacteristics:
    """Exact probabilities of each verdict for one true exceedance probability p."""

    p: float
    fail: float
    pass_: float
    borderline: float  # ended at the line: stopped by the borderline rule, or at the last look
    expected_n: float  # samples taken per cell on average, every stop counted at its look
    early_fail: float = 0.0  # the part of ``fail`` at looks before CONFIRM_BEFORE


@dataclass(frozen=True)
class Design:
    """Boundaries of the sequential test, as ``design`` computes them."""

    looks: tuple[int, ...]
    fail_at: tuple[int | None, ...]  # smallest E that fails at each look (None: cannot fail there)
    pass_at: tuple[int | None, ...]  # largest E that passes at each look (None: cannot pass there)
    p0: float
    alpha_fail: float
    alpha_pass: float
    pass_from: int
    # per look, the E (low, high, inclusive) at which the cell stops borderline (None: none there)
    borderline: tuple[tuple[int, int] | None, ...] = ()

    def decide(self, n: int, exceedances: int, *, budget_exhausted: bool = False) -> Decision:
        """The verdict after ``n`` samples of which ``exceedances`` were over the SLA.

        Boundaries exist only at looks, so between looks the answer is "continue" ("inconclusive"
        when the budget is exhausted: applying a boundary at another n would spend alpha the
        design did not account for). At a look that decides nothing, "borderline" where the
        borderline rule stops (and at the last look), else "continue".
        """
        if not 0 <= exceedances <= n:
            raise ValueError(f"exceedances must be between 0 and n={n}, got {exceedances}")
        if n > self.looks[-1]:
            raise ValueError(f"n={n} is beyond the last look {self.looks[-1]}")
        if n not in self.looks:
            return "inconclusive" if budget_exhausted else "continue"
        k = self.looks.index(n)
        fail, pass_ = self.fail_at[k], self.pass_at[k]
        if fail is not None and exceedances >= fail:
            return "fail"
        if pass_ is not None and exceedances <= pass_:
            return "pass"
        if k == len(self.looks) - 1 or _within(self.borderline[k] if self.borderline else None, exceedances):
            return "borderline"
        return "inconclusive" if budget_exhausted else "continue"

    def describe(self) -> dict[str, object]:
        """The protocol, JSON-ready, for results.json: enough to rebuild and audit the design."""
        at_p0 = operating_characteristics(self, self.p0)
        return {
            "method": "exact group-sequential binomial test of P(latency > SLA) <= p0 on exceedance counts",
            "p0": self.p0,
            "alpha_fail": self.alpha_fail,
            "alpha_pass": self.alpha_pass,
            "looks": list(self.looks),
            "fail_at": list(self.fail_at),
            "pass_at": list(self.pass_at),
            "pass_from": self.pass_from,
            "fail_spending": FAIL_SPENDING,
            "pass_spending": PASS_SPENDING,
            "borderline": f"at a look deciding nothing, borderline when a later pass at p = {BORDERLINE_P[0]} "
            f"and a later fail at p = {BORDERLINE_P[1]} are both less likely than {BORDERLINE_CHANCE} "
            "(non-binding: the boundaries ignore it); at the last look too",
            "borderline_at": [list(b) if b else None for b in self.borderline],
            "budget": "a cell stopped by the time budget is inconclusive",
            "wrong_fail_at_p0": at_p0.fail,
            "wrong_pass_at_p0": at_p0.pass_,
        }


def _within(span: tuple[int, int] | None, exceedances: int) -> bool:
    return span is not None and span[0] <= exceedances <= span[1]


def _later(
    looks: tuple[int, ...], fail_at: list[int | None], pass_at: list[int | None], p: float, to: str
) -> list[Distribution]:
    """Per look k, for each E there, the chance that a path still running reaches a later ``to``
    boundary ("pass" or "fail") when the exceedance probability is p; computed backwards from the
    last look, where no later boundary is left."""
    last = looks[-1]
    chances: list[Distribution] = [np.zeros(last + 1)]
    for k in range(len(looks) - 2, -1, -1):
        step = looks[k + 1] - looks[k]
        after = chances[0].copy()  # look k + 1: a boundary decides, else the chance from there on
        e = np.arange(last + 1)
        if (f := fail_at[k + 1]) is not None:
            after[e >= f] = 1.0 if to == "fail" else 0.0
        if (a := pass_at[k + 1]) is not None:
            after[e <= a] = 1.0 if to == "pass" else 0.0
        pmf = binomial.pmf(np.arange(step + 1), step, p)
        now = np.array([float(pmf @ after[e0 : e0 + step + 1]) if e0 + step <= last else 0.0 for e0 in e])
        chances.insert(0, now)
    return chances


def _borderline(
    looks: tuple[int, ...], fail_at: list[int | None], pass_at: list[int | None]
) -> list[tuple[int, int] | None]:
    """Per look, the E (low, high) that the borderline rule stops at (see BORDERLINE_P)."""
    low_p, high_p = BORDERLINE_P
    passes = _later(looks, fail_at, pass_at, low_p, "pass")
    fails = _later(looks, fail_at, pass_at, high_p, "fail")
    spans: list[tuple[int, int] | None] = []
    for k, n in enumerate(looks):
        fail, pass_ = fail_at[k], pass_at[k]
        running = [e for e in range(n + 1) if (fail is None or e < fail) and (pass_ is None or e > pass_)]
        stop = [e for e in running if passes[k][e] < BORDERLINE_CHANCE and fails[k][e] < BORDERLINE_CHANCE]
        spans.append((min(stop), max(stop)) if stop else None)
    return spans


def _advance(dist: Distribution, samples: int, p: float) -> Distribution:
    """Distribution of E over the unstopped paths after ``samples`` more samples."""
    return np.convolve(dist, binomial.pmf(np.arange(samples + 1), samples, p))


@functools.lru_cache(maxsize=64)
def design(
    p0: float = DEFAULT_P0,
    alpha_fail: float = DEFAULT_ALPHA,
    alpha_pass: float = DEFAULT_ALPHA,
    looks: tuple[int, ...] = DEFAULT_LOOKS,
    pass_from: int = DEFAULT_PASS_FROM,
) -> Design:
    """Boundaries by exact alpha spending under p0 (see the module docstring for the spending)."""
    if not 0 < p0 < 1:
        raise ValueError(f"p0 must be in (0, 1), got {p0}")
    # Below 1/2 each, the fail and pass regions of a look cannot overlap: together they would hold
    # all the mass still running, 1 - spent, while their limits allow only alpha_fail + alpha_pass - spent.
    if not (0 < alpha_fail < 0.5 and 0 < alpha_pass < 0.5):
        raise ValueError(f"alphas must be in (0, 0.5), got fail={alpha_fail} pass={alpha_pass}")
    if not looks or looks[0] < 1 or any(b <= a for a, b in itertools.pairwise(looks)):
        raise ValueError(f"looks must be increasing positive sample counts, got {looks}")
    if pass_from not in looks:
        raise ValueError(f"pass_from={pass_from} is not one of the looks {looks}")
    last, first_pass = looks[-1], looks.index(pass_from)
    dist: Distribution = np.ones(1)
    fail_spent = pass_spent = 0.0
    price = 0.0  # c: P(E = 0 at pass_from) under p0, known once that look is reached
    fail_at: list[int | None] = []
    pass_at: list[int | None] = []
    for k, n in enumerate(looks):
        dist = _advance(dist, n - (looks[k - 1] if k else 0), p0)
        tail = np.cumsum(dist[::-1])[::-1]  # tail[e]: P(E >= e, not stopped before)
        fail_ok = np.flatnonzero(fail_spent + tail <= alpha_fail * n / last)
        fail = int(fail_ok[0]) if fail_ok.size else None
        pass_ = None
        if k >= first_pass:
            if k == first_pass:
                price = float(dist[0])
                if price > alpha_pass:
                    raise ValueError(
                        f"passing at n={pass_from} costs {price:.4f} > alpha_pass={alpha_pass}: use a later pass_from"
                    )
            share = (n - pass_from) / (last - pass_from) if last > pass_from else 1.0
            pass_ok = np.flatnonzero(pass_spent + np.cumsum(dist) <= price + (alpha_pass - price) * share)
            pass_ = int(pass_ok[-1]) if pass_ok.size else None
        # Stopped paths leave the distribution, so the next look spends only on paths still running.
        if fail is not None:
            fail_spent += float(tail[fail])
            dist[fail:] = 0.0
        if pass_ is not None:
            pass_spent += float(dist[: pass_ + 1].sum())
            dist[: pass_ + 1] = 0.0
        fail_at.append(fail)
        pass_at.append(pass_)
    borderline = tuple(_borderline(looks, fail_at, pass_at))
    return Design(tuple(looks), tuple(fail_at), tuple(pass_at), p0, alpha_fail, alpha_pass, pass_from, borderline)


def operating_characteristics(d: Design, p: float) -> OperatingCharacteristics:
    """Exact verdict probabilities and expected sample count when the true exceedance probability is p."""
    return characteristics_at(d, [p])[0]


def characteristics_at(d: Design, ps: Sequence[float]) -> list[OperatingCharacteristics]:
    """``operating_characteristics`` at each of ``ps``. The binomial increments of every look are taken
    for all of them in one call a look: a search over p (``worst_opposite_verdicts``, a check's account
    of its verdicts) spent nearly all its time in the per-call overhead, one call per look and p."""
    for p in ps:
        if not 0 <= p <= 1:
            raise ValueError(f"p must be in [0, 1], got {p}")
    column = np.asarray(ps, dtype=float)[:, None]
    steps = np.diff(d.looks, prepend=0)
    increments = [binomial.pmf(np.arange(step + 1), int(step), column) for step in steps]
    return [_characteristics(d, p, [rows[i] for rows in increments]) for i, p in enumerate(ps)]


def _characteristics(d: Design, p: float, increments: list[Distribution]) -> OperatingCharacteristics:
    """One p's characteristics, ``increments[k]`` the pmf of the exceedances between looks k - 1 and k."""
    dist: Distribution = np.ones(1)
    fail = pass_ = borderline = expected_n = early_fail = 0.0
    for k, n in enumerate(d.looks):
        dist = np.convolve(dist, increments[k])
        before = float(dist.sum())
        if (f := d.fail_at[k]) is not None:
            fail += float(dist[f:].sum())
            early_fail += float(dist[f:].sum()) if n < CONFIRM_BEFORE else 0.0
            dist[f:] = 0.0
        if (a := d.pass_at[k]) is not None:
            pass_ += float(dist[: a + 1].sum())
            dist[: a + 1] = 0.0
        if k == len(d.looks) - 1:
            borderline += float(dist.sum())
            dist[:] = 0.0
        elif d.borderline and (span := d.borderline[k]) is not None:
            borderline += float(dist[span[0] : span[1] + 1].sum())
            dist[span[0] : span[1] + 1] = 0.0
        expected_n += n * (before - float(dist.sum()))
    return OperatingCharacteristics(p, fail, pass_, borderline, expected_n, early_fail)


def with_confirmation(d: Design, p: float) -> OperatingCharacteristics:
    """Exact verdict probabilities of the test as ``ClassTest`` runs it: an early fail starts a second,
    independent test whose verdict stands. A fail then needs a late fail, or an early fail and then
    any fail; a pass or a borderline after an early fail comes from the second test."""
    once = operating_characteristics(d, p)
    again = once.early_fail
    return OperatingCharacteristics(
        p,
        fail=once.fail - again + again * once.fail,
        pass_=once.pass_ + again * once.pass_,
        borderline=once.borderline + again * once.borderline,
        expected_n=once.expected_n + again * once.expected_n,
        early_fail=again * once.early_fail,
    )


Step = Literal["pass", "fail", "continue", "borderline", "again"]


@dataclass
class ClassTest:
    """One user class's test as its samples arrive: the exceedances counted, the design's looks
    applied, and an early fail measured again ("again": the runner pauses, then samples on; the
    count starts from nothing). ``operating_characteristics`` / ``with_confirmation`` are its exact
    error rates; the runner and the tests drive this same object."""

    design: Design
    n: int = 0
    exceedances: int = 0
    refailed_at: int | None = None  # the n of the early fail that was measured again

    def add(self, over: bool) -> Step:
        self.n += 1
        self.exceedances += over
        if self.n not in self.design.looks:
            return "continue"
        decision = self.design.decide(self.n, self.exceedances)
        if decision == "fail" and self.n < CONFIRM_BEFORE and self.refailed_at is None:
            self.refailed_at, self.n, self.exceedances = self.n, 0, 0
            return "again"
        assert decision != "inconclusive", "only a budget makes a class inconclusive"
        return decision


def design_for_classes(
    k: int,
    p0: float = DEFAULT_P0,
    alpha_fail: float = DEFAULT_ALPHA,
    alpha_pass: float = DEFAULT_ALPHA,
    looks: tuple[int, ...] = DEFAULT_LOOKS,
    pass_from: int = DEFAULT_PASS_FROM,
) -> Design:
    """The design each of k user classes of one cell uses, so that the cell keeps alpha_fail and alpha_pass.

    Fail is Bonferroni-corrected (the cell fails if any class does); pass needs no correction (the
    cell passes only if all do). The per-class alpha_fail is what ``describe`` records: record k too.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return design(p0, alpha_fail / k, alpha_pass, looks, pass_from)


def combine(decisions: list[Decision]) -> Decision:
    """A cell's verdict from its classes' verdicts.

    A class still running keeps the cell running even when another class can no longer pass: it may
    still fail, and a fail is a verdict. Of the rest, a class the budget stopped makes the cell
    inconclusive (it was never allowed to decide), and a borderline class makes it borderline.
    """
    if not decisions:
        raise ValueError("combine needs at least one class decision")
    if "fail" in decisions:
        return "fail"
    if all(decision == "pass" for decision in decisions):
        return "pass"
    for undecided in ("continue", "inconclusive"):
        if undecided in decisions:
            return undecided
    return "borderline"


def opposite_verdicts(d: Design, p: float) -> float:
    """Exact chance that two independent measurements of one class, its true exceedance probability p,
    end in opposite verdicts (one pass, one fail): the verdict gate's false alarm when nothing changed."""
    return _opposite(operating_characteristics(d, p))


def _opposite(oc: OperatingCharacteristics) -> float:
    return 2 * oc.pass_ * oc.fail


def worst_opposite_verdicts(d: Design, grid: int = 400) -> tuple[float, float]:
    """The largest ``opposite_verdicts`` over p, and where: a fine grid over (0, 0.2], where both
    verdicts are possible (above it a pass is practically impossible), refined around its best point.
    A cell of k classes that passes only if all pass and fails if any fails flips at most k times this
    (its pass is at most any one class's; its fail at most the sum of the classes')."""
    step = 0.2 / grid
    # i * 0.2 / grid, not i * step: the grid's values as they always were, to the last bit
    best = max((_opposite(oc), oc.p) for oc in characteristics_at(d, [i * 0.2 / grid for i in range(1, grid + 1)]))
    around = [p for j in range(41) if 0 < (p := best[1] + step * (j / 20 - 1)) <= 1]
    return max([best, *((_opposite(oc), oc.p) for oc in characteristics_at(d, around))])


def timeout_false_fail(d: Design, p: float, q: float, extra: int) -> float:
    """A bound on what the statement timeout adds to a class's chance of failing: an execution cut
    off by it fails the class at once, whatever its count says. If each execution is cut off with
    probability q, independently of those before it, the chance that one is equals the sum over
    executions i of P(i runs) × q, that is q times the expected number of executions: the test's
    expected samples at p (``operating_characteristics``) plus ``extra``, those not counted there
    (warm-up and the EXPLAIN ANALYZE of the explained samples)."""
    if not (0 <= p <= 1 and 0 <= q <= 1):
        raise ValueError(f"p and q must be in [0, 1], got p={p} q={q}")
    return min(1.0, q * (operating_characteristics(d, p).expected_n + extra))
