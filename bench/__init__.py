"""Benchmarks; run as modules, e.g. `python -m bench.watch_bench --quick`."""
