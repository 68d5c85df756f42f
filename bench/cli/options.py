"""Options several commands take, declared once: single options as ``Annotated`` types, and groups
of them that a command receives built into one value (``option_group``)."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from bench import output
from bench.catalogue import options as catalogue
from bench.measure.options import MIN_TIMEOUT_MS, RunOptions
from seed.profiles import DEFAULT_PROFILE, get_profile
from seed.profiles import Profile as DataProfile

if TYPE_CHECKING:
    from bench.catalogue.files import Catalogue

Command = Callable[..., Any]


def option_group(
    param: str, options: dict[str, Any], build: Callable[..., Any], defaults: Mapping[str, Any] | None = None
) -> Callable[[Command], Command]:
    """A decorator: the command's parameter ``param`` becomes the options ``options`` (name →
    ``Annotated`` type), listed by --help where the parameter stands; the command receives them built
    into one value by ``build``. A default is ``defaults[name]``, else ``build``'s own attribute of
    that name (a dataclass's field default): the library's defaults, never a copy of them."""
    given = defaults or {}

    def decorate(fn: Command) -> Command:
        signature = inspect.signature(fn, eval_str=True)
        extra = [
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=given[name] if name in given else getattr(build, name),
                annotation=option,
            )
            for name, option in options.items()
        ]

        @functools.wraps(fn)
        def with_value(*args: Any, **kwargs: Any) -> Any:
            value = build(**{name: kwargs.pop(name) for name in options})
            return fn(*args, **{param: value}, **kwargs)

        # typer passes every parameter by name: all keyword-only, the group spliced in at its place
        spliced = [
            q
            for p in signature.parameters.values()
            for q in (extra if p.name == param else [p.replace(kind=p.KEYWORD_ONLY)])
        ]
        with_value.__signature__ = signature.replace(parameters=spliced)  # type: ignore[attr-defined]
        with_value.__annotations__ = {k: v for k, v in fn.__annotations__.items() if k != param}
        return with_value

    return decorate


PROFILE = typer.Option("--profile", help="Data profile: ci, default or large.")
Profile = Annotated[str, PROFILE]
Users = Annotated[int | None, typer.Option("--users", help="Override the profile's number of users.")]
TasksPerUser = Annotated[int | None, typer.Option("--tasks-per-user", help="Override tasks per (ordinary) user.")]
Seed = Annotated[int | None, typer.Option("--seed", help="Override the profile's random seed.")]
Generate = Annotated[
    str,
    typer.Option(
        "--generate", help="Where rows are made: client (streamed binary COPY) or server (SQL; for slow links)."
    ),
]
ScenariosDir = Annotated[Path, typer.Option("--scenarios-dir", help="Directory of sla.toml, queries/, variants/.")]
Only = Annotated[list[str] | None, typer.Option("--scenario", "-s", help="Run only this scenario (repeatable).")]
OnlyVariant = Annotated[list[str] | None, typer.Option("--variant", "-v", help="Run only this variant (repeatable).")]
Driver = Annotated[
    str,
    typer.Option(
        "--driver",
        help="The app's driver, whose SQLAlchemy dialect compiles the Python (ORM) scenario files: asyncpg or psycopg.",
    ),
]
PolicyScopeOpt = Annotated[
    str,
    typer.Option(
        "--policy-scope",
        help="Under a variant with row-level security policies, measure the scenarios relying on them "
        "(relying: each against its explicit twin, isolation checked) or every scenario (all: also what "
        "the policies add to queries that keep their own user filter; a policy variant can then be "
        "recommended).",
    ),
]
ExplainN = Annotated[
    int,
    typer.Option(
        "--explain-samples",
        min=1,
        help="Samples per cell that also run EXPLAIN (ANALYZE, BUFFERS): the first K, "
        "with the same parameter sets in every run.",
    ),
]
CellBudget = Annotated[
    float,
    typer.Option(
        "--cell-budget",
        min=0.0,
        help="Seconds of measuring per cell, counted once every class has had the samples a pass needs; "
        "a cell still undecided then is inconclusive.",
    ),
]
TimeoutFactor = Annotated[
    float,
    typer.Option(
        "--timeout-factor",
        min=1.0,
        help=f"Each cell's statement timeout, in times its SLA (at least {MIN_TIMEOUT_MS} ms): an execution cut "
        "off by it fails the cell at once.",
    ),
]
Share = Annotated[
    bool,
    typer.Option(
        "--share/--no-share",
        help="A cell whose plans and used indexes are a measured cell's (same scenario) shares its samples "
        "instead of being measured again, and an isolation check that finished stands for every variant "
        "with the same policies.",
    ),
]
PlanCacheOption = Annotated[
    str,
    typer.Option(
        "--plan-cache",
        help="How the samples' prepared statements are planned: driver (as asyncpg reuses them: PostgreSQL may "
        "switch to the generic plan from the sixth execution), custom (every execution planned for its values, "
        "as behind a transaction pooler) or generic.",
    ),
]
Concurrent = Annotated[
    bool,
    typer.Option("--concurrent", help="Measure even while another measurement holds this server (the results say so)."),
]
LockWait = Annotated[
    float,
    typer.Option("--lock-wait", min=0.0, help="Seconds to wait for another measurement on this server to finish."),
]
ColdN = Annotated[int, typer.Option("--cold-samples", min=0, help="Cold-cache executions per cell (0: no cold pass).")]
StabilityN = Annotated[
    int, typer.Option("--stability-rounds", min=0, help="Re-ANALYZEs in the plan-stability check (0: skip).")
]
# Checked as the command line is read, before any work (output.require_writable): measuring for
# minutes into a directory that cannot take the results would lose them.
ReportsDir = Annotated[
    Path,
    typer.Option("--reports-dir", help="Where run directories are written.", callback=output.require_writable),
]
REPORTS_DIR = output.REPORTS_DIR
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output; a run says one summary line.")]


# How a command that measures measures: declared once, defaults from RunOptions.
_RUN_OPTIONS: dict[str, Any] = {
    "explain_samples": ExplainN,
    "cell_budget": CellBudget,
    "cold_samples": ColdN,
    "stability_rounds": StabilityN,
    "timeout_factor": TimeoutFactor,
    "share": Share,
    "plan_cache": PlanCacheOption,
    "concurrent": Concurrent,
    "lock_wait": LockWait,
}


def measuring(*names: str, **fixed: Any) -> Callable[[Command], Command]:
    """Give a command RunOptions' options (``names``, or all of them) as its parameter ``opts:
    RunOptions``, with ``fixed`` settings for those it does not offer."""
    chosen = {name: _RUN_OPTIONS[name] for name in names or _RUN_OPTIONS}
    return option_group("opts", chosen, lambda **given: RunOptions(**fixed, **given), vars(RunOptions))


@dataclass(frozen=True)
class Selected:
    """The catalogue a command works on: the files of --scenarios-dir, and those of its scenarios and
    variants that --scenario and --variant chose."""

    scenarios_dir: Path
    whole: Catalogue  # every scenario and variant the directory holds
    catalogue: Catalogue  # the chosen ones
    narrowed: bool  # --scenario or --variant chose (else the command's own choice, or everything)


_SELECT_OPTIONS: dict[str, Any] = {
    "scenarios_dir": ScenariosDir,
    "scenario": Only,
    "variant": OnlyVariant,
    "driver": Driver,
    "policy_scope": PolicyScopeOpt,
}
_SELECT_DEFAULTS: dict[str, Any] = {
    "scenarios_dir": catalogue.DEFAULT_DIR,
    "scenario": None,
    "variant": None,
    "driver": catalogue.DEFAULT_DRIVER,
    "policy_scope": catalogue.DEFAULT_POLICY_SCOPE,
}


def selecting(*names: str, scenarios: Sequence[str] = (), variants: Sequence[str] = ()) -> Callable[[Command], Command]:
    """Give a command the catalogue options (``names``, or all of them) as its parameter ``selected:
    Selected``: the directory read as the command line is (a bad file fails before any work), narrowed
    to the scenarios and variants given, else to ``scenarios`` and ``variants`` (empty: all)."""
    chosen = {name: _SELECT_OPTIONS[name] for name in names or _SELECT_OPTIONS}

    def build(
        scenarios_dir: Path,
        scenario: list[str] | None = None,
        variant: list[str] | None = None,
        driver: str = catalogue.DEFAULT_DRIVER,
        policy_scope: str = catalogue.DEFAULT_POLICY_SCOPE,
    ) -> Selected:
        from bench.catalogue.files import driver as checked
        from bench.catalogue.files import load_catalogue
        from bench.catalogue.files import policy_scope as scope

        whole = load_catalogue(scenarios_dir, driver=checked(driver), policy_scope=scope(policy_scope))
        picked = whole.select(scenario or list(scenarios), variant or list(variants))
        return Selected(scenarios_dir, whole, picked, bool(scenario or variant))

    return option_group("selected", chosen, build, _SELECT_DEFAULTS)


# The dataset to seed: a profile and the overrides of its knobs, declared once.
_DATASET_OPTIONS: dict[str, Any] = {
    "profile": Profile,
    "users": Users,
    "tasks_per_user": TasksPerUser,
    "seed": Seed,
    "generate": Generate,
}
_DATASET_DEFAULTS: dict[str, Any] = {
    "profile": DEFAULT_PROFILE,
    "users": None,
    "tasks_per_user": None,
    "seed": None,
    "generate": DataProfile.generator,
}


def profiled(*names: str) -> Callable[[Command], Command]:
    """Give a command the dataset options (``names``, or all of them) as its parameter ``prof``: the
    named profile with the knobs given (an unknown profile or a bad value: one line, before any work)."""
    chosen = {name: _DATASET_OPTIONS[name] for name in names or _DATASET_OPTIONS}

    def build(
        profile: str,
        users: int | None = None,
        tasks_per_user: int | None = None,
        seed: int | None = None,
        generate: str | None = None,
    ) -> DataProfile:
        return get_profile(profile, users=users, tasks_per_user=tasks_per_user, seed=seed, generator=generate)

    return option_group("prof", chosen, build, _DATASET_DEFAULTS)
