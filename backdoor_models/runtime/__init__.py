"""Forwards and cached decoding: one engine per kind of model, and steering."""
