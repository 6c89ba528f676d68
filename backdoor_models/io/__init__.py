"""Files on disk: atomic writes, safetensors and JSON artifacts."""
