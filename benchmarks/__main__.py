"""Entry point: ``python -m benchmarks [--quick] [--device cpu|cuda] [--threads N] [--out FILE]``."""

from benchmarks.suite import main

raise SystemExit(main())
