"""PostgreSQL 17 beside 18 on the embedded target: each major from its wheel with a data directory of
its own, what a run records of its server, and the upgrade check that measures both side by side.
The tests marked pg17 run on the real PostgreSQL 17 (seed, run, check, upgrade check) and skip, saying
why, where its wheel does not install; the rest need no server."""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import binom

from bench import results as results_io
from bench.errors import InputError
from bench.judge.check import Before, CheckThresholds, check
from bench.judge.gates import Finding, Kind
from bench.judge.stats import quantile_ci
from bench.judge.upgrade import (
    P95_CONFIDENCE,
    RATIO_CONFIDENCE,
    RATIO_PAIRS,
    SKIP_SCAN,
    decisive,
    index_use,
    is_upgrade,
    old_run,
    p95_ratio,
    plan_traits,
    unstable_on,
    upgrade_cells,
    upgrade_check,
)
from bench.measure.options import PairOptions, RunOptions
from bench.measure.paired import side_by_side
from bench.report import upgrade as upgrade_text
from bench.report.build import write_report
from bench.results import SCHEMA_VERSION, Cell, NodeFacts, PlanFacts, Results, Stability, save
from bench.runs import matrix, sides
from bench.targets import schema
from bench.targets.majors import DATA_ROOT_ENV, check_data_dir, default_data_dir, two_majors, wheel
from bench.targets.options import TargetSpec
from bench.targets.schema import seeded_dataset
from bench.targets.target import drop_database, open_target
from tests.support import (
    CALIBRATION,
    DATA_DIR,
    DATA_DIR_17,
    cell_of,
    content_checksums,
    no_false_alarm,
    one,
    one_line_error,
    scalar,
    taskbench_here,
)

pytestmark = pytest.mark.usefixtures("no_figures")  # its reports are not its subject (tests/conftest.py)

DATA = Path(__file__).resolve().parent / "data"
OPTS = RunOptions(cold_samples=2, stability_rounds=0, concurrent=True)
CELLS = (["recent_tasks", "task_by_id"], ["baseline", "composite"])


def test_only_the_majors_with_a_wheel_are_embedded_and_each_has_its_own_data_directory(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="runs major 17 or 18, not 16: for another major give --database-url"):
        wheel(16)
    monkeypatch.delenv(DATA_ROOT_ENV)  # the suite's own (tests/conftest.py)
    assert default_data_dir(18) == Path(".taskbench/pgdata") and default_data_dir(17) == Path(".taskbench/pgdata-17")
    monkeypatch.setenv(DATA_ROOT_ENV, str(tmp_path))
    assert default_data_dir(18) == tmp_path / "pgdata"
    assert TargetSpec(pg_major=17).embedded_dir == tmp_path / "pgdata-17"
    (tmp_path / "PG_VERSION").write_text("18\n")
    check_data_dir(tmp_path, 18)
    with pytest.raises(InputError, match="holds a PostgreSQL 18 data directory: --pg-major 17 needs one of its own"):
        check_data_dir(tmp_path, 17)
    with pytest.raises(InputError, match="both 18"):
        two_majors(18, 18)


def test_an_unknown_major_is_one_line_before_anything_starts():
    done = taskbench_here("seed", "--pg-major", "16", "--db-name", "tb_no_such_major")
    assert done.returncode == 2
    assert one_line_error(done).startswith("taskbench: error: the embedded PostgreSQL runs major 17 or 18, not 16")
    same = taskbench_here("upgrade-check", "--from", "18", "--to", "18")
    assert same.returncode == 2 and "an upgrade check needs two majors" in one_line_error(same)
    for command in ("status", "stop"):  # not "pgdata-16: not running"
        done = taskbench_here("server", command, "--pg-major", "16")
        assert done.returncode == 2 and not done.stdout
        assert one_line_error(done).startswith("taskbench: error: the embedded PostgreSQL runs major 17 or 18, not 16")


def test_a_major_is_refused_where_the_server_runs_its_own():
    """--pg-major picks a wheel or an image: with a URL or a Neon branch it would be silently ignored."""
    url = "postgresql://nobody@127.0.0.1:1/postgres"  # never reached: refused before anything connects
    for args in (
        ("seed", "--pg-major", "17", "--database-url", url),
        ("run", "--pg-major", "17", "--target", "url", "--database-url", url),
    ):
        done = taskbench_here(*args, "--db-name", "tb_foreign_major")
        assert done.returncode == 2, done
        assert one_line_error(done) == (
            "taskbench: error: --pg-major 17 is for --target embedded or docker: the server at --database-url "
            "(or DATABASE_URL) runs its own major (the results record it); leave --pg-major out"
        )
    neon = taskbench_here(
        "run", "--target", "neon", "--pg-major", "17", env_extra={"NEON_API_KEY": "k", "NEON_PROJECT_ID": "p"}
    )
    assert neon.returncode == 2 and "a Neon branch runs its project's major" in one_line_error(neon)
    same = taskbench_here("seed", "--pg-major", "18", "--database-url", url, "--db-name", "tb_foreign_major")
    assert same.returncode == 3, same  # the default major: not refused, the server is tried (and unreachable)


def test_each_p95_interval_covers_at_its_level_exactly_so_their_ratio_at_95_percent():
    """Coverage of an order-statistic interval is a binomial sum: P(l ≤ B ≤ u − 1), B ~ Bin(n, 0.95) the
    samples below the true p95. Each side's is at least 97.5%, so both hold at once with at least 95%
    (Bonferroni) and the ratio's interval, low ÷ high to high ÷ low, covers at least as often."""
    assert pytest.approx(0.95) == RATIO_CONFIDENCE
    for n in (RATIO_PAIRS, 100, 150, 400):
        q = quantile_ci([float(i) for i in range(n)], 0.95, P95_CONFIDENCE)
        assert q.low is not None and q.high is not None, n
        lo_rank, hi_rank = int(q.low) + 1, int(q.high) + 1
        assert binom.cdf(hi_rank - 1, n, 0.95) - binom.cdf(lo_rank - 1, n, 0.95) >= P95_CONFIDENCE, n
    assert quantile_ci([float(i) for i in range(RATIO_PAIRS - 1)], 0.95, P95_CONFIDENCE).high is None


def test_the_ratio_interval_covers_the_true_ratio_with_pairs_sharing_bursts_of_noise():
    """Simulated: the two sides of a pair share a burst (dependent), the new major ×1.3 slower in truth."""
    rng = np.random.default_rng(7)
    true_ratio, reps, n, covered = 1.3, 1000, 100, 0
    for _ in range(reps):
        burst = rng.lognormal(0.0, 0.4, n)
        base = burst * rng.lognormal(0.0, 0.3, n)
        head = true_ratio * burst * rng.lognormal(0.0, 0.3, n)  # the same distribution as base, × 1.3
        r = p95_ratio(base.tolist(), head.tolist())[2]
        assert r.low is not None and r.high is not None
        covered += r.low <= true_ratio <= r.high
    assert covered / reps >= 0.94  # at least 0.95 in truth; 0.94 leaves the simulation's own error (sd 0.007)


def test_a_skip_scan_is_named_and_only_time_verdicts_and_isolation_decide():
    def plan(searches: int | None) -> PlanFacts:
        node = NodeFacts(node_type="Index Scan", index="ix", loops=5, index_searches=searches)
        return PlanFacts(fingerprint="f", node_types=["Index Scan"], indexes=["ix"], seq_scans=[], nodes=[node])

    assert SKIP_SCAN in plan_traits(plan(55)) and SKIP_SCAN not in plan_traits(plan(5))
    assert SKIP_SCAN not in plan_traits(plan(None))  # before 18 EXPLAIN does not count them
    found = [
        Finding(Kind.SORT_ADDED, "s", "v", "new Sort node"),
        Finding(Kind.BUFFERS, "s", "v", "buffers 3 → 9"),
        Finding(Kind.TIME, "s", "v", "×1.5"),
        Finding(Kind.SLA, "s", "v", "pass → fail"),
        Finding(Kind.BUFFERS, "s", "v", "buffers 9 → 3", "improvement"),
        Finding(Kind.ISOLATION, "s", "owner_policy", "isolation failure: 1/20 parameter sets saw another user's rows"),
    ]
    directions = ["change", "change", "regression", "regression", "improvement", "regression"]
    assert [f.direction for f in decisive(found)] == directions


def test_an_index_one_major_uses_and_the_other_does_not_is_named(tmp_path):
    res = results_io.load(DATA / f"results_v{SCHEMA_VERSION}_upgrade.json")  # an upgrade check, 17 → 18
    assert is_upgrade(res) and index_use(res) == []
    sbs = res.side_by_side
    assert sbs is not None
    base = next(c for c in sbs.base_cells if (c.scenario, c.variant) == ("recent_tasks", "composite"))
    unused = base.model_copy(update={"plan": base.plan.model_copy(update={"indexes": []})})
    cells = [unused if c is base else c for c in sbs.base_cells]
    res = res.model_copy(update={"side_by_side": sbs.model_copy(update={"base_cells": cells})})
    found = [(u.variant, u.index, u.old, u.new) for u in index_use(res)]
    assert found == [("composite", "tb_tasks_user_created", [], ["recent_tasks"])]
    summary = next(p for p in write_report(save(res, tmp_path)) if p.name == "summary.md").read_text()
    assert (
        "`tb_tasks_user_created` (composite): on PostgreSQL 17.10 by no scenario; on PostgreSQL 18.6 by recent_tasks"
        in summary
    )


def test_a_plan_that_flips_on_both_majors_is_unstable_there_not_a_change_the_upgrade_made(tmp_path):
    """Constructed from an upgrade check's file: title_substring × composite planned as recent_tasks is
    (Incremental Sort on the composite index) on 17 and by a Bitmap scan on 18, with the plans each
    major's stability rounds showed (Cell.stability) varied."""
    res = results_io.load(DATA / f"results_v{SCHEMA_VERSION}_upgrade.json")
    sbs = res.side_by_side
    assert sbs is not None
    key, index_plan = ("title_substring", "composite"), cell_of(res, "recent_tasks", "composite").plan
    bitmap = cell_of(res, *key).plan  # 70edbd4a4f88, a different fingerprint and text from index_plan's
    assert bitmap.fingerprint != index_plan.fingerprint

    Seen = tuple[list[PlanFacts], int] | None  # the plans a major's stability rounds showed, the sets that flipped

    def planned(cell: Cell, plan: PlanFacts, seen: Seen) -> Cell:
        stability = (
            None if seen is None else Stability(rounds=3, plans=[p.fingerprint for p in seen[0]], flipped=seen[1])
        )
        return cell.model_copy(update={"plan": plan, "stability": stability})

    def upgraded(seen_17: Seen, seen_18: Seen) -> Results:
        base = next(c for c in sbs.base_cells if (c.scenario, c.variant) == key)
        cells = [planned(c, index_plan, seen_17) if c is base else c for c in sbs.base_cells]
        heads = [planned(c, bitmap, seen_18) if (c.scenario, c.variant) == key else c for c in res.cells]
        return res.model_copy(update={"cells": heads, "side_by_side": sbs.model_copy(update={"base_cells": cells})})

    def flipping(run: Results) -> tuple[str | None, bool]:
        (cell,) = [c for c in upgrade_cells(run) if (c.scenario, c.variant) == key]
        assert cell.plan_changed
        return cell.unstable_on, cell.upgrade_plan_change

    two = [index_plan, bitmap]
    both = upgraded((two, 2), (two, 1))
    assert flipping(both) == ("both", False)
    assert flipping(upgraded(([index_plan], 1), ([bitmap], 1))) == (None, True)  # neither showed the other's plan
    assert flipping(upgraded((two, 0), (two, 0))) == (None, True)  # two plans by parameter set, none flipping
    assert flipping(upgraded(([index_plan], 1), None)) == (None, True)  # no stability rounds on 18: nothing to tell by
    assert flipping(upgraded(None, None)) == (None, True)
    assert flipping(upgraded((two, 1), ([bitmap], 0))) == ("old", False)  # 17 flips to 18's plan, 18 never flipped
    assert flipping(upgraded(([index_plan], 0), (two, 1))) == ("new", False)
    assert flipping(upgraded((two, 0), ([bitmap], 1))) == (None, True)  # 17 has 18's plan for other parameters only
    # the cell's own plan counts among what a major showed: its rounds need not have drawn it again
    assert flipping(upgraded(([bitmap], 1), ([index_plan], 1))) == ("both", False)
    base17 = planned(cell_of(res, *key), index_plan, ([index_plan], 1))
    assert unstable_on(base17, base17) is None  # the same plan on both: nothing flipped between them

    # shown so: the headline counts it, the tables put it after the upgrade's own plan changes
    md = "\n".join(upgrade_text.markdown(both))
    assert "1 planned differently (1 of them unstable on both majors), " in md
    row = next(line for line in md.splitlines() if line.startswith("| title_substring | composite |"))
    assert "[ix_tasks_user_id] (unstable on both majors) |" in row
    (line,) = [line for line in upgrade_text.terminal(both) if "title_substring × composite" in line]
    assert "unstable on both majors (each flipped plans across its re-ANALYZEs, one's plan among the other's)" in line
    one = "\n".join(upgrade_text.markdown(upgraded((two, 1), ([bitmap], 0))))
    assert "(1 unstable on one major)" in one and "(unstable on PostgreSQL 17.10) |" in one
    html = next(p for p in write_report(save(both, tmp_path)) if p.name == "index.html").read_text()
    assert "(unstable on both majors)</td>" in html

    # and the plan findings of such a cell say the statistics changed it, not the upgrade
    found = [
        Finding(Kind.SORT_ADDED, *key, "new Sort node (1 → 2)"),
        Finding(Kind.TIME, *key, "×1.5"),
        Finding(Kind.PLAN_CHANGED, "recent_tasks", "composite", "plan changed"),
    ]
    weighed = decisive(found, {key: "both"})
    assert [f.direction for f in weighed] == ["change", "regression", "change"]
    assert weighed[0].message == (
        "new Sort node (1 → 2); not the upgrade's: unstable on both majors (each flipped plans across its "
        "re-ANALYZEs, one's plan among the other's)"
    )
    assert [f.message for f in weighed[1:]] == ["×1.5", "plan changed"]


@pytest.mark.pg17
def test_the_same_dataset_seeds_on_17_row_for_row(seeded17, seeded):
    with schema.connect(seeded17) as conn:
        assert scalar(conn, "SHOW server_version_num").startswith("17")
        assert one(conn, "SHOW data_checksums") == ("on",)  # as 18's initdb does by default
    assert seeded17.data_dir is not None and (seeded17.data_dir / "PG_VERSION").read_text().strip() == "17"
    assert seeded_dataset(seeded17).fingerprint == seeded_dataset(seeded).fingerprint
    assert content_checksums(seeded17) == content_checksums(seeded)


@pytest.mark.pg17
def test_a_run_on_17_records_its_server_and_what_it_lacks(seeded17, catalogue):
    res = matrix.measure(seeded17, catalogue.select(*CELLS), OPTS)
    env = res.environment
    assert env.server_major == 17 and env.server_version_num is not None and env.server_version_num // 10000 == 17
    features = {f.name: f.available for f in env.features}
    assert features["B-tree skip scan"] is False and features["pg_restore_attribute_stats"] is False
    assert features["pg_buffercache_evict_all"] is False and features["pg_trgm"] is True
    # cold samples all the same, one buffer at a time
    assert res.cold_cache.available and res.cold_cache.method.startswith("pg_buffercache_evict() on every buffer")
    assert all(c.cold is not None for c in res.cells if c.kind == "read" and not c.shared_with)
    assert all(n.index_searches is None for c in res.cells for n in c.plan.nodes)


@pytest.mark.pg17  # beside the other worker: what it shows is the check on 17, which may say "cannot judge"
def test_a_check_on_17_passes_an_unchanged_head(seeded17, catalogue):
    head = catalogue.select(*CELLS)
    pairs = PairOptions(pairs=30, concurrent=True)
    current, result = check(
        head,
        Before(head, "test"),
        lambda b, a, s: sides.measure(seeded17, b, a, sides.SidesOptions(OPTS, pairs, True), base_schema=s),
        lambda b, a, s, n: side_by_side(seeded17, b, a, replace(pairs, pairs=n), base_schema=s),
    )
    no_false_alarm(result)  # beside other work the calibration may differ between the sides, and say so
    assert result.time_refused is not None or result.time.startswith("side by side"), result.time
    assert current is not None and current.environment.server_major == 17 and not is_upgrade(current)


@pytest.fixture(scope="module")
def upgraded(seeded17, seeded, catalogue):
    pairs = PairOptions(pairs=RATIO_PAIRS, concurrent=True)
    opts = sides.SidesOptions(replace(OPTS, cold_samples=0), pairs)
    return upgrade_check(
        catalogue.select(*CELLS),
        "PostgreSQL 17",
        lambda b, a, s: sides.measure(seeded, b, a, opts, base_schema=s, base_server=seeded17),
        lambda b, a, s, n: side_by_side(seeded, b, a, replace(pairs, pairs=n), base_schema=s, base_server=seeded17),
        CheckThresholds(),
    )


@pytest.mark.pg17  # beside the other worker: it takes "cannot judge" for an answer, as a check on 17 does
def test_the_upgrade_check_measures_17_beside_18_cell_by_cell(upgraded, tmp_path):
    res, result = upgraded
    assert res is not None and is_upgrade(res)
    # no regression, and no error; beside other work on a shared machine the calibration may differ
    # between the sides (exit 2, as test_neon_check allows), which says so rather than passing
    no_false_alarm(result)
    sbs = res.side_by_side
    assert sbs is not None and sbs.base_environment is not None
    assert (sbs.base_environment.server_major, res.environment.server_major) == (17, 18)
    assert len(sbs.base_cells) == len(res.cells) == 4 and all(c.differing_rows == 0 for c in sbs.cells)
    cells = upgrade_cells(res)
    assert [(c.scenario, c.variant) for c in cells] == [(c.scenario, c.variant) for c in res.cells]
    assert all(c.p95_ratio is not None and c.p95_ratio.low is not None for c in cells)  # RATIO_PAIRS pairs each
    assert old_run(res).environment.server_major == 17
    assert "what decides: time" in result.notes[-1]
    summary = next(p for p in write_report(save(res, tmp_path)) if p.name == "summary.md").read_text()
    assert "## Upgrade: PostgreSQL 17." in summary and "| recent_tasks | composite |" in summary


@pytest.mark.pg17  # beside the other worker: it takes "cannot judge" for an answer, as a check on 17 does
def test_the_upgrade_check_command_seeds_both_majors_judges_and_writes_the_pull_requests_markdown(seeded17, tmp_path):
    """``taskbench upgrade-check`` end to end, on a dataset the size of the tests' (seeded on both servers
    by the command itself), two scenarios under one variant."""
    name, md = f"tbupgrade_{uuid.uuid4().hex[:8]}", tmp_path / "pr.md"
    dataset = ["--profile", "ci", "--users", "3", "--tasks-per-user", "1500", "--db-name", name]
    quick = ["--pairs", "20", "--cold-samples", "0", "--stability-rounds", "0", "--concurrent", "-q"]
    cells = ["-s", "task_by_id", "-s", "recent_tasks", "-v", "composite"]
    try:
        done = taskbench_here(
            "upgrade-check", *dataset, *cells, *quick, "--reports-dir", str(tmp_path / "r"), "--markdown", str(md)
        )
    finally:
        for data_dir, major in ((DATA_DIR, 18), (DATA_DIR_17, 17)):
            drop_database(open_target(None, name, data_dir, major), name)
    # no regression; beside other work the calibration may differ between the servers (exit 2, saying so)
    assert done.returncode == 0 or (done.returncode == 2 and CALIBRATION in done.stdout + done.stderr), done
    text = md.read_text()
    # the upgrade's table, then the gate's summary, as a pull request that moves the major shows them
    assert text.startswith("### PostgreSQL 17.") and ": 2 cells, " in text.splitlines()[0]
    assert "| scenario | variant | plan on PostgreSQL 17." in text and "| plan on PostgreSQL 18." in text
    assert "| task_by_id | composite |" in text and "| recent_tasks | composite |" in text
    assert "## taskbench: PostgreSQL 17 → PostgreSQL 18" in text and "what decides: time" in text
    run = next((tmp_path / "r").glob("*/results.json"))
    assert is_upgrade(results_io.load(run))
