"""The regression gate as CI runs it: measure the baseline's cells, judge them, and measure again
before a time regression may fail the build.

Plans, buffers and SLA verdicts are judged on one run. Milliseconds are not: on a shared machine a
neighbour's burst can land on one cell (seen in CI: one cell ×4.5 while its variant as a whole drifted
×2.1, p=1e-14 because every sample of that cell was taken during the burst). So each variant with
a time finding is measured again, whole — its other cells give the re-measurement a drift of its
own — and a time finding stands only if every re-measurement finds it again.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.catalogue.files import Catalog
from bench.judge.compare import DEFAULT_THRESHOLDS, Comparison, Finding, Thresholds, compare
from bench.results import Results

Remeasure = Callable[[list[str]], Results]  # variant names → a run of the baseline's scenarios under them


def baseline_catalog(base: Results, catalog: Catalog) -> Catalog:
    """The catalogue's part that the baseline measured: the cells the gate can judge. Scenarios or
    variants the catalogue no longer has are left out here and reported by compare as missing."""
    scenarios = {s.name for s in catalog.scenarios}
    variants = {v.name for v in catalog.variants}
    wanted_s = list(dict.fromkeys(c.scenario for c in base.cells if c.scenario in scenarios))
    wanted_v = list(dict.fromkeys(c.variant for c in base.cells if c.variant in variants))
    return catalog.select(wanted_s, wanted_v)


def _key(f: Finding) -> tuple[str, str]:
    return f.scenario, f.variant


def confirm(base: Results, first: Comparison, remeasure: Remeasure, th: Thresholds = DEFAULT_THRESHOLDS,
            rounds: int = 1, across_machines: bool = False) -> Comparison:
    """Keep a time regression of ``first`` only if ``rounds`` re-measurements of its variant all find it;
    the others move to ``first.unconfirmed``. Other gates are left as they are."""
    for attempt in range(1, rounds + 1):
        suspects = [f for f in first.regressions if f.gate == "time"]
        if not suspects:
            break
        again = compare(base, remeasure(sorted({f.variant for f in suspects})), th, across_machines=across_machines)
        found = {_key(f): f for f in again.regressions if f.gate == "time"}
        for f in suspects:
            if _key(f) in found:
                f.message += f"; re-measured ({attempt}): {found[_key(f)].message}"
            else:
                first.regressions.remove(f)
                first.unconfirmed.append(f)
    return first


def check(catalog: Catalog, base: Results, measure: Callable[[Catalog], Results], th: Thresholds = DEFAULT_THRESHOLDS,
          rounds: int = 1, across_machines: bool = False) -> tuple[Results, Comparison]:
    """Measure the baseline's cells (``measure`` runs a catalogue on the target), compare them with
    ``base`` and confirm time findings."""
    cat = baseline_catalog(base, catalog)
    current = measure(cat)
    first = compare(base, current, th, across_machines=across_machines)
    scenarios = [s.name for s in cat.scenarios]
    return current, confirm(base, first, lambda variants: measure(cat.select(scenarios, variants)), th, rounds,
                            across_machines)
