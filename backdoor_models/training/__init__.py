"""The training loop, LM training, RL, the preference model and the obfuscation attack."""
