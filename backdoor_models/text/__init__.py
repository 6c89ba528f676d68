"""Tokenizers, the chat template of pretrained bases, and tokenized training sets."""
