"""Sharded runs: the matrix split by variant into N shares that are measured apart — one after
another on one machine (``taskbench run --shard i/N``), or at once on Neon branches that share no
CPU (``--parallel N``) — and merged into one run afterwards (``merge``).

Split by variant, never a variant across shards: a variant's indexes are built once per database
and its cells are measured together, interleaved. Each variant is measured on a fresh copy of the
seeded database (``runner``), so which shard measured a variant, and after which others, does not
change its cells' plans, buffers or verdicts.

The split is balanced by a previous run's durations (a variant's cell seconds plus its build
seconds): longest first, each onto the least-loaded shard. Every shard computes the split by itself
from the same inputs (catalogue, N, durations file), so it is deterministic: equal durations keep
catalogue order, and equal loads go to the lower shard.

Shards are never compared with each other by time: each one samples the calibration workload before
and after it measures and records it, with its own conditions, so a reader sees what each one
measured under.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import signal
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path

from bench import results as results_io
from bench.catalogue.files import Catalogue
from bench.errors import (
    EXIT_INTERRUPTED,
    DatabaseError,
    InputError,
    Interrupted,
    TaskbenchError,
    as_user_error,
)
from bench.measure.calibration import ITEMS, calibration_sample
from bench.measure.options import RunOptions
from bench.measure.runner import run_measurement
from bench.output import BASELINE_FILE
from bench.progress import Advance, no_progress
from bench.results import Calibration, Results, Shard
from bench.runs import matrix
from bench.targets.target import Target, connected

CALIBRATION_SAMPLES = 10  # per item, before and after: a few ms in all
STOP_WAIT_S = 60.0  # for a shard's process to clean up after SIGINT before it is killed


def parse_shard(raw: str) -> tuple[int, int]:
    """``"i/N"`` → (i, N), with 1 <= i <= N."""
    index, _, count = raw.partition("/")
    if not (index.isdigit() and count.isdigit()) or not 1 <= int(index) <= int(count):
        raise InputError(f"--shard takes i/N with 1 <= i <= N (e.g. 2/3), not {raw!r}")
    return int(index), int(count)


def catalogue_fingerprint(catalogue: Catalogue) -> str:
    """What makes two shards' catalogues the same: every scenario's SQL, parameters, kind and SLA,
    every variant's statements (extensions and policies), by name and in order, and the policy scope
    (which cells a variant with policies measures)."""
    content = {
        "scenarios": [
            [
                s.name,
                s.sql,
                s.params,
                s.kind,
                s.sla_class,
                s.sla_ms,
                *([s.orm.model_dump(mode="json")] if s.orm else []),
            ]
            for s in catalogue.scenarios
            # an ORM scenario's statements and binds too: its SQL alone does not say what each $n takes
        ],
        "variants": [[v.name, v.statements, v.extensions, v.policies] for v in catalogue.variants],
        "policy_scope": catalogue.policy_scope,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Weights:
    seconds: dict[str, float] | None  # variant → seconds; None: equal weights
    source: str  # what the weights are, in words (recorded in each shard)


def durations(catalogue: Catalogue, path: Path | None) -> Weights:
    """Each variant's seconds in a previous run (``path``, default the committed baseline when it
    exists): its cells' seconds for this catalogue's scenarios plus its build seconds. Equal weights
    when the run does not cover every variant: a partial weighting would balance nothing."""
    given = path is not None
    path = path or BASELINE_FILE
    if not given and not path.exists():
        return Weights(None, f"equal weights ({path} does not exist)")
    previous = results_io.load(path)
    scenarios = {s.name for s in catalogue.scenarios}
    seconds: dict[str, float] = {}
    for variant in catalogue.variants:
        cells = [c.seconds for c in previous.cells if c.variant == variant.name and c.scenario in scenarios]
        built = next((v.build_seconds for v in previous.variants if v.name == variant.name), None)
        if cells and built is not None and None not in cells:
            seconds[variant.name] = sum(s for s in cells if s is not None) + built
    missing = [v.name for v in catalogue.variants if v.name not in seconds]
    if missing:
        return Weights(None, f"equal weights ({path} has no durations for {', '.join(missing)})")
    return Weights(seconds, f"durations of run {previous.run_id} ({path})")


@dataclass(frozen=True)
class Split:
    """The whole matrix's split: what every shard computes alike."""

    count: int
    plan: dict[str, int]  # variant → shard, in catalogue order
    weights: str
    catalogue: str  # fingerprint

    def variants(self, index: int) -> list[str]:
        return [v for v, i in self.plan.items() if i == index]

    def share(self, catalogue: Catalogue, index: int) -> Catalogue:
        """The catalogue's part shard ``index`` measures: every scenario, its variants."""
        return catalogue.select([s.name for s in catalogue.scenarios], self.variants(index))

    def mark(self, index: int, calibration: Calibration) -> Shard:
        return Shard(
            index=index,
            count=self.count,
            plan=self.plan,
            catalogue=self.catalogue,
            weights=self.weights,
            calibration=calibration,
        )


def split(catalogue: Catalogue, count: int, weights: Weights) -> Split:
    """Longest first, each variant onto the least-loaded shard (ties: fewer variants, then the lower
    shard, so no shard is left empty even by variants that took no time)."""
    names = [v.name for v in catalogue.variants]
    if count > len(names):
        raise InputError(
            f"{count} shards need at least {count} variants, and this catalogue has {len(names)}: "
            "a variant is never split across shards"
        )
    seconds = weights.seconds or dict.fromkeys(names, 1.0)
    load = [0.0] * count
    members = [0] * count
    shard_of: dict[str, int] = {}
    for name in sorted(names, key=lambda n: -seconds[n]):  # sorted is stable: equal durations keep catalogue order
        lightest = min(range(count), key=lambda i: (load[i], members[i], i))
        load[lightest] += seconds[name]
        members[lightest] += 1
        shard_of[name] = lightest + 1
    return Split(
        count=count,
        plan={n: shard_of[n] for n in names},
        weights=weights.source,
        catalogue=catalogue_fingerprint(catalogue),
    )


def calibrate(target: Target, samples: int = CALIBRATION_SAMPLES) -> dict[str, list[float]]:
    """``samples`` of each calibration item on ``target``, in milliseconds."""

    async def take() -> list[dict[str, float]]:
        async with connected(target) as conn:
            return [await calibration_sample(conn) for _ in range(samples)]

    taken = run_measurement(take())
    return {item: [round(s[item], 4) for s in taken] for item in ITEMS}


def measure_shard(
    target: Target, catalogue: Catalogue, opts: RunOptions, plan: Split, index: int, advance: Advance = no_progress
) -> Results:
    """Shard ``index`` of ``plan``: its variants measured on ``target`` as any run, the calibration
    workload sampled just before and just after, the results marked with the shard."""
    before = calibrate(target)
    res = matrix.measure(target, plan.share(catalogue, index), opts, advance)
    after = calibrate(target)
    return res.model_copy(update={"shard": plan.mark(index, Calibration(before_ms=before, after_ms=after))})


# -- at once, one process per shard ----------------------------------------------------------------

_ERRORS: dict[int, type[TaskbenchError]] = {c.exit_code: c for c in (InputError, DatabaseError, Interrupted)}
Outcome = tuple[str, int, str]  # ("done", 0, results JSON) | ("error", exit code, message) | ("bug", 0, traceback)


def _shard_process(
    target: Target, catalogue: dict[str, object], opts: RunOptions, plan: Split, index: int, send: Connection
) -> None:
    """A shard's process: it measures and sends back its results, or what stopped it."""
    # A process group of its own: Ctrl-C at the terminal reaches the parent only, which passes exactly
    # one SIGINT on. A second one would cut the run's own clean-up short.
    os.setpgrp()
    outcome: Outcome
    try:
        res = measure_shard(target, Catalogue.model_validate(catalogue), opts, plan, index)
        outcome = ("done", 0, res.model_dump_json())
    except KeyboardInterrupt:
        outcome = ("error", EXIT_INTERRUPTED, "interrupted")
    except Exception as exc:  # noqa: BLE001 -- sent to the parent, which words it as any command does
        known = exc if isinstance(exc, TaskbenchError) else as_user_error(exc)
        outcome = ("error", known.exit_code, str(known)) if known else ("bug", 0, traceback.format_exc())
    send.send(outcome)


def _received(index: int, count: int, pipe: Connection, process: BaseProcess) -> Results:
    try:
        kind, code, body = pipe.recv()
    except EOFError:
        process.join()
        raise DatabaseError(
            f"shard {index}/{count}: its process ended without results (exit code {process.exitcode})"
        ) from None
    if kind == "done":
        return Results.model_validate_json(body)
    if kind == "error":
        raise _ERRORS.get(code, TaskbenchError)(f"shard {index}/{count}: {body}")
    raise RuntimeError(f"shard {index}/{count} failed:\n{body}")  # a bug: its traceback is what a report needs


def _stop(processes: dict[int, BaseProcess], pending: set[int]) -> None:
    """Interrupt the shards still measuring and wait for their clean-up (scratch copies dropped,
    measurement locks released); then the branches can go."""
    for index in pending:
        if (pid := processes[index].pid) is not None and processes[index].is_alive():
            os.kill(pid, signal.SIGINT)
    for index, process in processes.items():
        process.join(STOP_WAIT_S if index in pending else None)
        if process.is_alive():
            process.kill()
            process.join()


def measure_parallel(
    targets: list[Target], catalogue: Catalogue, opts: RunOptions, plan: Split, announce: Callable[[str], None]
) -> list[Results]:
    """Every shard of ``plan`` at once, shard i on ``targets[i - 1]``, each in a process of its own:
    separate processes share no interpreter lock, so one shard's Python work does not delay another's
    round trips (they still share the client machine's CPUs). One shard's failure or an interrupt
    stops the others; the results come back in shard order."""
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold threads and sockets
    processes: dict[int, BaseProcess] = {}
    pipes: dict[Connection, int] = {}
    pending: set[int] = set()
    done: dict[int, Results] = {}
    started = time.perf_counter()
    try:
        for index, target in enumerate(targets, 1):
            receive, send = context.Pipe(duplex=False)
            process = context.Process(
                target=_shard_process,
                name=f"taskbench shard {index}/{plan.count}",
                args=(target, catalogue.model_dump(mode="json"), opts, plan, index, send),
            )
            process.start()
            send.close()  # the child holds the sending end: its exit is the pipe's end
            processes[index], pipes[receive] = process, index
            pending.add(index)
            announce(f"shard {index}/{plan.count} ({', '.join(plan.variants(index))}) measuring on {target.display}")
        while pipes:
            for ready in wait(list(pipes)):
                assert isinstance(ready, Connection)  # wait() returns what it was given: the pipes
                index = pipes.pop(ready)
                done[index] = _received(index, plan.count, ready, processes[index])
                pending.discard(index)
                announce(
                    f"shard {index}/{plan.count}: {len(done[index].cells)} cells in "
                    f"{time.perf_counter() - started:.1f} s"
                )
    finally:
        _stop(processes, pending)
    return [done[i] for i in sorted(done)]
