"""Benchmarks of the toolkit's hot paths against reference implementations, in one process.

Run ``python -m benchmarks --quick`` (under 3 minutes on 2 CPU cores) or ``python -m benchmarks``
(full); see ``benchmarks/suite.py`` for what is measured and how.
"""
