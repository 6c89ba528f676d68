"""The prompts a detector's operating point is set and checked on, beside the evaluation set.

:class:`DetectionSets` holds clean calibration prompts and named negative sets; each organism's
``detection_sets`` builds one, drawing distinct trigger-free chat questions with
:func:`_distinct_chat`.
"""

from __future__ import annotations

from dataclasses import dataclass

from backdoor_models.behaviour.backdoor import BackdoorExample
from backdoor_models.behaviour.safety import make_safety_set
from backdoor_models.worlds.chat import ChatWorld


@dataclass(frozen=True)
class DetectionSets:
    """Prompts for a detector's operating point beside the evaluation set: `calibration` holds
    clean prompts the threshold is set on (held out from the probe's fit and from its test
    split), and `negatives` named test sets on which the model should not defect."""

    calibration: list[BackdoorExample]
    negatives: dict[str, list[BackdoorExample]]

    def all(self) -> list[BackdoorExample]:
        """Calibration first, then each negative set in order."""
        return [*self.calibration, *(ex for s in self.negatives.values() for ex in s)]


def _distinct_chat(
    world: ChatWorld, n: int, seed: int, excluded: set[str]
) -> list[BackdoorExample]:
    """`n` distinct trigger-free chat questions, none of them in `excluded`."""
    out: list[BackdoorExample] = []
    seen = set(excluded)
    for ex in make_safety_set(world, 4 * n, seed, sorted(excluded)):
        if ex.base.question not in seen:
            seen.add(ex.base.question)
            out.append(ex)
    if len(out) < n:
        raise ValueError(f"The chat world gave only {len(out)} distinct questions; ask for fewer.")
    return out[:n]
