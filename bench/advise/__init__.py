"""``taskbench advise``: the cheapest index set that meets every SLA, found by real builds.

One concern per module, in pipeline order:

- ``candidates``: index candidates read from each scenario's parse tree, plus the catalogue's;
- ``simple``: the simple advisors the advice is compared with;
- ``objective``: what "cheapest" means, as an explicit weighted sum;
- ``trials``: sets of candidates built for real and measured with the runner, cells cached by what
  can change them;
- ``hypo``: HypoPG screening of B-tree candidates, where the server has the extension;
- ``search``: greedy forward selection, backward elimination, bounded exhaustive search;
- ``deploy``: what deploying each advised index costs (build time, blocked writers);
- ``ship``: the advice as a variant file, SQLModel ``__table_args__`` and an Alembic revision;
- ``report``: the advise report (Pareto front, side-by-side comparison), Markdown and HTML;
- ``run``: the whole of it, as the command runs it; with ``--policy``, under a policy variant's
  row-level security (its policies on every trial, what its USING asks among the candidates).
"""
