# The scenarios × variants as pytest-benchmark benchmarks: see bench/pytest_plugin.py and the README.
pytest_plugins = ["bench.pytest_plugin"]
