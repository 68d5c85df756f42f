"""Proof that the regression gate is trustworthy, re-runnable by anyone (`make gate-proof`).

On the ci profile (the embedded server, or the server at --database-url; database taskbench_ci),
`check` as `make check` runs it, on a few scenarios under two variants: base and head measured now
on this server and judged against each other on every gate:
  A/A: N checks of the unchanged catalogue, every cell measured on both sides (--measure-unchanged)
       — every one must exit 0 with its time gate on and no finding of any kind (counted per gate);
  A/B: injected regressions — every one must be caught:
    1. every query ×1.5 slower or more: an always-true, CPU-bound subquery costing half of the
       scenario's slowest median (same plan, same rows) — the time gate must flag every cell that
       really was ×1.5 slower or more in the pairs (and above the floor), and the check must fail;
    2. one cell of at least 1 ms made ×1.5 slower the same way;
    3. a rewrite returning other rows (one task fewer on the first page);
    4. a misestimate: a filter the planner cannot estimate (md5(title) = md5(title || ''));
    5. a spill: the open tasks sorted by a long expression before they are counted;
    6. an index removed from a variant, 7. a cast that makes a query lose its index;
  A/A across a schema change: the base side's DDL differs from the models' (title as text, a column
  since dropped) — the base side is built on it, time is judged, nothing is found.
Prints one line per check and exits 0 only if there is no false alarm and no miss.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # bench and tools, from any working directory

from bench.catalogue.files import Catalogue, load_catalogue  # noqa: E402
from bench.catalogue.options import BASELINE_VARIANT  # noqa: E402
from bench.judge.check import Before, check  # noqa: E402
from bench.judge.compare import Comparison  # noqa: E402
from bench.judge.gates import Kind  # noqa: E402
from bench.judge.timegate import DEFAULT_TIME, paired  # noqa: E402
from bench.measure.options import PairOptions, RunOptions  # noqa: E402
from bench.measure.paired import side_by_side  # noqa: E402
from bench.results import Results  # noqa: E402
from bench.runs import sides  # noqa: E402
from bench.runs.matrix import measure  # noqa: E402
from bench.targets import schema  # noqa: E402
from bench.targets.target import Target, open_target  # noqa: E402
from seed.load import seed_database  # noqa: E402
from seed.profiles import get_profile  # noqa: E402

SCENARIOS = ["recent_tasks", "pending_tasks", "task_by_id", "open_task_count", "last_messages"]
VARIANTS = [BASELINE_VARIANT, "composite"]
# The proof measures alone: it waits for another measurement on the server rather than fail after 10 s.
OPTS = RunOptions(cold_samples=0, stability_rounds=0, lock_wait=900)
PAIRS = PairOptions(lock_wait=900)
ALWAYS_TRUE = "(SELECT count(*) FROM generate_series(1, {rows})) > 0"
PAIRS_FLOOR_MS = DEFAULT_TIME.floor_ms


def _catalogue(directory: Path) -> Catalogue:
    return load_catalogue(directory).select(SCENARIOS, VARIANTS)


def _rows_for(target: Target, ms: float) -> int:
    """How many generate_series rows the server counts in about ``ms`` milliseconds."""
    rows = 2_000_000
    with psycopg.connect(target.libpq_conninfo(), autocommit=True) as conn:
        conn.execute("SELECT count(*) FROM generate_series(1, %s)", (rows,))  # warm
        started = time.perf_counter()
        conn.execute("SELECT count(*) FROM generate_series(1, %s)", (rows,))
        seconds_per_row = (time.perf_counter() - started) / rows
    return max(1, round(ms / 1000 / seconds_per_row))


def _median(res: Results, scenario: str, variant: str) -> float:
    cell = res.cell(scenario, variant)
    assert cell is not None
    return statistics.median(cell.samples.client_ms)


class Proof:
    def __init__(self, target: Target, scenarios: Path, work: Path) -> None:
        self.target, self.scenarios, self.work = target, scenarios, work
        self.ok = True

    def check(
        self, catalogue: Catalogue, schema_ddl: str | None = None, everything: bool = False
    ) -> tuple[Results, Comparison]:
        """`check` with the shipped catalogue standing for "before"."""
        current, result = check(
            catalogue,
            Before(_catalogue(self.scenarios), "the shipped scenarios", schema_ddl),
            lambda b, a, ddl: sides.measure(
                self.target, b, a, sides.SidesOptions(OPTS, PAIRS, everything), base_schema=ddl
            ),
            lambda b, a, ddl, n: side_by_side(self.target, b, a, replace(PAIRS, pairs=n), base_schema=ddl),
        )
        assert current is not None, result.time_refused
        return current, result

    def injected(self, edits: dict[str, Callable[[str], str]]) -> tuple[Results, Comparison]:
        """A check of the catalogue with ``edits`` (file under scenarios/ → text change) applied."""
        work = self.work / f"s{time.monotonic_ns()}"
        shutil.copytree(self.scenarios, work)
        for relative, edit in edits.items():
            path = work / relative
            text = path.read_text()
            if edit(text) == text:
                raise SystemExit(f"gate-proof: the injection no longer changes {relative}; update it")
            path.write_text(edit(text))
        return self.check(_catalogue(work))

    def line(self, label: str, result: Comparison, ok: bool, detail: str) -> None:
        self.ok &= ok
        shown = detail[:170] if ok else detail  # a failure is shown whole
        print(f"{'ok  ' if ok else 'FAIL'} {label:44} exit {result.exit_code}  {shown}", flush=True)

    def expect(self, label: str, result: Comparison, kinds: set[Kind], cell: tuple[str, str] | None = None) -> None:
        """A regression of one of ``kinds`` (in ``cell``, if given) and exit 1."""
        found = [f for f in result.regressions if f.kind in kinds and (cell is None or (f.scenario, f.variant) == cell)]
        detail = (
            f"{found[0].kind.value}: {found[0].scenario} × {found[0].variant}: {found[0].message}"
            if found
            else f"missed; findings: {[(f.kind.value, f.scenario, f.variant, f.message) for f in result.findings]} "
            f"{result.time_refused}; notes: {result.notes}"
        )
        self.line(label, result, bool(found) and result.exit_code == 1, detail)


def _account(result: Comparison) -> str:
    """An A/A check's line: its findings of any kind, if any (each a false alarm), then its time account."""
    found = "; ".join(f"{f.kind.value}: {f.scenario} × {f.variant}: {f.message}" for f in result.findings)
    return f"{len(result.findings)} finding(s){': ' + found if found else ''}; time: {result.time}"


def _slower_sql(rows: int) -> Callable[[str], str]:
    return lambda text: text.replace("WHERE ", f"WHERE {ALWAYS_TRUE.format(rows=rows)} AND ", 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reruns", type=int, default=20, help="A/A checks (default 20)")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-url", help="another server (default: the embedded one)")
    where.add_argument(
        "--neon-settings",
        action="store_true",
        help="a throw-away server from the wheel with the settings Neon gives a 1 CU compute",
    )
    args = parser.parse_args()
    if args.neon_settings:
        from tools.loopback_server import NEON_1CU, loopback_server

        with loopback_server(settings=NEON_1CU) as urls:
            print(f"a server with Neon's 1 CU settings ({', '.join(f'{k}={v}' for k, v in NEON_1CU.items())})")
            return prove(args.reruns, urls["SOCKET_URL"])
    return prove(args.reruns, args.database_url)


def prove(reruns: int, database_url: str | None) -> int:
    started = time.perf_counter()
    target = open_target(database_url, "taskbench_ci")
    schema.claim_database(target)
    seed_database(target, get_profile("ci"))
    scenarios = ROOT / "scenarios"
    base = measure(target, _catalogue(scenarios), OPTS)
    with tempfile.TemporaryDirectory() as tmp:
        proof = Proof(target, scenarios, Path(tmp))
        false_alarms: Counter[str] = Counter()
        for i in range(reruns):
            _, result = proof.check(_catalogue(scenarios), everything=True)
            false_alarms.update(f.kind.value for f in result.findings)
            proof.line(
                f"A/A check {i + 1}",
                result,
                result.exit_code == 0 and result.time_refused is None and not result.findings,
                _account(result),
            )
        shown = ", ".join(f"{kind.value} {false_alarms[kind.value]}" for kind in Kind)
        print(f"A/A findings per gate over {reruns} checks: {shown}", flush=True)

        # 1. every query ×1.5 slower or more: half of each scenario's slowest median, counted by the server
        extra = {s: 0.5 * max(_median(base, s, v) for v in VARIANTS) for s in SCENARIOS}
        current, result = proof.injected(
            {f"queries/{s}.toml": _slower_sql(_rows_for(target, ms)) for s, ms in extra.items()}
        )
        assert current.side_by_side is not None
        verdicts = {(c.scenario, c.variant): paired(c.base_ms, c.head_ms) for c in current.side_by_side.cells}
        ratios = {cell: v.ratio for cell, v in verdicts.items()}
        flagged = {(f.scenario, f.variant) for f in result.regressions if f.kind == Kind.TIME}
        due = {cell for cell, v in verdicts.items() if v.ratio >= 1.5 and v.difference_ms >= PAIRS_FLOOR_MS}
        proof.line(
            "A/B every query slower (+½ slowest median)",
            result,
            result.exit_code == 1 and due <= flagged,
            f"{len(flagged)}/{len(ratios)} cells flagged; measured ×{min(ratios.values()):.2f}–"
            f"×{max(ratios.values()):.2f}; smallest flagged ×"
            f"{min((ratios[c] for c in flagged), default=0):.2f}; every cell at ×1.5 or more flagged: "
            f"{due <= flagged}"
            + "".join(
                f"; missed {c[0]} × {c[1]}: ×{verdicts[c].ratio:.2f}, {verdicts[c].difference_ms:+.3f} ms, "
                f"p={verdicts[c].p_slower:.1e}"
                for c in sorted(due - flagged)
            ),
        )

        # 2. one cell of at least a millisecond, ×1.5
        cell = max(((s, v) for s in SCENARIOS for v in VARIANTS), key=lambda c: _median(base, *c))
        ms = _median(base, *cell)
        _, result = proof.injected({f"queries/{cell[0]}.toml": _slower_sql(_rows_for(target, ms / 2))})
        proof.expect(f"A/B {cell[0]} × {cell[1]} ({ms:.1f} ms) ×1.5", result, {Kind.TIME}, cell)

        _, result = proof.injected(
            {"queries/recent_tasks.toml": lambda t: t.replace("LIMIT :page_size", "LIMIT :page_size - 1")}
        )
        proof.expect("A/B first page one task short", result, {Kind.RESULTS})
        _, result = proof.injected(
            {
                "queries/open_task_count.toml": lambda t: t.replace(
                    "AND deleted_at IS NULL", "AND deleted_at IS NULL AND md5(title) = md5(title || '')"
                )
            }
        )
        proof.expect("A/B misestimate (md5(title) = md5(title || ''))", result, {Kind.MISESTIMATE})
        _, result = proof.injected(
            {
                "queries/open_task_count.toml": lambda t: t.replace(
                    "SELECT count(*) FROM tasks\nWHERE user_id = :user_id AND NOT is_completed AND deleted_at IS NULL",
                    "SELECT count(*) FROM (SELECT id FROM tasks\nWHERE user_id = :user_id AND NOT is_completed AND "
                    "deleted_at IS NULL ORDER BY repeat(description, 40)) s",
                )
            }
        )
        proof.expect("A/B spill (sort by a long expression)", result, {Kind.SPILL})
        _, result = proof.injected(
            {
                "variants/composite.toml": lambda t: t.replace(
                    '"CREATE INDEX tb_tasks_user_created ON tasks (user_id, created_at DESC)",', ""
                )
            }
        )
        proof.expect("A/B index removed from composite", result, {Kind.SORT_ADDED, Kind.INDEX_DROPPED, Kind.SEQ_SCAN})
        _, result = proof.injected(
            {
                "queries/recent_tasks.toml": lambda t: t.replace(
                    "WHERE user_id = :user_id", "WHERE user_id::text = (:user_id)::uuid::text"
                )
            }
        )
        proof.expect("A/B recent_tasks rewritten (cast on user_id)", result, {Kind.SEQ_SCAN, Kind.INDEX_DROPPED})

        # the models changed since "before" (title was text, a flag since dropped): the base side is
        # built on that DDL, time is judged and nothing is found
        recorded = base.schema_ddl.replace(
            "title VARCHAR(200)", "flagged BOOLEAN DEFAULT false NOT NULL, title TEXT", 1
        )
        _, result = proof.check(_catalogue(scenarios), schema_ddl=recorded)
        proof.line(
            "A/A across a schema change (recorded DDL)",
            result,
            result.exit_code == 0 and result.time_refused is None and "the base side on its own schema" in result.time,
            _account(result),
        )
    print(f"{'all as expected' if proof.ok else 'UNEXPECTED RESULTS'} in {time.perf_counter() - started:.0f} s")
    return 0 if proof.ok else 1


if __name__ == "__main__":
    sys.exit(main())
