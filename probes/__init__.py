"""Detectors over arrays (no model code): batched probes, metrics, controls."""
