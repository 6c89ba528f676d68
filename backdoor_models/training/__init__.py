"""The training loop, LM training, RL and the preference model."""
