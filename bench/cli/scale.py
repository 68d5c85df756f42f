"""``taskbench scale``: chosen cells at several tasks-per-user sizes, their growth and SLA crossings."""

from __future__ import annotations

from dataclasses import replace
from typing import Annotated

import typer

from bench.cli.app import command
from bench.cli.console import note, say
from bench.cli.matrix import reported
from bench.cli.options import REPORTS_DIR, Quiet, ReportsDir, Selected, measuring, selecting
from bench.cli.target_options import targeted
from bench.errors import InputError
from bench.measure.options import RunOptions
from bench.progress import progress
from bench.runs.options import SCALE_MIN_SAMPLES, SCALE_SCENARIOS, SCALE_SIZES, SCALE_USERS, SCALE_VARIANTS
from bench.targets.options import TargetSpec


def _size_text(tasks_per_user: int) -> str:
    """1000 as 1k: how --sizes is written."""
    return f"{tasks_per_user // 1000}k" if tasks_per_user % 1000 == 0 else str(tasks_per_user)


def _sizes(raw: str) -> list[int]:
    try:
        return [
            int(float(v[:-1]) * 1000) if v.lower().endswith("k") else int(v) for v in raw.replace(" ", "").split(",")
        ]
    except ValueError:
        raise InputError(f"--sizes must be tasks-per-user counts like 1k,10k,50k,100k, not {raw!r}") from None


Sizes = Annotated[str, typer.Option("--sizes", help="Tasks per user at each size.")]
SIZES = ",".join(map(_size_text, SCALE_SIZES))
SizeUsers = Annotated[int, typer.Option("--users", min=1, help="Users at every size.")]
MinSamples = Annotated[
    int,
    typer.Option(
        "--min-samples", min=0, help="Samples per user class at each size, taken for the curves even once decided."
    ),
]


@command("scale")
@targeted
@measuring(
    "explain_samples", "cell_budget", "timeout_factor", "concurrent", "lock_wait", cold_samples=0, stability_rounds=0
)
@selecting(scenarios=SCALE_SCENARIOS, variants=SCALE_VARIANTS)
def scale_cmd(
    *,
    selected: Selected,
    sizes: Sizes = SIZES,
    users: SizeUsers = SCALE_USERS,
    min_samples: MinSamples = SCALE_MIN_SAMPLES,
    reports_dir: ReportsDir = REPORTS_DIR,
    quiet: Quiet = False,
    opts: RunOptions,
    spec: TargetSpec,
) -> None:
    """Chosen scenarios × variants at several data sizes: growth exponents and SLA crossings."""
    from bench import results as results_io
    from bench.runs import scale

    cat = selected.catalogue
    options = scale.ScaleOptions(replace(opts, min_samples=min_samples), _sizes(sizes), users)
    with progress(not quiet, unit="cells", units={"seed": "rows"}) as advance:
        res = scale.measure(spec, cat, options, advance, note)
    path = results_io.save(res, reports_dir)
    say(scale.render(res))
    reported(path)
