"""The error a pretrained base that cannot be used raises (`pretrained.check_base`, the
SmolLM2 converter): its message names the problem and the fix."""


class BaseModelError(ValueError):
    """A pretrained base that cannot be used; the message names the problem and the fix."""
