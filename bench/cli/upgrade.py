"""``taskbench upgrade-check``: the same dataset, scenarios and variants on two PostgreSQL majors of the
embedded server, measured side by side, and what moving from one to the other changes."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Annotated

import typer

from bench.cli.app import command
from bench.cli.console import note, say, show
from bench.cli.gate import PAIR_OPTIONS, GithubAnnotations, MarkdownOut, gated, measuring_sides, timed, verdict
from bench.cli.matrix import reported
from bench.cli.options import REPORTS_DIR, Quiet, ReportsDir, Selected, measuring, option_group, profiled, selecting
from bench.cli.seeding import seed_into
from bench.cli.target_options import TARGET_OPTIONS
from bench.judge.options import UPGRADE_PAIRS, GateThresholds, TimeThresholds
from bench.measure.options import PairOptions, RunOptions
from bench.targets.majors import DEFAULT_PG_MAJOR, EMBEDDED_MAJORS, two_majors
from bench.targets.options import TargetSpec
from seed.profiles import Profile as DataProfile

FromMajor = Annotated[int, typer.Option("--from", help="The major production runs now (an embedded server's).")]
ToMajor = Annotated[int, typer.Option("--to", help="The major it moves to.")]
DbName = Annotated[str, TARGET_OPTIONS["db_name"][1]]
# the check's --pairs, with the upgrade check's own default: enough pairs for every p95's interval
upgrade_pairs = option_group("pairs", PAIR_OPTIONS, PairOptions, {"pairs": UPGRADE_PAIRS})


@command("upgrade-check")
@measuring()
@gated
@timed
@upgrade_pairs
@selecting()
@profiled()
def upgrade_check_cmd(
    *,
    prof: DataProfile,
    selected: Selected,
    from_major: FromMajor = EMBEDDED_MAJORS[0],
    to_major: ToMajor = DEFAULT_PG_MAJOR,
    db_name: DbName = TargetSpec.db_name,
    reports_dir: ReportsDir = REPORTS_DIR,
    markdown_out: MarkdownOut = None,
    github: GithubAnnotations = False,
    quiet: Quiet = False,
    time: TimeThresholds,
    pairs: PairOptions,
    gates: GateThresholds,
    opts: RunOptions,
) -> None:
    """The same dataset, scenarios and variants on two majors of the embedded PostgreSQL, side by side:
    plan changes, buffers, p95 ratios with intervals, verdicts. Exit 1 when a cell got slower (the
    check's time gate), its verdict went pass → fail, or a policy variant's isolation check failed on the
    new major."""
    from bench import results as results_io
    from bench.judge import upgrade
    from bench.judge.check import CheckThresholds
    from bench.report import upgrade as upgrade_text
    from bench.runs import sides
    from bench.targets.provision import seeded_home

    two_majors(from_major, to_major)  # refused before anything is seeded
    old_spec, new_spec = (TargetSpec(kind="embedded", db_name=db_name, pg_major=m) for m in (from_major, to_major))
    sides_opts = sides.SidesOptions(opts, sides.pairs_like(pairs, opts))
    with ExitStack() as servers:
        old, new = (
            servers.enter_context(seeded_home(spec, prof, lambda home: seed_into(show(home), prof, quiet), note))
            for spec in (old_spec, new_spec)
        )
        measure, confirm = measuring_sides(new, sides_opts, quiet, base_server=old)
        current, result = upgrade.upgrade_check(
            selected.catalogue, f"PostgreSQL {from_major}", measure, confirm, CheckThresholds(gates, time)
        )
    if current is not None:
        path = results_io.save(current, reports_dir)
        note(f"{len(current.cells)} cells → {path}")
        say(upgrade_text.terminal(current))
        reported(path)
        if markdown_out:
            with markdown_out.open("a", encoding="utf-8") as f:
                f.write("\n".join(upgrade_text.markdown(current)) + "\n\n")
    verdict(result, f"PostgreSQL {from_major}", f"PostgreSQL {to_major}", github, markdown_out)
