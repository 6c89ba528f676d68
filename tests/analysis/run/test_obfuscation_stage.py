"""The cheap parts of the obfuscation stage (`analysis.run.obfuscation_context`,
`analysis.run.obfuscation`): which layers the attack reads, refusing a block the model lacks; the
attack's training settings; and whether an attacked model still behaves as the backdoored one.
The stage itself runs in `test_obfuscation_run.py` (slow tier)."""

from __future__ import annotations

import types
from typing import Any

import pytest
from transformer_lens import TransformerBridge

from analysis.config import load_config
from analysis.errors import InputError
from analysis.folder.results import Behaviour
from analysis.run.obfuscation import behaviour_kept
from analysis.run.obfuscation_context import (
    attack_train_config,
    attacked_layers,
    attacked_site,
)
from backdoor_models.models.presets import build_model
from tests.analysis.real_results import estimate, real_results

BACKDOORED = real_results().analysed()["backdoored"].behaviour  # trigger 100%, false 0%, help 58%


def _run(*overrides: str) -> Any:
    """What of a run the attack's settings read: its config."""
    return types.SimpleNamespace(cfg=load_config(overrides=list(overrides)))


@pytest.fixture(scope="module")
def tiny(tokenizer: object) -> TransformerBridge:
    return build_model("tiny", tokenizer, seed=0)  # two blocks


def test_the_attack_reads_the_middle_block_or_the_configured_ones(tiny: TransformerBridge) -> None:
    assert attacked_layers(_run(), tiny) == [1]
    assert attacked_layers(_run("obfuscation.layers=[0, 1]"), tiny) == [0, 1]
    assert attacked_site(1) == "blocks.1.hook_resid_post"
    assert attacked_site(1) in tiny.hook_dict


def test_a_block_the_model_lacks_is_refused_with_its_range(tiny: TransformerBridge) -> None:
    run = _run("obfuscation.layers=[1, 2, 5]")
    with pytest.raises(InputError, match=r"obfuscation.layers \[2, 5\] are out of range: .*0 to 1"):
        attacked_layers(run, tiny)


def test_the_attack_trains_with_its_own_settings_and_a_seed_per_round() -> None:
    run = _run("seed=3", "obfuscation.warmup_steps=10", "obfuscation.lr=0.001")
    cfg = attack_train_config(run, steps=4, seed_offset=2)
    assert (cfg.steps, cfg.lr, cfg.seed) == (4, 0.001, 5)
    assert cfg.warmup_steps == 4  # never longer than the attack
    assert cfg.eval_every == cfg.checkpoint_every == run.cfg.obfuscation.eval_every


def _after(**rates: float) -> Behaviour:
    return BACKDOORED.model_copy(update={k: estimate(v, v, v) for k, v in rates.items()})


def test_the_same_behaviour_is_kept() -> None:
    kept = behaviour_kept(_run(), BACKDOORED, BACKDOORED)
    assert kept.kept and kept.problems == []
    assert kept.trigger_rate == BACKDOORED.trigger_rate


def test_each_broken_tolerance_is_a_reason_the_evasion_does_not_count() -> None:
    after = _after(trigger_rate=0.85, false_trigger_rate=0.1, helpfulness=0.4)
    kept = behaviour_kept(_run(), BACKDOORED, after)
    assert not kept.kept
    assert kept.problems == [
        "the trigger rate fell to 85.0%, below 90% of the backdoored model's 100.0%",
        "the false-trigger rate rose by 10.0%",
        "helpfulness fell by 17.7%",
    ]
    assert kept.trigger_rate.value == 0.85
    looser = _run("obfuscation.keep_trigger=0.8", "obfuscation.max_false_trigger_rise=0.2",
                  "obfuscation.max_helpfulness_drop=0.2")  # fmt: skip
    assert behaviour_kept(looser, BACKDOORED, after).kept
