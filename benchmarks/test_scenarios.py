"""One pytest-benchmark benchmark per scenario × variant (ids: ``test_scenario[<variant>-<scenario>]``).

pytest benchmarks --benchmark-autosave
pytest benchmarks --benchmark-compare --benchmark-compare-fail=median:10%
"""


def test_scenario(benchmark, tb_query):
    benchmark.extra_info.update(tb_query.info)
    rows = benchmark(tb_query)
    assert isinstance(rows, list)  # the query ran; how fast is pytest-benchmark's report, not an assertion
