"""Benchmarks of the adapter, run on loopback with ``python -m bench`` (``./dev bench``).

Every figure is printed next to a baseline measured in the same run on the same
machine (a bare Flask endpoint, a raw ``requests`` loop), because absolute numbers
from a shared 2-core box mean little while ratios travel. See ``docs/benchmarks.md``.
"""
