"""What the committed result fixtures make of `compare` and `report`, byte for byte: a refactoring
must change none of it. When a change is meant to, regenerate with TASKBENCH_UPDATE_GOLDEN=1 and
let the diff of tests/data/golden/ show what changed."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench import results as results_io
from bench.judge.compare import compare
from bench.output import RESULTS_FILE
from bench.report import render
from bench.report.build import write_report

DATA = Path(__file__).resolve().parent / "data"
GOLDEN = DATA / "golden"
NEWEST = f"results_v{results_io.SCHEMA_VERSION}"
REPORTED = [NEWEST, f"{NEWEST}_scale", f"{NEWEST}_load", f"{NEWEST}_upgrade"]
COMPARED = [("results_v10", NEWEST), (NEWEST, NEWEST)]


def _against_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("TASKBENCH_UPDATE_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden {name}: run with TASKBENCH_UPDATE_GOLDEN=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} changed (TASKBENCH_UPDATE_GOLDEN=1 if meant)"


@pytest.mark.parametrize("fixture", REPORTED)
def test_the_report_of_a_fixture_is_unchanged(fixture, tmp_path):
    shutil.copy(DATA / f"{fixture}.json", tmp_path / RESULTS_FILE)
    write_report(tmp_path)
    for produced in ("summary.md", "results.csv"):
        _against_golden(f"{fixture}.{produced}", (tmp_path / produced).read_text(encoding="utf-8"))


@pytest.mark.parametrize(("base", "head"), COMPARED)
def test_the_comparison_of_fixtures_is_unchanged(base, head):
    cmp = compare(results_io.load(DATA / f"{base}.json"), results_io.load(DATA / f"{head}.json"))
    lines = [f"exit {cmp.exit_code}", *render.terminal(cmp, base, head), "", *render.markdown(cmp, base, head)]
    _against_golden(f"compare.{base}.{head}.txt", "\n".join(lines) + "\n")
