"""Sharded runs on the embedded server: the split, shards measured one after another and merged
(the same cells, plans, buffers and verdicts as one unsharded run, for N = 1, 2, 3), and merge's
refusals through the CLI. The Neon fan-out (--parallel) is in tests/test_neon.py."""

from __future__ import annotations

from pathlib import Path
from statistics import median

import pytest

from bench import results as results_io
from bench.errors import InputError
from bench.judge.compare import compare
from bench.measure.options import RunOptions
from bench.merge import merge
from bench.results import Cell, Results
from bench.runs.matrix import measure
from bench.runs.shard import (
    Weights,
    catalogue_fingerprint,
    durations,
    measure_shard,
    parse_shard,
    split,
)
from tests.support import ROOT, one_line_error, taskbench_here

pytestmark = pytest.mark.usefixtures("no_figures")  # its reports are not its subject (tests/conftest.py)

# share=False: a shard sees only its own variants, so a cell that shares a measurement in the whole
# run is measured for itself in a shard; what these tests compare is sharding, cell for cell
QUICK = RunOptions(cold_samples=0, stability_rounds=0, concurrent=True, share=False)
# Reads and writes: a write's rolled-back rows would change the next variant's buffers on a shared copy.
SCENARIOS = ["task_by_id", "recent_tasks", "last_messages", "create_task"]
VARIANTS = ["baseline", "composite", "covering"]


@pytest.fixture(scope="module")
def matrix(catalogue):
    return catalogue.select(SCENARIOS, VARIANTS)


@pytest.fixture(scope="module")
def index_variants(catalogue):
    """The shipped index variants (the worked split below counts ten; the committed baseline was
    taken before the row-level security variants, whose durations it therefore lacks)."""
    return catalogue.select(None, [v.name for v in catalogue.variants if not v.policies])


@pytest.fixture(scope="module")
def unsharded(seeded, matrix) -> Results:
    return measure(seeded, matrix, QUICK)


@pytest.fixture(scope="module")
def shards(seeded, matrix) -> dict[int, list[Results]]:
    """For N = 2 and 3: every shard, measured one after another on the one embedded server (one
    shard would be the unsharded run under another name: its variants all, in their order)."""
    measured = {}
    for count in (2, 3):
        plan = split(matrix, count, Weights(None, "equal weights"))
        measured[count] = [measure_shard(seeded, matrix, QUICK, plan, i) for i in range(1, count + 1)]
    return measured


def test_the_split_is_longest_first_onto_the_least_loaded_shard_and_deterministic(index_variants):
    catalogue = index_variants
    names = [v.name for v in catalogue.variants]
    seconds = dict(zip(names, [5.0, 10.0, 1.0, 7.0, 6.0, 2.0, 0.5, 3.0, 4.0, 2.0], strict=True))
    weights = Weights(seconds, "test durations")
    plan = split(catalogue, 3, weights)
    assert list(plan.plan) == names  # catalogue order
    # composite 10 → 1, gin_fts 7 → 2, gin_jsonb_ops 6 → 3, baseline 5 → 3, partial 4 → 2, naive 3 → 1;
    # 11 = 11: gin_jsonb_path_ops 2 → 2 (the lower shard), recommended 2 → 3; 13 = 13 = 13: covering 1
    # → 1 (fewest variants); 13 = 13: gin_trgm 0.5 → 2
    assert [plan.variants(i) for i in (1, 2, 3)] == [
        ["composite", "covering", "naive"],
        ["gin_fts", "gin_jsonb_path_ops", "gin_trgm", "partial"],
        ["baseline", "gin_jsonb_ops", "recommended"],
    ]
    reordered = Weights(dict(reversed(seconds.items())), "same")
    assert [split(catalogue, 3, reordered).plan for _ in range(3)] == [plan.plan] * 3
    assert split(catalogue, 3, weights).catalogue == catalogue_fingerprint(catalogue) == plan.catalogue
    # equal weights: catalogue order, round robin; variants that took no time still leave no shard empty
    assert split(catalogue, 3, Weights(None, "equal")).plan == {n: i % 3 + 1 for i, n in enumerate(names)}
    assert all(split(catalogue, 4, Weights(dict.fromkeys(names, 0.0), "zero")).variants(i) for i in (1, 2, 3, 4))
    with pytest.raises(InputError, match="11 shards need at least 11 variants, and this catalogue has 10"):
        split(catalogue, 11, weights)


def test_durations_come_from_a_previous_run_that_covers_every_variant(index_variants, small_results, tmp_path):
    catalogue = index_variants
    committed = ROOT / "reports" / "baseline.json"
    baseline = durations(catalogue, committed)
    assert baseline.seconds is not None and set(baseline.seconds) == {v.name for v in catalogue.variants}
    previous = results_io.load(committed)
    built = next(v.build_seconds for v in previous.variants if v.name == "composite")
    measured = sum(c.seconds or 0 for c in previous.cells if c.variant == "composite")
    assert baseline.seconds["composite"] == pytest.approx(measured + built) and built > 0
    # a run of two variants: equal weights for all, and the shards say why
    partial = durations(catalogue, results_io.save(small_results, tmp_path))
    assert partial.seconds is None and "has no durations for covering, gin_fts" in partial.source
    assert durations(
        catalogue.select(None, ["baseline", "composite"]), results_io.save(small_results, tmp_path)
    ).seconds
    with pytest.raises(InputError, match="no such results file"):
        durations(catalogue, tmp_path / "missing")


@pytest.mark.parametrize("raw", ["0/3", "4/3", "3", "a/b", "-1/2", "1/0"])
def test_a_shard_is_i_of_n(raw):
    with pytest.raises(InputError, match="--shard takes i/N with 1 <= i <= N"):
        parse_shard(raw)
    assert parse_shard("2/3") == (2, 3)


def _buffers(c: Cell) -> object:
    """A read's buffers sample by sample; a write's median, as the buffers gate reads them. A
    rolled-back insert leaves a dead tuple, so whether the heap or an index needs one more page on a
    given sample depends on every write before it, and shards write in another order (CI saw 6 → 7
    on one of twenty create_task samples)."""
    return c.samples.buffers if c.kind == "read" else median(c.samples.buffers)


def _facts(res: Results) -> list[tuple[object, ...]]:
    """What must not depend on how the run was sharded: cell by cell, in order."""
    return [
        (
            c.scenario,
            c.variant,
            c.kind,
            c.verdict,
            c.plan.fingerprint,
            c.samples.plan_fingerprints,
            _buffers(c),
            c.samples.result_hashes,
            c.samples.user_class[: c.samples.explained],
        )
        for c in res.cells
    ]


@pytest.mark.parametrize("count", [2, 3])
def test_shards_merged_are_one_unsharded_run(unsharded, shards, count):
    merged = merge([(f"shard {res.shard.index}", res) for res in reversed(shards[count])])  # any order
    assert [len(res.cells) for res in shards[count]] == [
        len(SCENARIOS) * len(res.shard.variants) for res in shards[count]
    ]
    assert _facts(merged) == _facts(unsharded)
    assert [v.name for v in merged.variants] == VARIANTS
    assert [(v.name, v.statements, v.index_size_bytes) for v in merged.variants] == [
        (v.name, v.statements, v.index_size_bytes) for v in unsharded.variants
    ]
    result = compare(unsharded, merged)
    assert result.findings == [] and result.exit_code == 0, result.findings
    # every shard kept what is its own: its calibration before and after, its conditions
    assert [s.shard.index for s in merged.shards] == list(range(1, count + 1))
    for record in merged.shards:
        calibration = record.shard.calibration
        assert set(calibration.before_ms) == set(calibration.after_ms) == {"round_trip", "server_cpu", "client_cpu"}
        assert all(len(samples) == 10 and min(samples) > 0 for samples in calibration.before_ms.values())
        assert record.conditions is not None and record.run_id
    assert merged.shard is None and merged.conditions is None


def test_a_merged_run_is_read_reported_and_compared_like_any_run(shards, unsharded, tmp_path):
    paths = [results_io.save(res, tmp_path / f"shard-{res.shard.index}") for res in shards[2]]
    proc = taskbench_here("merge", *map(str, paths), "--out", str(tmp_path / "merged"))
    assert proc.returncode == 0, proc.stderr
    assert "merged 2 shards in" in proc.stderr
    merged = results_io.load(tmp_path / "merged")
    assert _facts(merged) == _facts(unsharded) and len(merged.shards) == 2
    assert {p.name for p in (tmp_path / "merged").iterdir()} >= {
        "results.json",
        "index.html",
        "summary.md",
        "results.csv",
    }
    summary = (tmp_path / "merged" / "summary.md").read_text()  # each shard's conditions and calibration
    assert all(f"shard {s.shard.index}/2 ({', '.join(s.shard.variants)}) measured" in summary for s in merged.shards)
    assert summary.count("calibration medians before → after: round_trip") == 2
    reference = results_io.save(unsharded, tmp_path / "unsharded")
    assert taskbench_here("compare", str(reference), str(tmp_path / "merged")).returncode == 0
    again = taskbench_here("merge", *map(str, paths), "--out", str(tmp_path / "merged"))
    assert again.returncode == 2 and "already holds a results.json" in one_line_error(again)


def _written(res: Results, where: Path) -> str:
    return str(results_io.write(res, where))


def test_merge_refuses_shards_that_do_not_belong_together(shards, unsharded, tmp_path):
    one, two, three = shards[3]
    cases = {
        "missing": ([one, three], "cannot merge: shard 2/3 missing (given: 1/3, 3/3)"),
        "doubled": ([one, two, two, three], "cannot merge: shard 2/3 given twice: "),
        "dataset": (
            [one, two.model_copy(update={"dataset": two.dataset.model_copy(update={"fingerprint": "0ther"})}), three],
            "cannot merge: different datasets: ",
        ),
        "catalogue": (
            [one, two, three.model_copy(update={"shard": three.shard.model_copy(update={"catalogue": "0ther"})})],
            "cannot merge: different catalogues: ",
        ),
        "count": ([one, two, three, shards[2][0]], "cannot merge: different shard counts: "),
        "not a shard": ([one, two, three, unsharded], "not a shard's results (measured without --shard)"),
    }
    for name, (runs, message) in cases.items():
        paths = [_written(res, tmp_path / name / str(i)) for i, res in enumerate(runs)]
        proc = taskbench_here("merge", *paths, "--out", str(tmp_path / name / "merged"))
        line = one_line_error(proc)
        assert proc.returncode == 2 and message in line, (name, line)
        assert not (tmp_path / name / "merged").exists()
