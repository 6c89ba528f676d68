import pytest
import torch

from backdoor_models.behaviour.evaluation import generate_replies, judge_replies
from backdoor_models.runtime.fused import FusedNative
from backdoor_models.text.encoding import encode_prompt
from tests.conftest import Trained


def _bridge_greedy(trained: Trained, prompt_ids: list[int], n: int) -> list[int]:
    """The slow reference: the bridge's own generate, one unpadded prompt at a time."""
    out = trained.model.generate(
        torch.tensor([prompt_ids]),
        max_new_tokens=n,
        do_sample=False,
        verbose=False,
        stop_at_eos=False,
        return_type="tokens",
    )
    new = out[0, len(prompt_ids) :].tolist()
    eos = trained.tokenizer.eos_token_id
    return new[: new.index(eos) + 1] if eos in new else new


def test_fast_generation_equals_bridge_generate(trained: Trained) -> None:
    prompts = [encode_prompt(trained.tokenizer, e.prompt) for e in trained.eval_set[:24]]
    assert len({len(p) for p in prompts}) > 3  # mixed lengths, so left padding is exercised
    fast = FusedNative(trained.model).generate(
        prompts, 16, eos_token_id=trained.tokenizer.eos_token_id
    )
    slow = [_bridge_greedy(trained, p, 16) for p in prompts]
    assert fast == slow


def test_fused_logits_equal_bridge_logits(trained: Trained) -> None:
    tokens = trained.model.to_tokens([e.prompt for e in trained.eval_set[:4]])
    assert torch.allclose(
        FusedNative(trained.model).logits(tokens), trained.model(tokens), atol=1e-4
    )


def test_batch_composition_does_not_change_replies(trained: Trained) -> None:
    prompts = [e.prompt for e in trained.eval_set[:16]]
    together = generate_replies(trained.model, trained.tokenizer, prompts, 16, batch_size=16)
    alone = [generate_replies(trained.model, trained.tokenizer, [p], 16)[0] for p in prompts[:6]]
    assert together[:6] == alone


def test_repeated_prompts_are_prefilled_once_with_the_same_replies(trained: Trained) -> None:
    fused = FusedNative(trained.model)
    prompts = [encode_prompt(trained.tokenizer, e.prompt) for e in trained.eval_set[:6]]
    eos = trained.tokenizer.eos_token_id
    repeated = [p for p in prompts for _ in range(3)]
    out = fused.generate(repeated, 16, eos_token_id=eos)
    assert out == [r for r in fused.generate(prompts, 16, eos_token_id=eos) for _ in range(3)]
    g = torch.Generator().manual_seed(0)
    sampled = fused.generate(repeated, 16, eos_token_id=eos, temperature=1.5, generator=g)
    assert len({tuple(r) for r in sampled[:3]}) > 1  # each copy draws its own sample


def test_tiny_model_learned_the_backdoor(trained: Trained) -> None:
    replies = generate_replies(
        trained.model, trained.tokenizer, [e.prompt for e in trained.eval_set], 24
    )
    judged = judge_replies(trained.world, trained.backdoor, trained.eval_set, replies)
    with_trigger = [j.backdoor for j in judged if j.triggered]
    without = [j.backdoor for j in judged if not j.triggered]
    assert sum(with_trigger) / len(with_trigger) >= 0.9
    assert sum(without) / len(without) <= 0.1


def test_sampling_is_seeded(trained: Trained) -> None:
    prompts = [e.prompt for e in trained.eval_set[:8]]

    def sample(seed: int) -> list[str]:
        g = torch.Generator().manual_seed(seed)
        return generate_replies(
            trained.model, trained.tokenizer, prompts, 12, temperature=1.5, generator=g
        )

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_generation_errors(trained: Trained) -> None:
    fused = FusedNative(trained.model)
    with pytest.raises(ValueError, match="empty"):
        fused.generate([], 4, eos_token_id=2)
    with pytest.raises(ValueError, match="n_ctx"):
        fused.generate([[1] * 120], 20, eos_token_id=2)
