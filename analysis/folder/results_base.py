"""The pieces every part of results.json is made of: frozen models that refuse unknown keys (or,
for training histories, keep them), and an estimate with its 95% interval."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Open(BaseModel):
    """A part whose keys vary with the stage (training histories): known keys are typed."""

    model_config = ConfigDict(extra="allow", frozen=True)


class Estimate(_Strict):
    """A value with its 95% interval over `n` examples (NaN is written as null)."""

    value: float | None
    low: float | None
    high: float | None
    n: int
    method: str

    def bounds(self) -> tuple[float, float, float]:
        """(value, low, high), NaN where null: ready for arithmetic and formatting."""
        nan = float("nan")
        return (
            nan if self.value is None else self.value,
            nan if self.low is None else self.low,
            nan if self.high is None else self.high,
        )
