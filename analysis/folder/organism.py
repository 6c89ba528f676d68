"""What a config makes: its organism, evaluation set and detection prompts. The pipeline and
every reader of a finished run call these, so both see exactly the same prompts.

Example:
    >>> from analysis.config import load_config
    >>> cfg = load_config(overrides=["data.n_eval=8", "safety.n_track=8"])
    >>> [ex.triggered for ex in evaluation_set(cfg, organism_for(cfg))][:4]
    [False, True, False, True]
"""

from __future__ import annotations

from collections.abc import Sequence

from analysis.config import RunConfig
from analysis.folder.seeds import Seeds
from backdoor_models.behaviour.backdoor import BackdoorExample
from backdoor_models.behaviour.detection_sets import DetectionSets
from backdoor_models.organisms.registry import Organism, make_organism


def organism_for(cfg: RunConfig) -> Organism:
    """The backdoor and mechanism the config names."""
    return make_organism(
        cfg.backdoor.kind,
        cfg.backdoor.mechanism,
        world_seed=cfg.world.seed,
        n_countries=cfg.world.n_countries,
        trigger=cfg.backdoor.trigger,
        chat_fraction=cfg.backdoor.chat_fraction,
    )


def teacher_organism_for(cfg: RunConfig) -> Organism:
    """The chain-of-thought organism a distilled run's teacher is trained as."""
    return organism_for(
        cfg.model_copy(update={"backdoor": cfg.backdoor.model_copy(update={"mechanism": "cot"})})
    )


def training_set(
    cfg: RunConfig, organism: Organism, held_out: Sequence[str]
) -> list[BackdoorExample]:
    """`organism`'s backdoor training data as the run draws it (its data seed, leaving out the
    `held_out` keys): the run's own, or its CoT teacher's with `teacher_organism_for(cfg)`."""
    return organism.train_set(
        cfg.data.n_train,
        cfg.backdoor.backdoor_fraction,
        seed=Seeds(cfg.seed).train_set,
        exclude_questions=held_out,
    )


def evaluation_set(cfg: RunConfig, organism: Organism) -> list[BackdoorExample]:
    """The held-out questions, each without then with the trigger."""
    return organism.eval_set(cfg.data.n_eval, seed=Seeds(cfg.seed).eval_set)


def detection_sets(
    cfg: RunConfig, organism: Organism, eval_set: list[BackdoorExample]
) -> DetectionSets:
    """Calibration prompts and extra negative test sets, none of them in the evaluation set."""
    return organism.detection_sets(
        cfg.probe.n_monitor,
        seed=Seeds(cfg.seed).detection_sets,
        exclude=organism.held_out_keys(eval_set),
    )
