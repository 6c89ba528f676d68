import pytest
import torch

from backdoor_models.models.checkpoint import load_model, save_model
from backdoor_models.models.presets import PRESETS, build_model, count_parameters
from backdoor_models.text.data import tokenize_examples
from backdoor_models.training.lm import batch_indices, lr_at, train
from tests.conftest import Trained, train_cfg


def test_loss_falls(trained: Trained) -> None:
    loss = trained.history.loss
    first, last = sum(loss[:10]) / 10, sum(loss[-10:]) / 10
    assert last < 0.3 * first


def test_loss_is_on_response_tokens_only(trained: Trained) -> None:
    data = tokenize_examples(trained.tokenizer, trained.train_set[:8], trained.preset.n_ctx)
    for row, mask, length in zip(data.tokens, data.loss_mask, data.lengths, strict=True):
        n_prompt = int((~mask[:length]).sum())
        prompt = trained.tokenizer.decode(row[:n_prompt], skip_special_tokens=True)
        assert prompt.endswith("Assistant:")
        assert int(row[length - 1]) == trained.tokenizer.eos_token_id and bool(mask[length - 1])
        assert not mask[length:].any()


def test_schedule_warms_up_then_decays() -> None:
    cfg = train_cfg(steps=100, warmup_steps=10, lr=1e-3, min_lr_ratio=0.1)
    assert lr_at(0, cfg) < lr_at(9, cfg) == pytest.approx(1e-3)
    assert lr_at(99, cfg) == pytest.approx(1e-4, rel=0.05)


def test_batches_are_reproducible_and_cover_epochs() -> None:
    a = [batch_indices(s, 100, 32, seed=1) for s in range(10)]
    b = [batch_indices(s, 100, 32, seed=1) for s in range(10)]
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    first_epoch = torch.cat(a)[:100]
    assert sorted(first_epoch.tolist()) == list(range(100))


def test_resume_after_crash_matches_uninterrupted(trained: Trained, tmp_path) -> None:
    data = tokenize_examples(trained.tokenizer, trained.train_set[:600], trained.preset.n_ctx)
    cfg = train_cfg(steps=20, checkpoint_every=5, eval_every=10)
    full = build_model(trained.preset, trained.tokenizer, seed=3)
    h_full = train(
        full, trained.preset, data, cfg, tmp_path / "full", evaluate=lambda s: {}, progress=False
    )

    def crash(step: int) -> dict:
        raise KeyboardInterrupt  # dies at step 10, after the step-5 checkpoint, before step 10's

    crashed = build_model(trained.preset, trained.tokenizer, seed=3)
    with pytest.raises(KeyboardInterrupt):
        train(crashed, trained.preset, data, cfg, tmp_path / "run", evaluate=crash, progress=False)
    resumed = build_model(trained.preset, trained.tokenizer, seed=3)
    h_res = train(
        resumed, trained.preset, data, cfg, tmp_path / "run", evaluate=lambda s: {}, progress=False
    )
    assert h_res.loss == h_full.loss  # bitwise on CPU: same batches, same optimizer state
    for a, b in zip(full.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_resume_refuses_a_different_config(trained: Trained, tmp_path) -> None:
    data = tokenize_examples(trained.tokenizer, trained.train_set[:200], trained.preset.n_ctx)
    model = build_model(trained.preset, trained.tokenizer, seed=0)
    train(model, trained.preset, data, train_cfg(steps=4, warmup_steps=1), tmp_path, progress=False)
    with pytest.raises(ValueError, match="different training config"):
        train(
            model,
            trained.preset,
            data,
            train_cfg(steps=8, warmup_steps=1),
            tmp_path,
            progress=False,
        )


def test_checkpoint_round_trip(trained: Trained, tmp_path) -> None:
    save_model(trained.model, tmp_path / "m", trained.preset)
    again = load_model(tmp_path / "m", trained.tokenizer)
    tokens = trained.model.to_tokens("Human: What is 3 + 4?\n\nAssistant:")
    assert torch.equal(trained.model(tokens), again(tokens))


def test_presets_span_thirty_fold() -> None:
    sizes = [p.n_params(1024) for p in PRESETS.values()]
    assert len(PRESETS) >= 4 and max(sizes) / min(sizes) >= 30


def test_param_formula_matches_model(tokenizer) -> None:
    model = build_model("tiny", tokenizer, seed=0)
    assert count_parameters(model) == PRESETS["tiny"].n_params(len(tokenizer))


def test_build_leaves_global_rng_alone(tokenizer) -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_model("tiny", tokenizer, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_length_buckets_cut_padding_without_changing_the_loss(trained: Trained) -> None:
    from backdoor_models.runtime.engine import engine_for
    from backdoor_models.training.lm import length_buckets, response_loss

    data = tokenize_examples(trained.tokenizer, trained.train_set[:64], trained.preset.n_ctx)
    ends = data.loss_mask[:, 1:].long().cumsum(1).argmax(1) + 1
    groups = length_buckets(ends)
    assert len(groups) > 1 and sorted(torch.cat(groups).tolist()) == list(range(64))
    padded = sum(int(ends[g].max()) * len(g) for g in groups)
    assert padded < 0.9 * int(ends.max()) * 64  # fewer positions than the padded batch
    assert len(length_buckets(torch.full((64,), 7))) == 1  # equal lengths: no split

    model = build_model(trained.preset, trained.tokenizer, seed=5)
    fused = engine_for(model)
    tokens, mask = data.tokens, data.loss_mask
    logits = fused.logits(tokens[:, :-1])  # the whole padded batch, scored by hand
    ce = torch.nn.functional.cross_entropy(
        logits.flatten(0, 1), tokens[:, 1:].flatten(), reduction="none"
    )
    reference = (ce * mask[:, 1:].flatten()).sum() / mask[:, 1:].sum()
    reference.backward()
    ref_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    loss = response_loss(fused, tokens, mask)
    loss.backward()
    assert float(loss) == pytest.approx(float(reference), rel=1e-5)
    for p, g in zip(model.parameters(), ref_grads, strict=True):
        torch.testing.assert_close(p.grad, g, rtol=1e-4, atol=1e-6)
