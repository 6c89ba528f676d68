"""Model organisms: the synthetic chat world, backdoors, model presets, training and evaluation."""
