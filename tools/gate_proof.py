"""Proof that the regression gate is trustworthy, re-runnable by anyone (`make gate-proof`).

On the ci profile (embedded server, database taskbench_ci): one baseline run, then, each judged as
`make check` judges (bench.check: measure, compare, re-measure a variant before a time finding stands)
  A/A: N identical re-runs — every one must exit 0;
  A/B: four injected regressions — every one must be caught:
    1. an index removed from a variant (composite without tb_tasks_user_created),
    2. a query rewritten so it cannot use its index (a cast around the filtered column),
    3. index scans disabled for a run (ALTER ROLE ... SET enable_*scan = off; reset afterwards):
       compare names the changed planner settings (exit 2), and --force finds the lost plans,
    4. a query made ~3× slower (a one-off pg_sleep of twice its median).
Prints one line per comparison and exits 0 only if there is no false alarm and no miss.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.targets import schema  # noqa: E402
from bench.catalogue.files import Catalog, load_catalog  # noqa: E402
from bench.judge.check import check  # noqa: E402
from bench.judge.compare import Comparison, compare  # noqa: E402
from bench.measure.runner import RunOptions, run  # noqa: E402
from bench.targets.target import Target, open_target  # noqa: E402
from seed.load import seed_database  # noqa: E402
from seed.profiles import get_profile  # noqa: E402

SCENARIOS = ["recent_tasks", "pending_tasks", "task_by_id", "tag_contains", "last_messages"]
VARIANTS = ["baseline", "composite"]
OPTS = RunOptions(cold_samples=0, stability_rounds=0)
SCANS_OFF = ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan")
SLOW_CELL = ("pending_tasks", "baseline")


def _catalog(directory: Path) -> Catalog:
    return load_catalog(directory).select(SCENARIOS, VARIANTS)


def _edit(directory: Path, relative: str, old: str, new: str) -> None:
    path = directory / relative
    text = path.read_text()
    if old not in text:
        raise SystemExit(f"gate-proof: {relative} no longer contains {old!r}; update the injection")
    path.write_text(text.replace(old, new))


def _line(label: str, result: Comparison, want: str, cell: tuple[str, str] | None = None) -> bool:
    """Print one comparison; True if it came out as wanted (``cell``: judge that cell's findings only)."""
    found = [f for f in result.regressions if cell is None or (f.scenario, f.variant) == cell]
    ok = result.exit_code == 0 if want == "pass" else bool(found or result.incomparable)
    gates = ", ".join(sorted({f.gate for f in found}))
    detail = "; ".join(result.incomparable) if result.incomparable else \
        (f"{gates}: {found[0].message}" if found else "no finding")
    print(f"{'ok  ' if ok else 'FAIL'} {label:46} exit {result.exit_code}  {detail[:150]}")
    return ok


def _scans_off(target: Target, off: bool) -> None:
    with psycopg.connect(target.libpq_conninfo(target.maintenance_db), autocommit=True) as conn:
        user = target.url.username or "postgres"
        for setting in SCANS_OFF:
            conn.execute(f'ALTER ROLE "{user}" SET {setting} = off' if off else f'ALTER ROLE "{user}" RESET {setting}')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=10, help="A/A re-runs (default 10)")
    args = parser.parse_args()
    started = time.perf_counter()
    target = open_target(None, "taskbench_ci")
    schema.claim_database(target)
    seed_database(target, get_profile("ci"))
    scenarios = ROOT / "scenarios"
    base = run(target, _catalog(scenarios), OPTS)

    def gate(catalog: Catalog) -> Comparison:
        return check(catalog, base, lambda cat: run(target, cat, OPTS))[1]

    ok = True
    for i in range(args.reruns):
        ok &= _line(f"A/A re-run {i + 1}", gate(_catalog(scenarios)), "pass")

    with tempfile.TemporaryDirectory() as tmp:
        def injected(relative: str, old: str, new: str) -> Comparison:
            work = Path(tmp) / f"s{time.monotonic_ns()}"
            shutil.copytree(scenarios, work)
            _edit(work, relative, old, new)
            return gate(_catalog(work))

        removed = injected("variants/composite.toml",
                           '"CREATE INDEX tb_tasks_user_created ON tasks (user_id, created_at DESC)",', "")
        ok &= _line("A/B index removed from composite", removed, "regress")
        rewritten = injected("queries/recent_tasks.toml", "WHERE user_id = :user_id",
                             "WHERE user_id::text = (:user_id)::uuid::text")
        ok &= _line("A/B recent_tasks rewritten (cast on user_id)", rewritten, "regress")
        # ~3× slower: a one-off sleep of twice the median of a cell slow enough for pg_sleep's ms resolution
        pause = round(2 * statistics.median(base.cell(*SLOW_CELL).samples.client_ms) / 1000, 3)
        slower = injected(f"queries/{SLOW_CELL[0]}.toml", "AND deleted_at IS NULL",
                          f"AND deleted_at IS NULL AND (SELECT pg_sleep({pause})) IS NOT NULL")
        ok &= _line(f"A/B {' × '.join(SLOW_CELL)} slower (+{pause * 1000:.0f} ms sleep)", slower,
                    "regress", cell=SLOW_CELL)
    _scans_off(target, True)
    try:
        no_scans = run(target, _catalog(scenarios), OPTS)
    finally:
        _scans_off(target, False)
    ok &= _line("A/B index scans disabled", compare(base, no_scans), "regress")
    ok &= _line("A/B index scans disabled (--force)", compare(base, no_scans, force=True), "regress")
    print(f"{'all as expected' if ok else 'UNEXPECTED RESULTS'} in {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
