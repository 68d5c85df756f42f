import shutil

import pytest

from bench.catalogue.files import load_catalogue
from bench.errors import EXIT_INPUT, EXIT_OK, EXIT_REGRESSION
from bench.judge.compare import compare, variant_result_mismatches
from bench.judge.gates import Kind
from bench.measure.options import RunOptions
from bench.report import render
from bench.runs.matrix import measure
from tests.support import SCENARIOS

OPTS = RunOptions(cold_samples=0, stability_rounds=0, concurrent=True)
PICK = (["recent_tasks", "pending_tasks", "task_by_id"], ["composite"])


@pytest.fixture(scope="module")
def base_run(seeded, catalogue):
    return measure(seeded, catalogue.select(*PICK), OPTS)


def test_identical_rerun_is_not_a_regression(seeded, catalogue, base_run):
    again = measure(seeded, catalogue.select(*PICK), OPTS)
    result = compare(base_run, again)
    assert result.exit_code == EXIT_OK, result.regressions
    assert compare(base_run, base_run).exit_code == EXIT_OK


def test_removed_index_is_caught_as_a_plan_regression(seeded, tmp_path, base_run):
    scen = tmp_path / "scenarios"
    shutil.copytree(SCENARIOS, scen)
    variant = scen / "variants" / "composite.toml"
    variant.write_text(
        "\n".join(line for line in variant.read_text().splitlines() if "tb_tasks_user_created " not in line)
    )
    current = measure(seeded, load_catalogue(scen).select(["recent_tasks"], ["composite"]), OPTS)
    result = compare(base_run, current)
    assert result.exit_code == EXIT_REGRESSION
    found = {f.kind: f for f in result.regressions if f.scenario == "recent_tasks"}
    # the list's ORDER BY ends with id, which the index does not hold: an Incremental Sort on it
    # becomes a full sort, so a sort is there on both sides and it is the buffers that show the loss
    assert Kind.BUFFERS in found and Kind.INDEX_DROPPED in found, result.regressions
    assert "tb_tasks_user_created" in found[Kind.INDEX_DROPPED].message


def test_sla_pass_turning_to_fail_is_a_regression(base_run):
    cells = [c.model_copy(update={"verdict": "fail"}) if c.scenario == "task_by_id" else c for c in base_run.cells]
    assert base_run.cell("task_by_id", "composite").verdict == "pass"
    result = compare(base_run, base_run.model_copy(update={"cells": cells}))
    assert result.exit_code == EXIT_REGRESSION
    assert [f.kind for f in result.regressions] == [Kind.SLA]


def test_compare_never_judges_milliseconds_and_says_so(base_run):
    def slower(c):
        samples = c.samples.model_copy(update={"client_ms": [ms * 3 + 1 for ms in c.samples.client_ms]})
        return c.model_copy(update={"samples": samples})

    result = compare(base_run, base_run.model_copy(update={"cells": [slower(c) for c in base_run.cells]}))
    assert result.exit_code == EXIT_OK and "not judged" in result.time and "taskbench check" in result.time
    assert any("not judged" in line for line in render.terminal(result, "a", "b"))
    assert any("not judged" in line for line in render.markdown(result, "a", "b"))


def _swap(res, cell):
    """``res`` with ``cell`` in place of its own cell of the same scenario and variant."""
    return res.model_copy(
        update={"cells": [cell if (c.scenario, c.variant) == (cell.scenario, cell.variant) else c for c in res.cells]}
    )


def _with_plan(cell, **changes):
    nodes = [n.model_copy(update=changes.get("node", {})) for n in cell.plan.nodes]
    plan = cell.plan.model_copy(update={**{k: v for k, v in changes.items() if k != "node"}, "nodes": nodes})
    return cell.model_copy(update={"plan": plan})


def _spilled(cell):
    """The cell with its last explained sample spilling (a power user's sort, say) and the others not."""
    temp = [0] * (cell.samples.explained - 1) + [120]
    return cell.model_copy(update={"samples": cell.samples.model_copy(update={"temp_blocks": temp})})


def test_the_planners_warning_signs_are_regressions(base_run):
    cell = base_run.cell("recent_tasks", "composite")
    for changed, kind in [
        (_with_plan(cell, node={"misestimate": 500.0}), Kind.MISESTIMATE),
        (_spilled(cell), Kind.SPILL),
        (_with_plan(cell, rows_removed=cell.plan.rows_removed + 5000), Kind.ROWS_REMOVED),
    ]:
        result = compare(base_run, _swap(base_run, changed))
        assert [f.kind for f in result.regressions] == [kind], result.findings


def test_a_plan_change_alone_is_a_change_not_an_improvement(base_run):
    cell = base_run.cell("task_by_id", "composite")
    other = _with_plan(cell, fingerprint="0123456789ab")
    result = compare(base_run, _swap(base_run, other))
    assert result.exit_code == EXIT_OK and result.improvements == []
    assert [f.kind for f in result.changes] == [Kind.PLAN_CHANGED]


def test_other_rows_for_the_same_parameters_are_a_regression(base_run):
    cell = base_run.cell("recent_tasks", "composite")
    hashes = ["0" * 16] + cell.samples.result_hashes[1:]
    other = cell.model_copy(update={"samples": cell.samples.model_copy(update={"result_hashes": hashes})})
    result = compare(base_run, _swap(base_run, other))
    assert [f.kind for f in result.regressions] == [Kind.RESULTS]
    assert result.regressions[0].message.startswith("1 of ")
    lines = render.annotations(result)
    assert lines == [
        f"::error title=taskbench results regression::recent_tasks × composite: {result.regressions[0].message}"
    ]


def test_every_variant_returns_the_baseline_variants_rows(small_results):
    assert variant_result_mismatches(small_results) == []
    cell = small_results.cell("recent_tasks", "composite")
    wrong = cell.model_copy(
        update={
            "samples": cell.samples.model_copy(update={"result_hashes": ["f" * 16] * len(cell.samples.result_hashes)})
        }
    )
    cells = [wrong if c is cell else c for c in small_results.cells]
    found = variant_result_mismatches(small_results.model_copy(update={"cells": cells}))
    assert [(f.scenario, f.variant, f.kind) for f in found] == [("recent_tasks", "composite", Kind.RESULTS)]


@pytest.mark.parametrize(
    "field, change, reason",
    [
        ("dataset", {"fingerprint": "0000"}, "different datasets"),
        ("environment", {"server_major": 12}, "different PostgreSQL majors"),
    ],
)
def test_incomparable_runs_exit_2_with_the_reason(base_run, field, change, reason):
    other = base_run.model_copy(update={field: getattr(base_run, field).model_copy(update=change)})
    result = compare(base_run, other)
    assert result.exit_code == EXIT_INPUT and reason in result.incomparable[0]
    assert compare(base_run, other, force=True).exit_code == EXIT_OK


def test_baseline_save_needs_a_reason_and_records_it(base_run, tmp_path):
    from bench import results as results_io
    from bench.errors import InputError

    run_file = results_io.save(base_run, tmp_path)
    with pytest.raises(InputError, match="reason"):
        results_io.save_baseline(run_file, "  ", tmp_path / "baseline.json")
    saved = results_io.save_baseline(run_file, "new index on tasks", tmp_path / "baseline.json")
    loaded = results_io.load(tmp_path / "baseline.json")
    assert loaded.baseline is not None
    assert loaded.baseline.reason == "new index on tasks" and loaded.baseline.from_run == base_run.run_id
    assert saved.cells == base_run.cells


def test_an_older_file_reads_as_the_order_statistic_protocol_and_still_compares(base_run):
    from bench import results as results_io
    from tests.support import ROOT, cell_of

    old = results_io.load(ROOT / "tests" / "data" / "results_v2_order_statistic.json")
    assert old.protocol is not None
    assert old.protocol.name == "order-statistic" and old.protocol.parameters["early_look"] == 30
    assert old.protocol.explain_samples is None and old.config.seed == 1
    cell = cell_of(old, "recent_tasks", "baseline")
    assert cell.samples.explained == len(cell.samples.client_ms) == 100 and cell.classes[0].user_class == "all"
    over = sum(ms > cell.sla_ms for ms in cell.samples.client_ms)
    assert cell.verdict_text == f"pass at n = 100 ({over}/100 over 50 ms)"
    result = compare(
        old.model_copy(update={"dataset": base_run.dataset, "environment": base_run.environment}), base_run
    )
    assert "different protocols: reference order-statistic v1, current sequential-exceedance v1" in result.time
