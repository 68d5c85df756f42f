"""Every CLI default is the library's: each option's default, read from the typer app itself, equals
the dataclass field or module constant it stands for, so no default is written twice. An option
added without an entry here fails the test, which says where to declare it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import typer.main

from bench import output
from bench.advise.options import AdviseOptions, Objective
from bench.catalogue import options as catalogue
from bench.cli.app import app
from bench.judge.options import UPGRADE_PAIRS, GateThresholds, TimeThresholds
from bench.measure.options import PairOptions, RunOptions
from bench.runs import options as runs
from bench.targets.majors import DEFAULT_PG_MAJOR, EMBEDDED_MAJORS
from bench.targets.options import KEEP_PARENTS, NeonSettings, TargetSpec
from seed.profiles import DEFAULT_PROFILE, Profile

# Option (parameter name) → the library default it takes, the same in every command that has it.
LIBRARY: dict[str, Any] = {
    # where PostgreSQL comes from
    "target": TargetSpec.kind,
    "database_url": TargetSpec.database_url,
    "db_name": TargetSpec.db_name,
    "data_dir": TargetSpec.data_dir,
    "force": TargetSpec.force,
    "pg_major": TargetSpec.pg_major,
    "neon_parent": NeonSettings.parent,
    "neon_branch": NeonSettings.branch,
    "neon_compute": NeonSettings.compute_cu,
    "neon_max_compute": NeonSettings.max_compute_cu,
    "neon_suspend": NeonSettings.suspend_timeout,
    "pooled": NeonSettings.pooled,
    "keep_branch": NeonSettings.keep_branch,
    "neon_expiry": NeonSettings.expiry_hours,
    "neon_max_branches": NeonSettings.max_branches,
    "neon_max_active": NeonSettings.max_active_computes,
    "neon_api_url": NeonSettings.api_url,
    # how a run measures
    "explain_samples": RunOptions.explain_samples,
    "cell_budget": RunOptions.cell_budget,
    "cold_samples": RunOptions.cold_samples,
    "stability_rounds": RunOptions.stability_rounds,
    "timeout_factor": RunOptions.timeout_factor,
    "share": RunOptions.share,
    "plan_cache": RunOptions.plan_cache,
    "concurrent": RunOptions.concurrent,
    "lock_wait": RunOptions.lock_wait,
    # the gates
    "buffer_tolerance": GateThresholds.buffer_tolerance,
    "misestimate_growth": GateThresholds.misestimate_growth,
    "misestimate_floor": GateThresholds.misestimate_floor,
    "rows_removed_growth": GateThresholds.rows_removed_growth,
    "factor": TimeThresholds.factor,
    "alpha": TimeThresholds.alpha,
    "floor_ms": TimeThresholds.floor_ms,
    "pairs": PairOptions.pairs,
    # data, catalogue, where results go
    "profile": DEFAULT_PROFILE,
    "generate": Profile.generator,
    "scenarios_dir": catalogue.DEFAULT_DIR,
    "driver": catalogue.DEFAULT_DRIVER,
    "policy_scope": catalogue.DEFAULT_POLICY_SCOPE,
    "reports_dir": output.REPORTS_DIR,
}

# Where one command's option means something else, or has a default of its own.
PER_COMMAND: dict[tuple[str, str], Any] = {
    ("check", "reports_dir"): output.CHECK_DIR,
    ("run", "profile"): None,  # run measures whichever dataset is seeded unless told which it must be
    ("baseline save", "to"): output.BASELINE_FILE,
    ("scale", "users"): runs.SCALE_USERS,
    ("neon parents", "keep"): KEEP_PARENTS,
    ("scale", "min_samples"): runs.SCALE_MIN_SAMPLES,
    ("scale", "sizes"): ",".join(f"{n // 1000}k" for n in runs.SCALE_SIZES),
    ("load", "variant"): runs.LOAD_VARIANT,
    **{
        ("load", name): getattr(runs.LoadOptions, name)
        for name in ("clients", "duration", "rate", "jobs", "pgbench_rounds", "concurrent", "lock_wait")
    },
    ("validate", "variant"): runs.CROSSCHECK_VARIANT,
    ("validate", "transactions"): runs.CROSSCHECK_TRANSACTIONS,
    ("advise", "headroom"): AdviseOptions.headroom,
    ("advise", "max_builds"): AdviseOptions.max_builds,
    ("advise", "screen_per_scenario"): AdviseOptions.screen_per_scenario,
    ("advise", "time_budget_s"): AdviseOptions.time_budget_s,
    ("advise", "hypopg"): AdviseOptions.hypopg,
    ("advise", "deploy"): AdviseOptions.deploy,
    ("advise", "concurrent"): AdviseOptions.concurrent,
    ("advise", "target_tasks_per_user"): AdviseOptions.target_tasks_per_user,
    ("advise", "growth_from"): AdviseOptions.growth_from,
    ("advise", "down_revision"): AdviseOptions.down_revision,
    ("advise", "policy"): AdviseOptions.policy,
    ("advise", "per_mb"): Objective.per_mb,
    ("advise", "per_wal_byte"): Objective.per_wal_byte,
    ("advise", "per_write_ms"): Objective.per_write_ms,
    ("advise", "per_build_s"): Objective.per_build_s,
    # Only the CLI has these, each written once: the benchmark of the seeder takes its rounds from the command.
    ("seed-bench", "rounds"): 3,
    ("seed-bench", "server_side"): False,
    ("upgrade-check", "pairs"): UPGRADE_PAIRS,  # enough pairs for each p95's interval
    ("upgrade-check", "from_major"): EMBEDDED_MAJORS[0],
    ("upgrade-check", "to_major"): DEFAULT_PG_MAJOR,
}

# Options with no library counterpart, whose default says "nothing asked": None (keep the profile's
# value, every scenario, no file, the environment's), off, empty, or one share (not sharded).
NOTHING_ASKED: dict[str, Any] = {
    **dict.fromkeys(
        (
            "users",
            "tasks_per_user",
            "seed",
            "scenario",
            "variant",
            "mix",
            "markdown_out",
            "before",
            "before_ref",
            "baseline",
            "shard",
            "durations",
            "out_dir",
            "neon_project",
        ),
        None,
    ),
    **dict.fromkeys(("github", "quiet", "reload", "write_variant", "measure_unchanged"), False),
    "reason": "",
    "parallel": 1,
    "remove_old": False,  # neon parents: removes nothing unless asked
}


def _commands() -> Iterator[tuple[str, Any]]:
    def walk(command: Any, prefix: str) -> Iterator[tuple[str, Any]]:
        subcommands = getattr(command, "commands", None)
        if subcommands:
            for name, sub in subcommands.items():
                yield from walk(sub, f"{prefix} {name}".strip())
        else:
            yield prefix, command

    yield from walk(typer.main.get_command(app), "")


OPTIONS = [
    (name, param) for name, command in _commands() for param in command.params if param.param_type_name == "option"
]


def test_every_command_is_seen():
    assert {name for name, _ in _commands()} >= {
        "seed",
        "seed-bench",
        "run",
        "compare",
        "check",
        "bench",
        "scale",
        "load",
        "validate",
        "advise",
        "baseline save",
        "report",
    }


@pytest.mark.parametrize(("command", "param"), OPTIONS, ids=[f"{c}:{p.name}" for c, p in OPTIONS])
def test_the_cli_default_is_the_librarys(command, param):
    key = (command, param.name)
    if key in PER_COMMAND:
        expected = PER_COMMAND[key]
    elif param.name in LIBRARY:
        expected = LIBRARY[param.name]
    else:
        assert param.name in NOTHING_ASKED, (
            f"{command} --{param.name.replace('_', '-')}: declare where its default comes from in "
            "tests/test_cli_defaults.py (LIBRARY or PER_COMMAND), taking it from the library, not a literal"
        )
        expected = NOTHING_ASKED[param.name]
    assert (type(param.default), param.default) == (type(expected), expected), (
        f"{command} --{param.name}: CLI {param.default!r}, library {expected!r}"
    )
