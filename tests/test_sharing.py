"""Each distinct cell measured once: a run that shares gives what a run that measures every cell
gives, and says which cells shared."""

import pytest

from bench.errors import EXIT_OK
from bench.judge.compare import compare
from bench.measure.options import RunOptions
from bench.runs.matrix import measure

OPTS = RunOptions(cold_samples=1, stability_rounds=1, concurrent=True)
# A scenario the list indexes change (recent_tasks), one they do not (task_by_id, the primary key),
# and a write (its table's indexes differ between every pair of these variants but baseline and gin_fts'
# messages-only index).
PICK = (["recent_tasks", "task_by_id", "post_message"], ["baseline", "composite", "gin_fts", "covering"])


@pytest.fixture(scope="module")
def both(seeded, catalogue):
    chosen = catalogue.select(*PICK)
    return measure(seeded, chosen, OPTS), measure(seeded, chosen, RunOptions(**{**OPTS.__dict__, "share": False}))


def test_a_cell_with_the_same_plans_and_indexes_shares_the_measured_one(both):
    shared, _ = both
    by_key = {(c.scenario, c.variant): c for c in shared.cells}
    # the primary-key lookup plans the same under every variant: measured once, under the first
    task = [by_key["task_by_id", v] for v in PICK[1]]
    assert task[0].shared_with is None and all(c.shared_with == "baseline" for c in task[1:])
    assert all(c.samples == task[0].samples and c.verdict == task[0].verdict for c in task[1:])
    assert all(c.seconds == 0 for c in task[1:]) and "same plans as baseline" in task[1].verdict_text
    # composite's list index changes recent_tasks' plan: measured for itself
    assert by_key["recent_tasks", "composite"].shared_with is None
    # messages' indexes are the same under baseline and composite? no: composite adds one; gin_fts only
    # touches tasks, so a message write under gin_fts shares baseline's
    assert by_key["post_message", "gin_fts"].shared_with == "baseline"
    assert by_key["post_message", "composite"].shared_with is None
    # stability is measured under every variant, shared or not
    assert all(c.stability is not None for c in shared.cells)


def test_sharing_changes_no_verdict_and_no_gate(both):
    shared, unshared = both
    assert all(c.shared_with is None for c in unshared.cells)
    assert [(c.scenario, c.variant, c.verdict) for c in shared.cells] == [
        (c.scenario, c.variant, c.verdict) for c in unshared.cells
    ]
    result = compare(unshared, shared)
    assert result.exit_code == EXIT_OK and not result.regressions, result.regressions
