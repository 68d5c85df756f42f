import itertools
import json
from dataclasses import replace

import pytest

from bench import results as results_io
from bench.judge import sequential
from bench.measure.options import RunOptions
from bench.report.plans import tree
from bench.runs.matrix import measure
from tests.support import SHORT_PAUSE_S, TINY, cell_of, scalar


@pytest.fixture(scope="module")
def small_run(small_results):
    return small_results


def test_every_cell_has_samples_statistics_and_plan_facts(small_run):
    assert len(small_run.cells) == 10
    for cell in small_run.cells:
        n, k = len(cell.samples.client_ms), cell.samples.explained
        assert n == cell.client.n and k == min(n, 20) and cell.execution.n == k
        assert len(cell.samples.user_class) == len(cell.samples.at_s) == n
        assert len(cell.samples.planning_ms) == len(cell.samples.buffers) == len(cell.samples.plan_fingerprints) == k
        assert all(ms > 0 for ms in cell.samples.client_ms)
        assert cell.plan.node_types and cell.plan.fingerprint
        assert sum(cell.samples.buffers) > 0
        assert cell.verdict in ("pass", "fail", "inconclusive")
        assert {c.user_class for c in cell.classes} <= {"ordinary", "power"} and cell.decided_by
        assert sum(c.samples for c in cell.classes) == n
        assert 1 <= cell.warmup <= 5


def test_every_cell_has_each_classs_plan_timed_node_by_node(small_run):
    """The report's plan trees: per class, on the class's first parameter set, after the samples; a
    cell sharing another's measurement has its plans too."""
    for cell in small_run.cells:
        timed = [p for p in cell.plans if not p.generic]
        assert [p.user_class for p in timed] == [c.user_class for c in cell.classes], cell.scenario
        for plan in cell.plans:
            assert plan.execution_ms is not None and plan.root.total_ms is not None and plan.root.loops >= 1
        if cell.shared_with:
            assert cell.plans == cell_of(small_run, cell.scenario, cell.shared_with).plans
    recent = cell_of(small_run, "recent_tasks", "composite")
    used = {v.node.index for p in recent.plans for v in tree(p).walk()}
    assert "tb_tasks_user_created" in used  # the composite index, by name, where the plan read it


def test_the_matching_index_is_used_and_costed(small_run):
    recent = small_run.cell("recent_tasks", "composite")
    assert "tb_tasks_user_created" in recent.plan.indexes
    assert "Sort" not in recent.plan.node_types
    assert "Sort" in small_run.cell("recent_tasks", "baseline").plan.node_types
    sizes = {v.name: v.index_size_bytes for v in small_run.variants}
    assert sizes["baseline"] == 0 < sizes["composite"]


def test_environment_and_dataset_are_recorded(small_run):
    env = small_run.environment
    assert env.server_major >= 14 and "work_mem" in env.settings
    assert env.target_kind == "embedded"
    assert small_run.dataset.row_counts["tasks"] > 0 and small_run.dataset.fingerprint


def test_cold_samples_read_from_outside_shared_buffers(small_run):
    assert small_run.cold_cache.available and "pg_buffercache" in small_run.cold_cache.method
    for cell in small_run.cells:
        if cell.kind == "write":  # a cold sample is not rolled back: writes get none
            assert cell.cold is None
            continue
        assert len(cell.cold.client_ms) == len(cell.cold.shared_read) == 2
        assert min(cell.cold.shared_read) > 0  # every block came from outside: the cache really was empty
    warm = small_run.cell("recent_tasks", "baseline")
    assert warm.plan.shared_read == 0 or min(warm.cold.shared_read) > warm.plan.shared_read


def test_stability_and_write_cost_are_measured_per_variant(small_run):
    from bench.judge.writecost import wal_per_statement, wal_ratio

    assert all(c.stability and c.stability.rounds == 1 and c.stability.plans for c in small_run.cells)
    for cell in small_run.cells:
        assert (cell.kind == "write") == (cell.scenario in ("create_task", "post_message"))
        assert len(cell.samples.wal_bytes) == (cell.samples.explained if cell.kind == "write" else 0)

    def wal(scenario: str, variant: str) -> float:
        per_statement = wal_per_statement(cell_of(small_run, scenario, variant))
        assert per_statement is not None  # a write cell records its WAL
        return per_statement

    create = {v: wal("create_task", v) for v in ("baseline", "composite")}
    # composite adds three B-trees on tasks: every insert writes three more index entries to the WAL
    assert create["composite"] > create["baseline"] > 0
    # and its (conversation_id, created_at) and (user_id, updated_at) B-trees make posting a message dearer
    post = {v: wal("post_message", v) for v in ("baseline", "composite")}
    assert post["composite"] > post["baseline"] > 0
    ratio = wal_ratio(small_run, "composite")
    assert ratio is not None and ratio > 1.0 and wal_ratio(small_run, "baseline") == 1.0
    assert {"scratch copy", "build indexes", "warm-up and samples", "cold samples", "plan stability"} <= set(
        small_run.phase_seconds
    )


def test_the_run_works_on_a_copy_and_leaves_the_seeded_database_alone(seeded, small_run):
    import psycopg

    with psycopg.connect(seeded.libpq_conninfo(), autocommit=True) as conn:
        copies = scalar(conn, "SELECT count(*) FROM pg_database WHERE datname LIKE %s", (f"{seeded.database}_run_%",))
        extra = scalar(conn, "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'tb_%'")
        tasks = scalar(conn, "SELECT count(*) FROM tasks")
    assert copies == 0 and extra == 0
    assert tasks == small_run.dataset.row_counts["tasks"]


def test_a_write_scenario_leaves_every_row_as_it_was(make_target, catalogue):
    """Each write sample is rolled back: the database the run measured on is unchanged, row for row."""
    import asyncio

    from bench.catalogue.params import pools_for
    from bench.measure import runner
    from bench.targets.target import connected
    from seed.load import seed_database
    from tests.support import TINY, content_checksums

    target = make_target("tbwrites")
    seed_database(target, TINY)
    before = content_checksums(target)
    writes = [s for s in catalogue.scenarios if s.kind == "write"]
    assert {s.name for s in writes} >= {
        "create_task",
        "complete_task",
        "retag_task",
        "soft_delete_task",
        "post_message",
    }
    opts = RunOptions(cell_budget=0.3)

    async def measure():
        async with connected(target) as conn:
            pools = await pools_for(conn, writes, TINY.anchor_date)
            return [(await runner.measure_cells(conn, [s], "baseline", pools, opts))[0] for s in writes]

    cells = asyncio.run(measure())
    assert content_checksums(target) == before
    assert all(
        c.kind == "write" and len(c.samples.wal_bytes) == c.samples.explained and min(c.samples.wal_bytes) > 0
        for c in cells
    )


def _catalogue_with(catalogue, slas: dict[str, float]):
    """The catalogue's ``slas`` scenarios, with those SLAs: a cell whose answer is known in advance."""
    scenarios = [s.model_copy(update={"sla_ms": slas[s.name]}) for s in catalogue.scenarios if s.name in slas]
    return catalogue.model_copy(update={"scenarios": scenarios}).select(None, ["baseline"])


def test_a_clearly_failing_cell_stops_at_4_and_a_clean_one_passes_at_the_first_pass_look(seeded, catalogue):
    opts = RunOptions(cold_samples=0, stability_rounds=0, concurrent=True, confirm_pause_s=SHORT_PAUSE_S)
    res = measure(seeded, _catalogue_with(catalogue, {"recent_tasks": 0.001, "task_by_id": 10_000}), opts)
    failing, clean = cell_of(res, "recent_tasks", "baseline"), cell_of(res, "task_by_id", "baseline")
    # Classes in turn: ordinary, power, ordinary... the ordinary users' 4th sample is the cell's 7th: a
    # fail that early is measured again after a pause, the power users' too (their 4th is the 8th);
    # then the ordinary users fail again at their 4th. The power users' pause ends as long after the
    # ordinary users' as their 4th samples were apart: one sample on a quiet machine, when the ordinary
    # users may take two in a row meanwhile; on a busy one a stall between those two samples lets the
    # ordinary users take all four of theirs first (seen in a clean-clone make test). So the power
    # users' second test has 0 to 3 samples when the cell fails.
    power = next(c for c in failing.classes if c.user_class == "power")
    assert failing.verdict == "fail" and failing.decided_by == "ordinary" and power.n <= 3
    assert len(failing.samples.client_ms) == 4 + 4 + 4 + power.n
    assert failing.verdict_text == (
        "fail at n = 4 (4/4 over 0.001 ms; measured again after a fail at n = 4) — ordinary users"
    )
    assert power.decision == "inconclusive" and power.stopped_by == "cell"
    assert power.refailed_at == 4  # its early fail was to be measured again when the cell failed
    first_pass = sequential.design_for_classes(2).pass_from
    assert clean.verdict == "pass" and [c.n for c in clean.classes] == [first_pass, first_pass] == [77, 77]
    assert len(clean.samples.client_ms) == 2 * first_pass and clean.samples.explained == 20
    assert all(c.decision == "pass" and c.exceedances == 0 for c in clean.classes)
    assert res.protocol is not None
    assert res.protocol.name == "sequential-exceedance" and res.protocol.classes == ["ordinary", "power"]
    assert res.protocol.parameters["designs"]["2"]["alpha_fail"] == 0.0125 and res.protocol.explain_samples == 20
    confirmation = res.protocol.parameters["confirmation"]
    assert "before n = 16 is measured again from nothing after a pause of 0.2 s" in confirmation


def test_explain_only_on_the_first_k_samples_with_the_same_parameter_sets_whatever_the_warm_up(seeded, catalogue):
    chosen = _catalogue_with(catalogue, {"recent_tasks": 10_000, "open_task_count": 10_000})
    opts = RunOptions(explain_samples=6, cold_samples=0, stability_rounds=0, concurrent=True)
    quick = measure(seeded, chosen, replace(opts, warmup_seconds=0))
    slow = measure(seeded, chosen, replace(opts, warmup_seconds=60))
    for name in ("recent_tasks", "open_task_count"):
        a, b = cell_of(quick, name, "baseline"), cell_of(slow, name, "baseline")
        assert (a.warmup, b.warmup) == (1, 5)  # at least one warm-up execution, at most five
        assert len(a.samples.client_ms) == 154 and a.samples.explained == b.samples.explained == 6
        assert a.samples.user_class[:6] == ["ordinary", "power"] * 3
        # The warm-up draws from a stream of its own: five of them leave the samples' parameters where one did,
        # so the explained samples pair across runs, buffer for buffer (users of both classes differ in size).
        assert a.samples.buffers == b.samples.buffers and len(set(a.samples.buffers)) > 1
        assert a.samples.plan_fingerprints == b.samples.plan_fingerprints


def test_cells_of_a_variant_are_interleaved_a_sample_each_per_round(seeded, catalogue):
    import asyncio
    from datetime import date

    from bench.catalogue.params import pools_for
    from bench.measure import runner
    from bench.targets.target import connected

    chosen = _catalogue_with(catalogue, {"task_by_id": 10_000, "last_messages": 10_000, "recent_tasks": 0.001})

    async def measure():
        async with connected(seeded) as conn:
            pools = await pools_for(conn, chosen.scenarios, date(2026, 1, 1))
            opts = RunOptions(confirm_pause_s=SHORT_PAUSE_S)
            return await runner.measure_cells(conn, chosen.scenarios, "baseline", pools, opts)

    cells = asyncio.run(measure())
    taken = sorted((at, cell.scenario) for cell in cells for at in cell.samples.at_s)
    order = [scenario for _, scenario in taken]
    # Round after round, one sample of each cell still running, in catalogue order. The failing
    # cell's ordinary users fail at their 4th (its 7th), its power users at theirs (its 8th): an early
    # fail, measured again after a pause, in which the other two go on alone, still alternating.
    names = [c.scenario for c in cells]
    assert order[:24] == names * 8
    failing = next(c for c in cells if c.scenario == "recent_tasks")
    # each class pauses from the end of its own early fail: its next sample starts at least the pause
    # after its failing one started (the cell's samples of the two classes, whose pauses overlap, may
    # not). The class whose pause ends first may confirm its fail, and so the cell's, before the other
    # class's pause is over (on a quiet machine the other cells are done by then): that one is never
    # measured again, and at least one class is.
    resumed = 0
    for user_class in ("ordinary", "power"):
        at = [t for t, c in zip(failing.samples.at_s, failing.samples.user_class, strict=True) if c == user_class]
        paused = [later - earlier for earlier, later in itertools.pairwise(at)]
        if len(at) > 4:
            assert max(paused) >= SHORT_PAUSE_S and paused.index(max(paused)) == 3  # after its 4th
            resumed += 1
        else:
            assert len(at) == 4 and failing.verdict == "fail"
    assert resumed >= 1
    others = [n for n in order[24:] if n != "recent_tasks"]
    assert others == [n for n in names if n != "recent_tasks"] * (len(others) // 2)


def test_a_cell_fails_when_its_power_users_fail_and_names_them(seeded):
    import asyncio
    import time

    from bench.catalogue.files import Scenario
    from bench.catalogue.params import POWER, load_pools
    from bench.measure import runner
    from bench.targets.target import connected

    # Time grows with the square of the user's tasks: power users (5× the tasks) take ~25× as long.
    sql = "SELECT count(*) FROM tasks a, tasks b WHERE a.user_id = :user_id AND b.user_id = :user_id AND a.id % 50 = 0"

    async def measure():
        async with connected(seeded) as conn:
            pools = await load_pools(conn, {"user"}, TINY.anchor_date)
            timed = {}
            for name, users in pools.classes.items():  # the line between the classes, on this machine today
                user = next(iter(users))
                runs = []
                for _ in range(3):
                    started = time.perf_counter()
                    await conn.fetch(sql.replace(":user_id", "$1"), user)
                    runs.append((time.perf_counter() - started) * 1e3)
                timed[name] = min(runs)
            scenario = Scenario(
                name="pairs",
                sla_class="list",
                sql=sql,
                params={"user_id": "user"},
                # under the fastest power-user execution, so every power sample is over; ~12x the
                # ordinary users' fastest, so a busy machine does not push theirs over
                sla_ms=timed[POWER] / 2,
            )
            # min_samples: every class goes on to the first pass look, so the ordinary users get a verdict too.
            opts = RunOptions(min_samples=77, confirm_pause_s=SHORT_PAUSE_S)
            return (await runner.measure_cells(conn, [scenario], "baseline", pools, opts))[0]

    cell = asyncio.run(measure())
    by_class = {c.user_class: c for c in cell.classes}
    assert by_class["power"].decision == "fail" and by_class["power"].n == 4
    assert by_class["ordinary"].decision == "pass" and by_class["ordinary"].n == 77
    assert cell.verdict == "fail" and cell.decided_by == "power"
    assert cell.verdict_text.startswith("fail at n = 4 (4/4 over") and cell.verdict_text.endswith("— power users")
    assert by_class["power"].samples == 77  # sampled on for the estimates; its verdict stays the one at n = 4


def test_the_budget_still_lets_a_cell_reach_its_first_pass_look(seeded, catalogue):
    res = measure(
        seeded,
        _catalogue_with(catalogue, {"task_by_id": 10_000}),
        RunOptions(cell_budget=0.0, cold_samples=0, stability_rounds=0, concurrent=True),
    )
    cell = res.cells[0]
    # Out of time from the start, it still takes the 77 samples a class a pass needs: the budget is in
    # samples first (a slow cell clearly under its SLA must be able to pass), then in seconds.
    assert cell.verdict == "pass" and len(cell.samples.client_ms) == 2 * 77
    assert all(c.decision == "pass" and c.stopped_by == "boundary" for c in cell.classes)
    assert res.protocol is not None and res.protocol.cell_budget_s == 0.0


def test_the_machines_load_and_the_lock_are_recorded(small_run):
    import os

    conditions = small_run.conditions  # a test run measures --concurrent (tests/support.py says why)
    assert conditions.concurrent and (conditions.lock == "held" or conditions.lock.startswith("not held: pid "))
    assert conditions.cpus == os.cpu_count() and len(conditions.load_before) == len(conditions.load_after) == 3


def test_results_round_trip_and_latest_link(small_run, tmp_path):
    path = results_io.save(small_run, tmp_path)
    assert (tmp_path / "latest" / "results.json").resolve() == path.resolve()
    loaded = results_io.load(tmp_path / "latest")
    assert loaded == small_run
    assert json.loads(path.read_text())["schema_version"] == results_io.SCHEMA_VERSION
