"""Shards' results merged into one run that ``report``, ``compare`` and ``check`` read like any other
(``taskbench merge``, and ``run --parallel`` after its shards).

Shards belong together when they measured the same dataset with the same catalogue, protocol and
settings on the same PostgreSQL major and planner settings, under one split; and every shard of
that split is there, once. Anything else is refused in one line naming what differs (exit 2): a
merge that quietly mixed two catalogues would be a run that never happened.

The merged run holds the cells and variants in catalogue order, so for the same measurements its
deterministic content (cells, plans, buffers, verdicts) is the same whatever the number of shards.
What is a shard's own — its target, machine, conditions, connection and calibration — is kept per
shard (``shards``), never blended: shards are not compared with each other by time.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench.errors import InputError
from bench.results import Results, Shard, ShardRun, new_run_id


def _differing(a: dict[str, Any], b: dict[str, Any]) -> str:
    keys = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
    return ", ".join(f"{k} differ" if isinstance(a.get(k), dict) else f"{k} {a.get(k)} → {b.get(k)}" for k in keys)


def _measuring(res: Results) -> dict[str, Any]:
    """The protocol and the run's settings, flat: what decides how every cell was sampled."""
    protocol = res.protocol.model_dump() if res.protocol else {}
    return {**protocol, **res.config.model_dump()}


# What shards must share: (what, the value, how a difference is shown).
_SAME: list[tuple[str, Callable[[Results], Any], Callable[[Any, Any], str]]] = [
    ("shard counts", lambda r: r.shard.count if r.shard else 0, lambda a, b: f"{a} and {b}"),
    ("datasets", lambda r: r.dataset.fingerprint, lambda a, b: f"{a} and {b}"),
    (
        "catalogues",
        lambda r: r.shard.catalogue if r.shard else "",
        lambda a, b: f"{a} and {b} (scenario or variant files changed between them)",
    ),
    ("protocols or measuring settings", _measuring, _differing),
    ("PostgreSQL majors", lambda r: r.environment.server_major, lambda a, b: f"{a} and {b}"),
    ("planner settings", lambda r: r.environment.settings, _differing),
    ("schemas (the models' DDL)", lambda r: r.schema_ddl, lambda a, b: "see each file's schema_ddl"),
    (
        "splits",
        lambda r: r.shard.plan if r.shard else {},
        lambda a, b: _differing(a, b) + " (variant → shard; different --durations?)",
    ),
]


def _name(source: str, shard: Shard) -> str:
    return f"{source} (shard {shard.index}/{shard.count})"


def check_shards(runs: list[tuple[str, Results]]) -> list[Shard]:
    """Refuse, in one line, shards that do not make one run together; their markings otherwise."""
    if not runs:
        raise InputError("cannot merge: no shards given")
    shards = []
    for source, res in runs:
        if res.shard is None:
            raise InputError(f"cannot merge {source}: not a shard's results (measured without --shard)")
        shards.append(res.shard)
    (first_source, first), first_shard = runs[0], shards[0]
    for what, value, shown in _SAME:
        for (source, res), shard in zip(runs[1:], shards[1:], strict=True):
            if value(res) != value(first):
                raise InputError(
                    f"cannot merge: different {what}: {_name(first_source, first_shard)} and "
                    f"{_name(source, shard)}: {shown(value(first), value(res))}"
                )
    count = first_shard.count
    twice = [i for i, n in sorted(Counter(s.index for s in shards).items()) if n > 1]
    if twice:
        sources = [source for (source, _), shard in zip(runs, shards, strict=True) if shard.index == twice[0]]
        raise InputError(f"cannot merge: shard {twice[0]}/{count} given twice: {' and '.join(sources)}")
    missing = sorted(set(range(1, count + 1)) - {s.index for s in shards})
    if missing:
        raise InputError(
            f"cannot merge: shard{'s' if len(missing) > 1 else ''} "
            f"{', '.join(f'{i}/{count}' for i in missing)} missing "
            f"(given: {', '.join(f'{s.index}/{count}' for s in sorted(shards, key=lambda s: s.index))})"
        )
    return shards


def merge(runs: list[tuple[str, Results]]) -> Results:
    """One run from every shard of a split (``runs``: where each came from, and its results)."""
    check_shards(runs)
    ordered = sorted((res for _, res in runs), key=lambda r: r.shard.index if r.shard else 0)
    first = ordered[0]
    assert first.shard is not None
    variant_at = {v: i for i, v in enumerate(first.shard.plan)}
    scenario_at = {s: i for i, s in enumerate(dict.fromkeys(c.scenario for c in first.cells))}
    phases: Counter[str] = Counter()
    for res in ordered:
        phases.update(res.phase_seconds)
    targets = list(dict.fromkeys(res.environment.target for res in ordered))
    return Results(
        run_id=new_run_id(),
        created_at=datetime.now(UTC),
        environment=first.environment.model_copy(update={"target": "; ".join(targets)}),
        dataset=first.dataset,
        config=first.config,
        protocol=first.protocol,
        cold_cache=first.cold_cache,
        variants=sorted((v for res in ordered for v in res.variants), key=lambda v: variant_at[v.name]),
        cells=sorted(
            (c for res in ordered for c in res.cells), key=lambda c: (variant_at[c.variant], scenario_at[c.scenario])
        ),
        phase_seconds={phase: round(seconds, 3) for phase, seconds in phases.items()},
        schema_ddl=first.schema_ddl,
        shards=[
            ShardRun(
                shard=res.shard,
                run_id=res.run_id,
                created_at=res.created_at,
                target=res.environment.target,
                machine=res.environment.machine,
                conditions=res.conditions,
                connection=res.connection,
                phase_seconds=res.phase_seconds,
            )
            for res in ordered
            if res.shard is not None
        ],
    )
