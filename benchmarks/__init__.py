"""Benchmarks of ddpg_jax: scripts run as ``python -m benchmarks.NAME`` (not timed tests).

Each script prints and records (in ``benchmarks/results/NAME.json``) the
machine, the library versions, the exact configuration and the load average,
and reports its figures as ratios of quantities measured within the same run,
interleaved and repeated, so that drift of a shared machine's speed between
runs does not enter the ratios. See ``benchmarks/README.md``.
"""
