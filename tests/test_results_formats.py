"""Every results.json version this code reads, from committed files (tests/data/results_v*.json, small
real runs of the commit that wrote each version: matrix, scale and load runs): each migrates to the
current format with the right run kind, and compare, recommend and report read it. No server, no run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bench import results as results_io
from bench.errors import EXIT_INPUT, EXIT_OK, InputError
from bench.judge.compare import compare
from bench.judge.recommend import recommend
from bench.output import RESULTS_FILE
from bench.report import build, render
from bench.results import RUN_KINDS, SCHEMA_VERSION, LoadConfig, MatrixConfig, Results, ScaleConfig

DATA = Path(__file__).resolve().parent / "data"
FIXTURES = sorted(DATA.glob("results_v*.json"))
NEWEST = DATA / f"results_v{SCHEMA_VERSION}.json"
CONFIGS = {"matrix": MatrixConfig, "scale": ScaleConfig, "load": LoadConfig}


def _version(path: Path) -> int:
    return int(json.loads(path.read_text(encoding="utf-8"))["schema_version"])


def _kind(path: Path) -> str:
    """What each fixture is, by its name: results_v6_load.json is a load run, results_v6.json a matrix."""
    return next((k for k in RUN_KINDS if path.stem.endswith(f"_{k}")), "matrix")


@pytest.fixture(scope="module", params=FIXTURES, ids=[p.name for p in FIXTURES])
def fixture(request) -> tuple[Path, Results]:
    return request.param, results_io.load(request.param)


def test_every_version_read_has_a_fixture_and_the_newest_every_kind():
    assert sorted({_version(p) for p in FIXTURES}) == results_io.FORMAT.readable_versions()
    assert {_kind(p) for p in FIXTURES if _version(p) == SCHEMA_VERSION} == set(RUN_KINDS)
    assert NEWEST.exists()


def test_a_fixture_migrates_to_the_current_format_with_its_kind(fixture):
    path, res = fixture
    assert res.schema_version == SCHEMA_VERSION
    assert res.kind == _kind(path) and isinstance(res.config, CONFIGS[res.kind])
    saved = json.loads(res.model_dump_json())
    assert saved["kind"] == res.kind and "kind" not in saved["config"]  # written once, at the top
    assert Results.model_validate(saved) == res  # the current format reads back as itself


def test_a_load_run_records_its_own_settings_not_a_matrix_runs():
    newest = results_io.load(DATA / f"results_v{SCHEMA_VERSION}_load.json").config
    assert isinstance(newest, LoadConfig)
    # Every setting recorded; only the rate may be None (a closed loop).
    assert all(value is not None for name, value in newest.model_dump().items() if name != "rate")
    older = results_io.load(DATA / "results_v6_load.json")
    assert isinstance(older.config, LoadConfig) and older.load is not None
    assert (older.config.clients, older.config.rate) == (older.load.clients, older.load.rate)
    assert older.config.pgbench_rounds == (older.load.pgbench.rounds if older.load.pgbench else 0)
    assert older.config.duration_s is None and older.config.jobs is None  # not recorded then: not guessed


def test_compare_reads_every_fixture(fixture):
    _, res = fixture
    result = compare(res, res)
    if res.kind == "load":
        assert result.exit_code == EXIT_INPUT and "load run" in result.incomparable[0]
        return
    assert result.exit_code == EXIT_OK and not result.findings
    for lines in (render.terminal(result, "a", "b"), render.markdown(result, "a", "b")):
        assert any("not judged" in line for line in lines)


OLDER_MATRIX = [p for p in FIXTURES if _kind(p) == "matrix" and p != NEWEST]


@pytest.mark.parametrize("path", OLDER_MATRIX, ids=[p.name for p in OLDER_MATRIX])
def test_an_older_run_is_judged_against_the_newest(path):
    res, newest = results_io.load(path), results_io.load(NEWEST)
    result = compare(res.model_copy(update={"dataset": newest.dataset, "environment": newest.environment}), newest)
    assert result.exit_code != EXIT_INPUT and not result.incomparable
    assert {f.scenario for f in result.findings} <= {c.scenario for c in res.cells}


def test_recommend_reads_every_fixture(fixture):
    _, res = fixture
    rec = recommend(res)
    assert (rec.variant or rec.closest) is not None
    if res.kind == "load":
        assert rec.variant is None  # no cell measured: nothing is shown to meet its SLA


def test_report_reads_every_fixture(fixture, tmp_path, monkeypatch):
    """Every version's pages and tables; the figures (matplotlib: a second or more each) of the
    newest version of each kind only, which every older run becomes once migrated."""
    path, res = fixture
    newest = _version(path) == SCHEMA_VERSION
    if not newest:
        monkeypatch.setattr(build, "FIGURES", {})
    shutil.copy(path, tmp_path / RESULTS_FILE)
    written = {p.name for p in build.write_report(tmp_path)}
    assert {"index.html", "summary.md", "results.csv"} <= written
    assert ("heatmap.png" in written) == (bool(res.cells) and newest)
    assert ("scale.png" in written) == (res.kind == "scale" and newest)
    assert ("load.png" in written) == (res.kind == "load" and newest)


def test_settings_migrate_to_their_real_unit_as_postgresql_shows_them():
    older = results_io.load(DATA / "results_v8.json").environment.settings
    assert older["effective_cache_size"] == "4GB" and older["work_mem"] == "4MB"
    assert older["random_page_cost"] == "4"  # no unit: as it was
    assert [results_io.setting_text(*s) for s in [("393216", "8kB"), ("20481", "8kB"), ("0", "kB"), ("60", "s")]] == [
        "3GB",
        "163848kB",
        "0",
        "1min",
    ]


@pytest.mark.parametrize(
    "raw, said",
    [
        ({"schema_version": "8"}, 'schema_version "8" is not supported'),  # a string that looks like one
        ({"schema_version": [8]}, "schema_version [8] is not supported"),
        ({"schema_version": {"v": 8}}, 'schema_version {"v": 8} is not supported'),
        ({"schema_version": True}, "schema_version true is not supported"),
        ({"schema_version": 8.0}, "schema_version 8.0 is not supported"),
        ({"schema_version": 2, "cells": "x", "environment": 3}, "invalid results file of version 2: TypeError"),
    ],
)
def test_a_malformed_version_or_shape_is_one_clear_line(tmp_path, raw, said):
    path = tmp_path / "results.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(InputError) as info:
        results_io.load(path)
    assert said in str(info.value) and "\n" not in str(info.value)
