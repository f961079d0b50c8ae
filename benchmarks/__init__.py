"""zoo's benchmarks: ``python -m benchmarks`` prints one JSON record per installed family.

Each module also runs alone: ``python -m benchmarks.bench_train``,
``python -m benchmarks.bench_realnvp``, ``python -m benchmarks.bench_cli``.
"""
