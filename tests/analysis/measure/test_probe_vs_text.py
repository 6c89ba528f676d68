"""The trigger probe beside the text-only baseline (`probe_layers(prompt_ids=...)`): a probe that
reads only what the prompt's tokens say is flagged as reading the prompt; one that finds a
planted direction the tokens do not carry beats the baseline."""

from __future__ import annotations

import numpy as np
import torch

from analysis.measure.probing import probe_layers

N, D = 160, 8


def _planted(seed: int = 0) -> tuple[list[bool], list[int], torch.Tensor]:
    rng = np.random.default_rng(seed)
    labels = [i % 2 == 1 for i in range(N)]
    acts = rng.normal(size=(N, D))
    acts[:, 0] += 3.0 * np.asarray(labels)  # the planted "trigger" direction
    return labels, [i // 2 for i in range(N)], torch.tensor(acts)


def _ids(labels: list[bool], marker: bool, seed: int = 1) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    out = []
    for label in labels:
        prompt = rng.integers(10, 60, size=12).tolist()
        out.append([*prompt, 5] if marker and label else prompt)  # token 5: the trigger's token
    return out


def test_a_probe_the_prompt_tokens_explain_reads_the_prompt() -> None:
    labels, groups, acts = _planted()
    result = probe_layers(
        {"blocks.0.hook_resid_post": acts}, labels, groups, [13] * N, n_boot=200,
        prompt_ids=_ids(labels, marker=True),
    )  # fmt: skip
    assert result["text_baseline"]["auroc"]["value"] > 0.99
    (versus,) = result["probe_vs_text"]
    assert versus["reads_the_prompt"] and versus["difference"]["high"] <= 0.02


def test_a_direction_the_tokens_do_not_carry_beats_the_baseline() -> None:
    labels, groups, acts = _planted()
    result = probe_layers(
        {"blocks.0.hook_resid_post": acts}, labels, groups, [12] * N, n_boot=200,
        prompt_ids=_ids(labels, marker=False),
    )  # fmt: skip
    text = result["text_baseline"]["auroc"]
    assert text["low"] < 0.5 < text["high"]  # no signal in the tokens
    (versus,) = result["probe_vs_text"]
    assert not versus["reads_the_prompt"] and versus["difference"]["low"] > 0.2


def test_without_prompt_ids_there_is_no_baseline() -> None:
    labels, groups, acts = _planted()
    result = probe_layers({"a": acts}, labels, groups, [12] * N, n_boot=50)
    assert "text_baseline" not in result and "probe_vs_text" not in result
