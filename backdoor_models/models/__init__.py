"""Model presets, pretrained bases, LoRA, precision and checkpoints."""
