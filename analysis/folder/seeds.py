"""Named random streams of a run: every random draw of the pipeline takes its seed from here, by
name, instead of an offset spelled where it is used.

The values are the run's seed plus a fixed offset per stream (the offsets the pipeline has
always used, so runs stay reproducible across versions).

Example:
    >>> Seeds(0).eval_set, Seeds(5).train_set
    (7, 6)
"""

from __future__ import annotations

from dataclasses import dataclass

_OFFSETS = {
    "base": 0,  # model initialisation, probe splits, bootstrap intervals
    "train_set": 1,  # backdoor training data (and the clean control's)
    "eval_set": 7,  # the paired evaluation questions
    "safety_set": 11,  # SFT / RL safety prompts
    "red_team": 13,  # red-team candidates and their samples
    "red_team_split": 17,  # eliciting prompts into training and held-out halves
    "red_team_mix": 19,  # adversarial SFT: where red-team prompts go in the safety data
    "red_team_rate": 23,  # fresh samples for the held-out red-team rate
    "generalisation": 29,  # held-out trigger forms
    "detection_sets": 31,  # calibration prompts and extra negative test sets
    "distillation": 37,  # the distilled mechanism's off-template prompts and teacher samples
    "behaviour_set": 41,  # the behaviour probe's off-template prompts
}


@dataclass(frozen=True)
class Seeds:
    """The seed of each named random stream for a run seeded with `base`."""

    seed: int

    def __getattr__(self, name: str) -> int:
        if name in _OFFSETS:
            return self.seed + _OFFSETS[name]
        raise AttributeError(f"No random stream named {name!r}; streams: {', '.join(_OFFSETS)}.")

    @staticmethod
    def streams() -> tuple[str, ...]:
        return tuple(_OFFSETS)
