"""``taskbench advise`` as a whole: candidates, HypoPG screening where the server has it, the
search (cheap sampling options, every step a real build), then one full measurement of the advised
set beside the catalogue's reference variant and the simple advisors, the cost of deploying each
advised index, the three shipped forms and the report — all in the final run's directory.

The SLAs the search must meet are the scenarios' own divided by ``headroom`` and by the growth
expected from the dataset's largest user class (the power users) to ``target_tasks_per_user``:
``(target ÷ measured) ** exponent``, the exponent from a scale run's fits (``growth_from``) where
it measured the scenario, else 1 (linear: the safe side where nothing was measured).

With ``policy`` (``advise --policy NAME``) the search holds a policy variant's row-level security:
every trial and every contender carries its policies (not its indexes: those are what is searched),
the scenarios are those measured under it (the ones relying on the policies too), the candidates
include what the policies' USING asks for (``candidates.policy_keys``), and a cell failing its
isolation check stops advise (exit 1): a leaking policy cannot be advised.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

from bench import output
from bench import results as results_io
from bench.advise import hypo, ship
from bench.advise.candidates import Candidate, PolicyKeys, candidates, policy_keys
from bench.advise.deploy import DeployCost, deploy_costs
from bench.advise.model import (
    ADVICE_FILE,
    Advice,
    CandidateInfo,
    Contender,
    CostsInfo,
    DeployInfo,
    Hypo,
    Miss,
    Point,
    PolicyColumns,
    PolicyInfo,
    Settings,
    StepInfo,
    TrialInfo,
    WriterStats,
)
from bench.advise.objective import Costs, write_figures
from bench.advise.options import AdviseOptions, Objective
from bench.advise.pareto import mark_front
from bench.advise.search import SearchOptions, SearchResult, search
from bench.advise.simple import per_column, two_column
from bench.advise.trials import Trials, refuse_leaks, variant_of
from bench.catalogue.files import Catalogue, Variant
from bench.catalogue.options import BASELINE_VARIANT
from bench.errors import InputError
from bench.progress import Advance, Clock, no_progress
from bench.results import Cell, Results
from bench.runs import matrix
from bench.targets import schema
from bench.targets.target import Target

ADVISED = ship.VARIANT_NAME


def policy_variant(catalogue: Catalogue, name: str | None) -> Variant | None:
    """The catalogue variant ``advise --policy`` names, refused unless it has policies."""
    if name is None:
        return None
    held = [v.name for v in catalogue.variants if v.claim is not None]
    variant = next((v for v in catalogue.variants if v.name == name), None)
    if variant is None or variant.claim is None:
        why = "is no variant of the catalogue" if variant is None else "has no row-level security policies"
        raise InputError(f"--policy: {name!r} {why} (policy variants: {', '.join(held) or 'none'})")
    return variant


def worst_p95(cell: Cell) -> float:
    """The p95 of the slowest user class: the SLA is a promise to every class."""
    return max((c.p95.value for c in cell.classes), default=cell.client.p95.value)


def _measured_size(dataset: results_io.Dataset) -> int:
    profile = dataset.profile
    factor = profile.get("power_user_factor", 1) if profile.get("users", 1) > 1 else 1
    return int(profile.get("tasks_per_user", 0)) * int(factor)


def growth(
    catalogue: Catalogue, measured: int, target: int, source: Path | None, variant: str
) -> tuple[dict[str, float], str]:
    """Per scenario, how much its p95 grows from the measured size to ``target``."""
    if target <= measured:
        return {s.name: 1.0 for s in catalogue.scenarios}, "none: the target is the size measured"
    exponents: dict[str, float] = {}
    if source is not None:
        scale = results_io.load(source).scale
        if scale is None:
            raise InputError(f"{source}: no scale fits in it (make one with `taskbench scale`)")
        exponents = {f.scenario: f.exponent for f in scale.fits if f.variant == variant}
    factors = {s.name: (target / measured) ** max(exponents.get(s.name, 1.0), 0.0) for s in catalogue.scenarios}
    fitted = sorted(set(exponents) & set(factors))
    return factors, (
        f"p95 ∝ size^exponent from {source} ({variant}) for {', '.join(fitted) or 'no scenario'}; linear for the rest"
    )


def effective(catalogue: Catalogue, headroom: float, factors: dict[str, float]) -> Catalogue:
    return catalogue.model_copy(
        update={
            "scenarios": [
                s.model_copy(update={"sla_ms": s.sla_ms / (headroom * factors[s.name])}) for s in catalogue.scenarios
            ]
        }
    )


def _costs_info(costs: Costs, base: Costs, objective: Objective) -> CostsInfo:
    return CostsInfo(
        index_bytes=costs.index_bytes,
        build_seconds=costs.build_seconds,
        wal_per_write=None if costs.wal_per_write is None else round(costs.wal_per_write, 1),
        write_p95_ms=None if costs.write_p95_ms is None else round(costs.write_p95_ms, 3),
        objective=round(costs.value(objective, base), 2),
    )


def _why(cell: Cell, sla: float) -> str:
    plan = (
        f"Seq Scan on {', '.join(cell.plan.seq_scans)}"
        if cell.plan.seq_scans
        else f"uses {', '.join(cell.plan.indexes)}"
        if cell.plan.indexes
        else " > ".join(cell.plan.node_types)
    )
    return f"{cell.verdict_text}; slowest class p95 {worst_p95(cell):.1f} ms (SLA {sla:g} ms); plan: {plan}"


def _contenders(res: Results, catalogue: Catalogue, objective: Objective) -> list[Contender]:
    sla = {s.name: s.sla_ms for s in catalogue.scenarios}
    by_variant = {v.name: v for v in res.variants}
    base_cells = [c for c in res.cells if c.variant == BASELINE_VARIANT]
    base = Costs(0, 0.0, *write_figures(base_cells))
    out = []
    for name, variant in by_variant.items():
        cells = [c for c in res.cells if c.variant == name]
        costs = Costs(variant.index_size_bytes, variant.build_seconds, *write_figures(cells))
        worst = max(cells, key=lambda c: worst_p95(c) / sla[c.scenario])
        out.append(
            Contender(
                variant=name,
                description=variant.description,
                statements=variant.statements,
                costs=_costs_info(costs, base, objective),
                worst_ratio=round(worst_p95(worst) / sla[worst.scenario], 3),
                worst_scenario=worst.scenario,
                misses=[Miss(scenario=c.scenario, why=_why(c, sla[c.scenario])) for c in cells if c.verdict != "pass"],
            )
        )
    return out


def _trials_info(trials: Trials, catalogue: Catalogue, objective: Objective, base: Costs) -> list[TrialInfo]:
    sla = {s.name: s.sla_ms for s in catalogue.scenarios}
    out = []
    for trial in trials.history:
        complete = trial.complete(trials.scenarios)
        costs = trials.costs(trial.indexes)
        out.append(
            TrialInfo(
                number=trial.number,
                purpose=trial.purpose,
                indexes=[trials.candidates[f].name for f in trial.indexes],
                measured=trial.measured,
                builds=trial.builds,
                seconds=trial.seconds,
                failing=[s for s in trials.scenarios if not trial.passes(s)] if complete else None,
                worst_ratio=round(max(worst_p95(c) / sla[s] for s, c in trial.cells.items()), 3) if complete else None,
                costs=None if costs is None else _costs_info(costs, base, objective),
            )
        )
    return out


def _points(trials: list[TrialInfo], contenders: list[Contender]) -> list[Point]:
    points = [
        Point(
            label=c.variant,
            worst_ratio=c.worst_ratio,
            index_bytes=c.costs.index_bytes,
            wal_per_write=c.costs.wal_per_write,
            build_seconds=c.costs.build_seconds,
            front=False,
        )
        for c in contenders
    ]
    seen: set[tuple[str, ...]] = set()
    for t in trials:
        key = tuple(sorted(t.indexes))
        if t.worst_ratio is None or t.costs is None or key in seen:
            continue
        seen.add(key)
        points.append(
            Point(
                label=f"trial {t.number}: {t.purpose}",
                worst_ratio=t.worst_ratio,
                index_bytes=t.costs.index_bytes,
                wal_per_write=t.costs.wal_per_write,
                build_seconds=t.costs.build_seconds,
                front=False,
            )
        )
    return mark_front(points)


def _candidates_info(
    found: list[Candidate], trials: Trials, result: SearchResult, hypothetical: dict[str, hypo.Hypothetical]
) -> list[CandidateInfo]:
    screens = {t.indexes[0]: t for t in trials.history if t.purpose.startswith("screen ")}
    out = []
    for c in found:
        cost = trials.index_cost(c.fingerprint)
        screen = screens.get(c.fingerprint)
        h = hypothetical.get(c.fingerprint)
        out.append(
            CandidateInfo(
                name=c.name,
                table=c.table,
                using=c.index.using,
                ddl=c.index.ddl(),
                extensions=list(c.extensions),
                serves=c.serves,
                sources=list(c.sources),
                screened=c.fingerprint in result.screened,
                size_bytes=cost[0] if cost else None,
                build_seconds=cost[1] if cost else None,
                measured_with=[s for s in screen.measured if s in c.serves] if screen else [],
                plans=[s for s in screen.measured if c.name in screen.cells[s].plan.indexes] if screen else [],
                hypo=Hypo(
                    size_bytes=h.size_bytes, used_by=list(h.used_by), cost_without=h.cost_without, cost_with=h.cost_with
                )
                if h
                else None,
            )
        )
    return out


def _writer_stats(w: object) -> WriterStats | None:
    return WriterStats.model_validate(w, from_attributes=True) if w is not None else None


def _deploy_info(costs: list[DeployCost]) -> list[DeployInfo]:
    return [
        DeployInfo(
            index=d.index,
            table=d.table,
            build_s=d.build_s,
            concurrent_build_s=d.concurrent_build_s,
            writers=d.writers,
            before=_writer_stats(d.before),
            during_build=_writer_stats(d.during_build),
            during_concurrent_build=_writer_stats(d.during_concurrent_build),
            blocked_ms=None if d.blocked_ms is None else round(d.blocked_ms, 1),
        )
        for d in costs
    ]


def _under(variant: Variant, policy: Variant | None) -> Variant:
    """``variant``'s indexes under ``policy``'s row-level security in place of its own policies.
    Made anew, not ``model_copy``: a copy would keep the parsed policies cached on the original."""
    if policy is None:
        return variant
    fields = variant.model_dump(include={"name", "description", "extensions", "statements"})
    return Variant(**fields, policies=policy.policies)


def _contending_variants(
    catalogue: Catalogue,
    advised: list[Candidate],
    reference: str,
    policy: Variant | None = None,
    keys: Sequence[PolicyKeys] = (),
) -> list[Variant]:
    by_name = {v.name: v for v in catalogue.variants}
    baseline = by_name.get(BASELINE_VARIANT, Variant(name=BASELINE_VARIANT, description="The models' own indexes"))
    mine = variant_of(ADVISED, advised, "The cheapest set found by `taskbench advise`")
    chosen = [
        baseline,
        mine,
        *([by_name[reference]] if reference in by_name else []),
        per_column(catalogue, keys),
        two_column(catalogue, keys),
    ]
    return [_under(v, policy) for v in {v.name: v for v in chosen}.values()]


def _policy_info(policy: Variant, keys: Sequence[PolicyKeys], advised: list[Candidate]) -> PolicyInfo:
    """What the search held, and which advised indexes lead with a column the policies fix."""
    serving = {
        c.name: [k.policy for k in keys if k.table == c.table and c.index.keys[0].column in k.columns] for c in advised
    }
    assert policy.claim is not None  # policy_variant admits only variants with policies
    return PolicyInfo(
        variant=policy.name,
        claim=policy.claim,
        statements=[p.sql for p in policy.policy_defs],
        columns=[PolicyColumns(policy=k.policy, table=k.table, columns=list(k.columns)) for k in keys],
        serving={name: names for name, names in serving.items() if names},
    )


def held_under(catalogue: Catalogue, policy: Variant) -> Catalogue:
    """The scenarios ``policy`` holds in a search: every one measured under it (the policy scope all,
    whatever the command line says), the explicit ones too, which pay for the policies as the app
    sends them all."""
    every = catalogue.model_copy(update={"policy_scope": "all"})
    return every.model_copy(update={"scenarios": every.under(policy)})


def advise(
    target: Target,
    catalogue: Catalogue,
    options: AdviseOptions,
    reports_dir: Path,
    variant_dir: Path | None = None,
    advance: Advance = no_progress,
    announce: Callable[[str], None] = lambda message: None,
) -> tuple[Path, Advice]:
    """Search, verify, cost and ship; returns the run directory and what was found."""
    from bench.advise.report import write_report

    clock = Clock()
    policy = policy_variant(catalogue, options.policy)
    # without a policy its trials are index sets: no policy to isolate the scenarios relying on one
    catalogue = catalogue.explicit_only() if policy is None else held_under(catalogue, policy)
    keys = policy_keys(policy.policy_defs) if policy is not None else []
    with clock.phase("candidates and screening"):
        measured = _measured_size(schema.seeded_dataset(target))
        goal = options.target_tasks_per_user or measured
        factors, source = growth(catalogue, measured, goal, options.growth_from, options.growth_variant)
        strict = effective(catalogue, options.headroom, factors)
        found = candidates(catalogue, policies=keys)
        by_fingerprint = {c.fingerprint: c for c in found}
        announce(f"advise: {len(found)} candidates; SLAs ÷ {options.headroom:g} headroom at {goal:,} tasks per user")

        hypothetical: dict[str, hypo.Hypothetical] = {}
        if not options.hypopg:
            hypopg = "off (--no-hypopg)"
        elif policy is not None:
            hypopg = "off under --policy: its EXPLAIN runs as the tables' owner, whom the policies do not filter"
        elif hypo.available(target):
            hypothetical = {h.candidate: h for h in hypo.screen(target, strict, found)}
            hypopg = f"used: {len(hypothetical)} B-tree candidates screened"
        else:
            hypopg = "not available on this server (no hypopg in pg_available_extensions): every candidate built"

    deadline = None if options.time_budget_s is None else time.monotonic() + options.time_budget_s
    trials = Trials(
        target,
        strict,
        by_fingerprint,
        options.measuring(options.search_run),
        advance=advance,
        max_builds=options.max_builds,
        deadline=deadline,
        policy=policy,
    )
    with clock.phase("search"):
        result = search(
            trials,
            SearchOptions(objective=options.objective, screen_per_scenario=options.screen_per_scenario),
            {f: set(h.used_by) for f, h in hypothetical.items()},
        )
    advised = [by_fingerprint[f] for f in result.chosen]
    announce(
        f"advise: {len(advised)} indexes after {trials.builds} real builds; measuring them beside "
        f"{options.reference} and the simple advisors"
    )

    with clock.phase("final measurement"):
        contending = _contending_variants(catalogue, advised, options.reference, policy, keys)
        final = strict.model_copy(update={"variants": contending, "mix": {}})
        res = matrix.measure(target, final, options.measuring(options.final_run), advance)
        run_dir = results_io.save(res, reports_dir).parent
    refuse_leaks(res.cells, policy)  # after saving, as `run` does: the run shows the leak
    with clock.phase("deploy costs"):
        # the writers run as the tables' owner, whom no policy filters: the scenarios with their own filters
        deployed = deploy_costs(target, catalogue.explicit_only(), advised) if options.deploy else []

    held = f" under the row-level security of {policy.name}" if policy is not None else ""
    description = (
        f"The cheapest index set found by `taskbench advise` on {res.environment.server} (real builds, measured "
        f"against every SLA ÷ {options.headroom:g} at {goal:,} tasks per user{held}): "
        + ", ".join(c.name for c in advised)
    )
    shipped = ship.write(
        run_dir / "ship", advised, description, options.down_revision, policy.policy_defs if policy else ()
    )
    if variant_dir is not None:
        variant_dir.mkdir(parents=True, exist_ok=True)
        shipped["catalogue variant"] = output.write_text(
            variant_dir / shipped["variant"].name, shipped["variant"].read_text(encoding="utf-8")
        )

    base_costs = trials.costs(())
    assert base_costs is not None  # the search's first trial measured every scenario
    trial_infos = _trials_info(trials, catalogue, options.objective, base_costs)
    contenders = _contenders(res, catalogue, options.objective)
    advice = Advice(
        run_id=res.run_id,
        dataset=res.dataset.fingerprint,
        settings=Settings(
            headroom=options.headroom,
            measured_tasks_per_user=measured,
            target_tasks_per_user=goal,
            growth={k: round(v, 3) for k, v in factors.items()},
            growth_source=source,
            effective_sla_ms={s.name: round(s.sla_ms, 3) for s in strict.scenarios},
            objective=options.objective.describe(),
            max_builds=options.max_builds,
            screen_per_scenario=options.screen_per_scenario,
            time_budget_s=options.time_budget_s,
            hypopg=hypopg,
        ),
        candidates=_candidates_info(found, trials, result, hypothetical),
        trials=trial_infos,
        steps=[StepInfo(phase=s.phase, candidate=s.candidate, trial=s.trial, note=s.note) for s in result.steps],
        failing_at_baseline=result.failing,
        advised=[c.name for c in advised],
        advised_ddl=[c.index.ddl() for c in advised],
        stopped=result.stopped,
        real_builds=trials.builds,
        contenders=contenders,
        pareto=_points(trial_infos, contenders),
        deploy=_deploy_info(deployed),
        shipped={k: str(v) for k, v in shipped.items()},
        seconds={**clock.seconds, "total": clock.elapsed()},
        server=res.environment.server,
        server_major=res.environment.server_major,
        policy=_policy_info(policy, keys, advised) if policy is not None else None,
    )
    output.write_text(run_dir / ADVICE_FILE, advice.model_dump_json(indent=1))
    write_report(run_dir, advice, res)
    return run_dir, advice
