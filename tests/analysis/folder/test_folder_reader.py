"""`RunFolder` lists every finished stage, the ablation included, and says the truth about the
ones it cannot load."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis.config import config_from_dict, save_config
from analysis.errors import InputError
from analysis.folder.layout import TRIGGER_AWARE, RunLayout, planned_stages
from analysis.folder.reader import RunFolder
from backdoor_models.io.atomic import write_json
from backdoor_models.models.checkpoint import save_model
from backdoor_models.text.tokenizer import save_tokenizer
from tests.conftest import Trained


@pytest.fixture(scope="module")
def folder(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run with the default stages: backdoored and the trigger-aware ablation finished, sft
    started but not finished, and an extra analysed stage outside the config's list."""
    root = tmp_path_factory.mktemp("reader")
    cfg = config_from_dict(
        {"model": {"preset": "tiny"}, "data": {"n_eval": 20}, "safety": {"n_track": 10}}
    )
    save_config(cfg, root / "config.resolved.yaml")
    save_tokenizer(trained.tokenizer, root / "tokenizer")
    layout = RunLayout(root)
    for stage in ("backdoored", TRIGGER_AWARE, "extra"):
        save_model(trained.model, layout.stage(stage).dir, trained.preset)
    write_json(layout.stage("extra").behaviour, {"samples": []})
    save_model(trained.model, layout.stage("clean_control").dir, trained.preset)  # not a stage
    layout.stage("sft").dir.mkdir()
    return root


def test_every_finished_stage_is_listed_in_run_order(folder: Path) -> None:
    cfg = RunLayout(folder).read_config()
    assert TRIGGER_AWARE in planned_stages(cfg)
    run = RunFolder.open(folder)
    assert run.stages == ["backdoored", TRIGGER_AWARE, "extra"]
    assert run.model(TRIGGER_AWARE).cfg.n_layers == 2


def test_a_missing_stage_is_named_for_what_it_is(folder: Path) -> None:
    run = RunFolder.open(folder)
    with pytest.raises(InputError) as err:
        run.check_stages(["sft", "rl"])
    message = str(err.value)
    assert "['sft'] started" in message and "did not finish" in message and "--resume" in message
    assert "has no stage ['rl']" in message and TRIGGER_AWARE in message


def test_analysed_stages_name_the_first_missing_file(tiny_run: Path, tmp_path: Path) -> None:
    import shutil

    from analysis.bench.zoo import check_run_folder
    from analysis.errors import MissingRunError

    copy = tmp_path / "run"
    shutil.copytree(tiny_run / "run", copy)
    layout = RunLayout(copy)
    stages = RunFolder.open(copy).analysed_stages()
    assert stages[0] == "backdoored" and "sft" in stages
    assert check_run_folder(copy) == tuple(stages)
    layout.stage("sft").behaviour.unlink()
    with pytest.raises(MissingRunError, match="sft/behaviour.json is missing.*--resume"):
        check_run_folder(copy)  # the benchmark reads a folder through RunFolder
    layout.results.unlink()
    with pytest.raises(MissingRunError, match="results.json is missing"):
        RunFolder.open(copy).analysed_stages()
