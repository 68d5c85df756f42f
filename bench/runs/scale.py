"""How cost grows with data: the chosen scenarios × variants at several tasks-per-user sizes, the
growth exponent of each cell, and the size at which it would cross its SLA.

Each size is a dataset of its own (database ``<db-name>_tpu<size>``, seeded once and reused like
any other) with every user at the same size, so the x axis is exactly "tasks per user". Each size
is measured by the ordinary run (``matrix``), so every sample is taken as in the matrix. With
every user the same size there is one user class; a crossing in tasks per user holds for any user,
so the report also says by when every power user is past it, by the protocol's class rule (more
than twice the median user's tasks: when the median user has half of it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from statistics import median

import numpy as np

from bench.catalogue.files import Catalogue
from bench.errors import InputError
from bench.measure.options import RunOptions
from bench.progress import Advance, no_progress
from bench.results import CROSSING_FAR, Cell, Results, ScaleConfig, ScaleFit, ScalePoint, ScaleResults
from bench.runs import matrix
from bench.runs.options import SCALE_MIN_SAMPLES, SCALE_SIZES, SCALE_USERS
from bench.targets.options import TargetSpec
from bench.targets.provision import for_dataset, measurement_target, seeded_home
from seed.profiles import Profile, get_profile

# Below this exponent a cell is taken as flat: it is not extrapolated to an SLA crossing.
FLAT = 0.1


def scale_profile(tasks_per_user: int, users: int = SCALE_USERS, seed: int | None = None) -> Profile:
    """Every user at the same size (no power users); few conversations, which do not scale here."""
    base = get_profile("ci", users=users, tasks_per_user=tasks_per_user, seed=seed)
    return replace(
        base, name="scale", power_user_factor=1, conversations_per_user=(2, 4), messages_per_conversation=(20, 60)
    )


def growth_exponent(sizes: Sequence[float], values: Sequence[float]) -> tuple[float, float]:
    """Least-squares slope of log(value) on log(size), and its R²: value ∝ size^exponent."""
    if len(sizes) < 2 or min(values) <= 0:
        return math.nan, math.nan
    from scipy import stats as sps  # ~0.7 s to import: not for every command that imports this module

    fit = sps.linregress(np.log(sizes), np.log(values))
    return float(fit.slope), float(fit.rvalue**2)


def sla_crossing(
    sizes: Sequence[float], p95: Sequence[float], sla_ms: float, p50: Sequence[float] | None = None
) -> tuple[float | None, str]:
    """The tasks-per-user size at which p95 reaches the SLA, and how it was found:

    - ``already``: above the SLA at the smallest size measured (the size returned is that one);
    - ``measured``: between two measured sizes, interpolated on log-log axes;
    - ``extrapolated``: beyond the largest size, from its p95 along the slope of the two largest
      sizes' p50 (the median is the steadier shape; the largest p95 sets the level; the last
      slope is the asymptotic one, where fixed costs no longer flatten it);
    - ``flat``: not growing (that slope or the overall one below ``FLAT``), no crossing to predict;
    - ``beyond``: growing, but it would cross beyond ``CROSSING_FAR`` times the largest size measured — too
      far out for a straight line on log-log axes to be trusted.
    """
    shape = p50 if p50 is not None else p95
    if len(sizes) < 2:
        raise ValueError("a crossing needs at least two sizes")
    if p95[0] > sla_ms:
        return float(sizes[0]), "already"
    for k in range(1, len(sizes)):
        if p95[k] > sla_ms:
            return _log_interpolate(sizes[k - 1], p95[k - 1], sizes[k], p95[k], sla_ms), "measured"
    slope = math.log(shape[-1] / shape[-2]) / math.log(sizes[-1] / sizes[-2])
    if slope < FLAT or growth_exponent(sizes, shape)[0] < FLAT:
        return None, "flat"
    crossing = sizes[-1] * (sla_ms / p95[-1]) ** (1 / slope)
    return (float(crossing), "extrapolated") if crossing <= CROSSING_FAR * sizes[-1] else (None, "beyond")


def _log_interpolate(n0: float, y0: float, n1: float, y1: float, y: float) -> float:
    t = (math.log(y) - math.log(y0)) / (math.log(y1) - math.log(y0))
    return float(math.exp(math.log(n0) + t * (math.log(n1) - math.log(n0))))


def _point(cell: Cell, size: int) -> ScalePoint:
    return ScalePoint(
        scenario=cell.scenario,
        variant=cell.variant,
        tasks_per_user=size,
        p50_ms=cell.client.p50.value,
        p95_ms=cell.client.p95.value,
        p99_ms=cell.client.p99.value,
        execution_p50_ms=cell.execution.p50.value if cell.execution else None,
        buffers=median(cell.samples.buffers) if cell.samples.buffers else None,
        verdict=cell.verdict,
        samples=len(cell.samples.client_ms),
    )


def fits(points: list[ScalePoint], sla: dict[str, float]) -> list[ScaleFit]:
    out = []
    for key in dict.fromkeys((p.scenario, p.variant) for p in points):
        series = sorted((p for p in points if (p.scenario, p.variant) == key), key=lambda p: p.tasks_per_user)
        sizes = [p.tasks_per_user for p in series]
        p50 = [p.p50_ms for p in series]
        exponent, r2 = growth_exponent(sizes, p50)
        counted = [p for p in series if p.buffers is not None]  # a point that timed out has none
        buffers_exponent, _ = growth_exponent(
            [p.tasks_per_user for p in counted], [max(p.buffers or 0.0, 1.0) for p in counted]
        )
        crossing, how = sla_crossing(sizes, [p.p95_ms for p in series], sla[key[0]], p50)
        out.append(
            ScaleFit(
                scenario=key[0],
                variant=key[1],
                sla_ms=sla[key[0]],
                exponent=exponent,
                r2=r2,
                buffers_exponent=buffers_exponent,
                crossing_tasks_per_user=crossing,
                crossing=how,
            )
        )
    return out


def _labelled(advance: Advance, label: str) -> Advance:
    return lambda phase, done, total: advance(label, done, total)


@dataclass(frozen=True)
class ScaleOptions:
    run: RunOptions = field(
        default_factory=lambda: RunOptions(cold_samples=0, stability_rounds=0, min_samples=SCALE_MIN_SAMPLES)
    )
    sizes: Sequence[int] = SCALE_SIZES  # tasks per user
    users: int = SCALE_USERS  # at every size


def measure(
    spec: TargetSpec,
    catalogue: Catalogue,
    opts: ScaleOptions = ScaleOptions(),
    advance: Advance = no_progress,
    announce: Callable[[str], None] = lambda message: None,
) -> Results:
    """Seed (or reuse) one dataset per size and run the catalogue on each; the results are the
    largest size's run with every size's points and the fits in ``scale``.

    Handed a ``TargetSpec``, not a ``Target`` as the other kinds of run are: each size is a dataset
    of its own, in a database (on Neon a parent branch) of its own, which it seeds when missing."""
    sizes, users = sorted(set(opts.sizes)), opts.users
    if len(sizes) < 2 or sizes[0] < 100:
        raise InputError("--sizes needs at least two sizes of 100 tasks per user or more")
    from seed.load import seed_database  # pyarrow and the generators: only when seeding

    # opts.run.min_samples (SCALE_MIN_SAMPLES by default) keeps sampling for the curves' estimates.
    points: list[ScalePoint] = []
    last: Results | None = None
    for i, size in enumerate(sizes):
        profile = scale_profile(size, users)
        at_size = for_dataset(replace(spec, db_name=f"{spec.db_name}_tpu{size}"), profile)
        with (
            seeded_home(at_size, profile, partial(seed_database, profile=profile, advance=advance), announce) as home,
            measurement_target(at_size, home, announce) as target,
        ):
            at = _labelled(advance, f"size {size:,} ({i + 1}/{len(sizes)})")
            last = matrix.measure(target, catalogue, opts.run, at)
        points.extend(_point(c, size) for c in last.cells)
    assert last is not None
    sla = {s.name: s.sla_ms for s in catalogue.scenarios}
    return last.model_copy(
        update={
            "config": ScaleConfig(**last.config.model_dump()),
            "scale": ScaleResults(users=users, sizes=sizes, points=points, fits=fits(points, sla)),
        }
    )


def render(res: Results) -> list[str]:
    """Each cell's growth exponent and where it crosses its SLA."""
    assert res.scale is not None, "a scale run has its scale section"
    lines = [f"{'scenario':24} {'variant':20} {'p50 ∝ n^b':>9} {'R²':>5}  crosses its SLA at (tasks/user)"]
    for f in res.scale.fits:
        lines.append(f"{f.scenario:24} {f.variant:20} {f.exponent:9.2f} {f.r2:5.2f}  {f.describe_crossing()}")
    return lines
