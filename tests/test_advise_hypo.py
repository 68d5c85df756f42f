"""HypoPG screening, on Debian's PostgreSQL 15 with its HypoPG package (the embedded wheel has no
HypoPG): B-tree candidates the planner would not use are not built, and the report sets the
hypothetical size and plan of each beside the real build's."""

from dataclasses import replace
from pathlib import Path

import pytest

from bench.advise.options import FINAL_RUN, AdviseOptions
from bench.advise.run import advise
from bench.targets import schema
from bench.targets.target import open_target
from seed.load import seed_database
from tests.support import SUITE_ROOT, TINY
from tools.loopback_server import loopback_server

DEBIAN = Path("/usr/lib/postgresql/15/bin")
HYPOPG = Path("/usr/share/postgresql/15/extension/hypopg.control")

pytestmark = pytest.mark.skipif(
    not (DEBIAN / "postgres").exists() or not HYPOPG.exists(),
    reason="needs Debian's PostgreSQL 15 with HypoPG (apt-get install postgresql-15 "
    "postgresql-15-hypopg); the embedded wheel has no HypoPG",
)


def test_hypopg_screens_btrees_and_the_report_shows_its_bias(catalogue, tmp_path):
    with loopback_server(bin_dir=DEBIAN, parent=SUITE_ROOT) as urls:
        target = open_target(urls["SOCKET_URL"], "tbhypo")
        schema.claim_database(target)
        seed_database(target, TINY)
        # SLAs ÷ 20: on the tiny dataset the task lists then fail at baseline and B-trees are needed
        options = AdviseOptions(
            headroom=20,
            deploy=False,
            concurrent=True,
            max_builds=20,
            final_run=replace(FINAL_RUN, cold_samples=0, stability_rounds=0),
        )
        run_dir, advice = advise(target, catalogue, options, tmp_path)
    assert advice.settings.hypopg.startswith("used")
    screened = [c for c in advice.candidates if c.hypo is not None]
    assert screened and all(c.using == "btree" and c.hypo and c.hypo.size_bytes > 0 for c in screened)
    # a B-tree is built only where the planner would use it for a failing scenario it serves
    failing = set(advice.failing_at_baseline)
    assert all(c.hypo and set(c.hypo.used_by) & failing for c in screened if c.screened)
    assert any(not c.screened and c.serves for c in screened)
    built = [c for c in screened if c.size_bytes is not None]
    assert built and all(c.measured_with for c in built)
    report = (run_dir / "advise.md").read_text()
    assert "## HypoPG: hypothetical against real" in report
    for c in built:
        assert c.hypo is not None and c.size_bytes is not None
        assert f"| {c.name} |" in report and f"{c.size_bytes / c.hypo.size_bytes:.2f}" in report
