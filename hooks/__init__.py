"""Reaching into running models through TransformerLens hook points: activation caching."""
