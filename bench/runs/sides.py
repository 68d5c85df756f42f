"""Both sides of a check, measured now on one server, in one job, under one measurement lock.

1. The base side's cells wherever they differ from the head's — the request (the SQL the server
   receives, its parameters, kind and SLA), the variant's indexes, or the schema (a base side built
   on a recorded DDL) — each variant on a fresh copy of the base side's database, exactly as a run
   measures (``runner``). A cell the same on both sides is the same measurement on the same data
   and server: the head's cell stands for both (``everything`` measures it twice: the gate proof's
   A/A checks do, to show what two measurements of one cell differ by).
2. The head's whole matrix, as ``taskbench run`` measures it.
3. Every cell both sides have, in pairs on two scratch copies (``paired``): the time gate's samples.

An upgrade check measures the base side on another server, of another major, holding the same
dataset (``base_server``): every cell is then the base side's own, both servers are held under
their measurement locks, and the pairs alternate between the two servers' copies.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field, replace

from bench.catalogue.files import Catalogue
from bench.errors import InputError
from bench.measure.lock import measurement_lock
from bench.measure.options import PairOptions, RunOptions
from bench.measure.paired import base_copy, pair_up, pairs_unlocked
from bench.measure.runner import measure_jobs, measure_unlocked, prepared
from bench.progress import Advance, no_progress
from bench.results import Cell, Results
from bench.targets.schema import seeded_dataset
from bench.targets.target import Target, scratch_copy


@dataclass(frozen=True)
class SidesOptions:
    run: RunOptions = field(default_factory=RunOptions)  # how each side's cells are measured
    pairs: PairOptions = field(default_factory=PairOptions)  # and the pairs (``pairs_like``)
    everything: bool = False  # measure the cells that are the same on both sides twice too


def pairs_like(pairs: PairOptions, run: RunOptions) -> PairOptions:
    """``pairs`` measured with the run's seed, statement timeout, plan-cache behaviour and measurement
    lock settings: a check takes them once, for both its parts."""
    return replace(
        pairs,
        seed=run.seed,
        concurrent=run.concurrent,
        lock_wait=run.lock_wait,
        timeout_factor=run.timeout_factor,
        plan_cache=run.plan_cache,
    )


def _same_dataset(head: Target, base: Target) -> None:
    """Two servers hold the same dataset, or an upgrade check has nothing to compare."""
    head_set, base_set = seeded_dataset(head), seeded_dataset(base)
    if head_set.fingerprint != base_set.fingerprint:
        raise InputError(
            f"the two servers hold other datasets ({base_set.fingerprint} and {head_set.fingerprint}): seed "
            "the same profile on both"
        )


def measure(
    seeded: Target,
    before: Catalogue,
    after: Catalogue,
    opts: SidesOptions = SidesOptions(),
    advance: Advance = no_progress,
    base_schema: str | None = None,
    base_server: Target | None = None,
) -> Results:
    """The head's run, its ``side_by_side`` holding the base side's own cells and the pairs.
    Two catalogues, not one, unlike the other kinds of run: the base's and the head's.
    ``base_schema``: the DDL the base side's tables are built from when it is not the models' own;
    ``base_server``: the base side's seeded database when it is on another server than ``seeded``."""
    run_opts, pair_opts = opts.run, opts.pairs
    pairing = pair_up(before, after)
    ready = prepared(seeded, after)  # a mistake in the head's files stops it before any lock or copy
    dataset = ready[0]
    base_seeded, base_env = seeded, None
    if base_server is not None:
        _same_dataset(seeded, base_server)
        base_seeded, base_env = base_server, prepared(base_server, before)[1]
    with ExitStack() as held:
        measuring = held.enter_context(measurement_lock(seeded, "check", run_opts.concurrent, run_opts.lock_wait))
        if base_server is not None:
            held.enter_context(measurement_lock(base_server, "check", run_opts.concurrent, run_opts.lock_wait))
        # Both copies at once, before anything is measured: the same pages and statistics on both sides
        # (an autovacuum ANALYZE of the seeded database in between would give the two sides' planners
        # different samples, and a query whose ORDER BY leaves ties other rows).
        with base_copy(base_seeded, base_schema) as (base_db, rebuilt), scratch_copy(seeded, "head") as head_db:
            jobs = pairing.differing(opts.everything or rebuilt is not None or base_server is not None)
            base_cells: list[Cell] = []
            if jobs:
                names = list(dict.fromkeys(s.name for _, scenarios in jobs for s in scenarios))
                own = before.select(names, [v.name for v, _ in jobs])
                _, _, pools = prepared(base_db, own, dataset)
                base_cells = measure_jobs(base_db, jobs, run_opts, pools, advance)
            head = measure_unlocked(head_db, after, run_opts, ready, advance)
            sbs = pairs_unlocked(base_db, head_db, pairing, dataset.anchor_date, pair_opts, advance)
        conditions = measuring.finish()
    sbs = sbs.model_copy(
        update={"base_cells": base_cells, "gone": pairing.gone, "rebuilt_schema": rebuilt, "base_environment": base_env}
    )
    return head.model_copy(update={"conditions": conditions, "side_by_side": sbs, "connection": seeded.probe})
