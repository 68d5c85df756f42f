"""Every kind of run taskbench makes, one module each, in one shape: an options dataclass,
``measure(target, catalogue, opts, advance) -> Results`` and ``render(...) -> list[str]``, the
terminal summary its command prints (the command itself: a thin module in ``bench.cli``).

- ``matrix``: every scenario under every variant (``RunOptions``, the engine's); ``shard`` splits it
  into shares measured apart or at once, ``bench.merge`` joins them;
- ``scale``: chosen cells at several tasks-per-user sizes (``ScaleOptions``; handed a TargetSpec:
  a database of its own per size);
- ``load``: concurrent clients on a weighted mix (``LoadOptions``);
- ``sides``: both sides of a check, measured side by side (``SidesOptions``; two catalogues);
- ``crosscheck``: the harness against pgbench, ``taskbench validate`` (``CrossCheckOptions``;
  agreements, not Results).

``advise`` is the package ``bench.advise`` (it runs matrices), with ``options.AdviseOptions``,
``run.advise`` and ``report.terminal``. The sampling itself is ``bench.measure``'s.
"""
