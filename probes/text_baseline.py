"""A text-only baseline: logistic regression on the prompt's token counts, beside every probe.

A probe on activations can reach a high AUROC by reading words in the prompt (the trigger's
tokens) rather than anything the model computes. This baseline sees only the prompt's token ids
(unigram and bigram counts, the run's own tokenizer's ids, passed in as lists of ints) and fits
scikit-learn's ``LogisticRegression`` on them. A probe whose AUROC does not beat the baseline's,
on the same test prompts, *reads the prompt* (:func:`probe_vs_text`).

- :func:`fit_text_baseline` fits the baseline; :meth:`TextBaseline.scores` scores prompts
  (higher = label 1, e.g. trigger present).
- :func:`text_baseline_result`: its held-out AUROC and TPR at a target FPR, with bootstrap
  intervals from :mod:`probes.metrics` and :mod:`probes.detection_intervals`.
- :func:`probe_vs_text`: the probe's AUROC minus the baseline's, with a paired bootstrap interval.

No tokenizer and no model here: tokenize the prompts first, e.g. ``tokenizer(text)["input_ids"]``.

>>> train = [[7, 1, 2], [3, 7, 4], [1, 2, 3], [3, 4, 1]] * 5   # token 7 marks label 1
>>> baseline = fit_text_baseline(train, [1, 1, 0, 0] * 5)
>>> (baseline.scores([[2, 7, 1], [2, 1, 4]]) > 0).tolist()
[True, False]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from jaxtyping import Float
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.linear_model import LogisticRegression

from probes._validation import check_binary_labels, check_finite_scores, to_numpy, to_numpy_1d
from probes.detection_intervals import bootstrap_tpr_at_fpr, operating_point
from probes.detection_metrics import calibrate_threshold, fpr_at_threshold
from probes.metrics import (
    _CHUNK_VALUES,
    Estimate,
    _auroc_rows,
    _check_bootstrap_args,
    _interval,
    bootstrap_auroc,
)

TokenIds = Sequence[Sequence[int]]

_TOKENIZE_HINT = "tokenize each prompt first, e.g. tokenizer(text)['input_ids']"


def _check_ids(ids: Any, name: str) -> list[list[int]]:
    """Each prompt as a non-empty list of Python ints; refuses text and empty prompts."""
    if isinstance(ids, str | bytes):
        raise TypeError(f"{name} is text; pass one list of token ids per prompt: {_TOKENIZE_HINT}.")
    try:
        ids = list(ids)
    except TypeError:
        raise TypeError(
            f"{name} must be a list of token-id lists, got {type(ids).__name__}; {_TOKENIZE_HINT}."
        ) from None
    if len(ids) == 0:
        raise ValueError(f"{name} is empty; pass one list of token ids per prompt.")
    prompts = []
    for i, prompt in enumerate(ids):
        if isinstance(prompt, str | bytes):
            raise TypeError(
                f"{name}[{i}] is text ({prompt[:30]!r}); the baseline reads token ids, not "
                f"strings: {_TOKENIZE_HINT}."
            )
        array = to_numpy(prompt)
        if array.ndim == 1 and array.size == 0:
            raise ValueError(
                f"{name}[{i}] has no tokens; drop the empty prompt or check its tokenization."
            )
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise TypeError(
                f"{name}[{i}] must be a 1-D sequence of integer token ids, got dtype "
                f"{array.dtype} and shape {tuple(array.shape)} (a single prompt still goes in a "
                f"list: [ids]); {_TOKENIZE_HINT}."
            )
        prompts.append(array.tolist())
    return prompts


def _check_labels(labels: Any, n_prompts: int, ids_name: str, labels_name: str) -> np.ndarray:
    array = check_binary_labels(labels, labels_name)  # refuses empty and one-class labels
    if array.shape[0] != n_prompts:
        raise ValueError(
            f"{ids_name} has {n_prompts} prompts but {labels_name} has {array.shape[0]} labels; "
            f"pass one label per prompt."
        )
    return array


def _unigrams_and_bigrams(prompt: list[int]) -> list[tuple[int, ...]]:
    """The features of one prompt: each token ``(a,)`` and each adjacent pair ``(a, b)``."""
    return [(a,) for a in prompt] + list(zip(prompt[:-1], prompt[1:], strict=True))


@dataclass(frozen=True)
class TextBaseline:
    """A fitted text-only baseline: token unigram+bigram counts -> logistic regression.

    Build it with :func:`fit_text_baseline`; n-grams never seen in training are ignored.
    """

    vectorizer: CountVectorizer = field(repr=False)
    model: LogisticRegression = field(repr=False)
    C: float
    n_features: int

    def scores(self, ids: TokenIds) -> Float[np.ndarray, " n"]:
        """Log-odds of label 1 for each prompt's token ids (higher = label 1)."""
        prompts = _check_ids(ids, "ids")
        counts = self.vectorizer.transform(prompts)
        return np.asarray(self.model.decision_function(counts), dtype=np.float64)


def fit_text_baseline(train_ids: TokenIds, train_labels: Any, C: float = 1.0) -> TextBaseline:
    """Fit L2 logistic regression (``C`` as in the probes; newton-cg, deterministic) on the
    unigram and bigram counts of ``train_ids`` (one list of token ids per prompt) against 0/1
    ``train_labels``.

    >>> fit_text_baseline([[1, 2], [2, 1], [3, 2], [2, 3]], [1, 1, 0, 0]).n_features
    7
    """
    if not C > 0:
        raise ValueError(f"C must be positive (inverse L2 strength, 1.0 as the probes), got {C}.")
    prompts = _check_ids(train_ids, "train_ids")
    labels = _check_labels(train_labels, len(prompts), "train_ids", "train_labels")
    vectorizer = CountVectorizer(analyzer=_unigrams_and_bigrams, lowercase=False)
    counts = vectorizer.fit_transform(prompts)
    # newton-cg: the same objective as lbfgs (the intercept unpenalised), solved to a tighter
    # optimum in about a tenth of the time on these sparse counts (0.05 s against 0.6 s on the
    # default run's 2,430 behaviour-set prompts, 4,167 features)
    model = LogisticRegression(C=C, solver="newton-cg", max_iter=1000, random_state=0)
    model.fit(counts, labels)
    return TextBaseline(vectorizer, model, float(C), int(counts.shape[1]))


@dataclass(frozen=True)
class TextBaselineResult:
    """The text baseline's held-out AUROC and TPR at ``target_fpr``, each with its interval.

    ``threshold_from`` says where the threshold was set: on trigger-free ``"calibration"``
    prompts (as a deployed monitor, :func:`probes.operating_point`), or on the
    ``"test negatives"`` (the ROC curve read at ``target_fpr``). ``test_scores`` are the
    baseline's scores of the test prompts, for :func:`probe_vs_text`.
    """

    auroc: Estimate
    tpr: Estimate
    target_fpr: float
    threshold: float
    threshold_from: Literal["calibration", "test negatives"]
    fpr_on_test_negatives: float
    n_train: int
    n_features: int
    C: float
    test_scores: Float[np.ndarray, " n_test"] = field(repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (without the per-prompt test scores)."""
        return {
            "auroc": self.auroc.to_dict(),
            "tpr": self.tpr.to_dict(),
            "target_fpr": self.target_fpr,
            "threshold": self.threshold,
            "threshold_from": self.threshold_from,
            "fpr_on_test_negatives": self.fpr_on_test_negatives,
            "n_train": self.n_train,
            "n_features": self.n_features,
            "C": self.C,
        }


def text_baseline_result(
    train_ids: TokenIds,
    train_labels: Any,
    test_ids: TokenIds,
    test_labels: Any,
    calibration_ids: TokenIds | None = None,
    target_fpr: float = 0.01,
    C: float = 1.0,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> TextBaselineResult:
    """Fit the baseline on the training prompts and score it on the test prompts.

    With ``calibration_ids`` (held-out trigger-free prompts) the threshold for ``target_fpr``
    is calibrated on them and the TPR interval re-calibrates in each resample
    (:func:`probes.operating_point`); without, it is calibrated on the test negatives
    (:func:`probes.bootstrap_tpr_at_fpr`). Use the same splits as the probe it sits beside.

    >>> rng = np.random.default_rng(0)
    >>> ids = [rng.integers(1, 30, 12).tolist() for _ in range(200)]
    >>> y = [i % 2 for i in range(200)]
    >>> ids = [p + [0] if label else p for p, label in zip(ids, y)]   # token 0 marks label 1
    >>> result = text_baseline_result(ids[:100], y[:100], ids[100:], y[100:], n_boot=200)
    >>> str(result.auroc), result.threshold_from
    ('1.000 [1.000, 1.000]', 'test negatives')
    """
    _check_bootstrap_args(n_boot, level)
    baseline = fit_text_baseline(train_ids, train_labels, C)
    test_prompts = _check_ids(test_ids, "test_ids")
    labels = _check_labels(test_labels, len(test_prompts), "test_ids", "test_labels")
    scores = baseline.scores(test_prompts)
    positives, negatives = scores[labels == 1], scores[labels == 0]
    auroc = bootstrap_auroc(scores, labels, n_boot, seed, level)
    threshold_from: Literal["calibration", "test negatives"]
    if calibration_ids is not None:
        calibration = baseline.scores(_check_ids(calibration_ids, "calibration_ids"))
        point = operating_point(
            positives, {"test negatives": negatives}, calibration, target_fpr, n_boot, seed, level
        )
        tpr, threshold, threshold_from = point.tpr, point.threshold, "calibration"
    else:
        tpr = bootstrap_tpr_at_fpr(scores, labels, target_fpr, n_boot, seed, level)
        threshold, threshold_from = calibrate_threshold(negatives, target_fpr), "test negatives"
    return TextBaselineResult(
        auroc=auroc,
        tpr=tpr,
        target_fpr=float(target_fpr),
        threshold=threshold,
        threshold_from=threshold_from,
        fpr_on_test_negatives=fpr_at_threshold(negatives, threshold),
        n_train=len(train_ids),
        n_features=baseline.n_features,
        C=baseline.C,
        test_scores=scores,
    )


@dataclass(frozen=True)
class ProbeVsText:
    """A probe's AUROC against the text baseline's on the same prompts.

    ``difference`` is the probe's AUROC minus the baseline's, its interval from a paired
    bootstrap. ``reads_the_prompt`` is True when that interval reaches 0 or lies below it:
    the probe does not beat a reader of the prompt's tokens.
    """

    probe_auroc: Estimate
    text_auroc: Estimate
    difference: Estimate
    reads_the_prompt: bool

    def __str__(self) -> str:
        verdict = "reads the prompt" if self.reads_the_prompt else "beats the text baseline"
        return f"probe {self.probe_auroc} - text {self.text_auroc} = {self.difference}: {verdict}"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict."""
        return {
            "probe_auroc": self.probe_auroc.to_dict(),
            "text_auroc": self.text_auroc.to_dict(),
            "difference": self.difference.to_dict(),
            "reads_the_prompt": self.reads_the_prompt,
        }


def _paired_scores(probe_scores: Any, text_scores: Any, labels: Any) -> tuple[np.ndarray, ...]:
    label_array = check_binary_labels(labels)  # refuses empty and one-class labels
    arrays = []
    for name, values in (("probe_scores", probe_scores), ("text_scores", text_scores)):
        array = to_numpy_1d(values, name).astype(np.float64)
        if array.shape[0] != label_array.shape[0]:
            raise ValueError(
                f"{name} has {array.shape[0]} entries but labels has {label_array.shape[0]}; "
                f"score the same test prompts, in the same order, with the probe and the "
                f"text baseline."
            )
        check_finite_scores(array, name)
        arrays.append(array)
    return arrays[0], arrays[1], label_array


def probe_vs_text(
    probe_scores: Any,
    text_scores: Any,
    labels: Any,
    n_boot: int = 1000,
    seed: int = 0,
    level: float = 0.95,
) -> ProbeVsText:
    """Does the probe beat the text baseline? AUROC difference with a paired bootstrap.

    Each resample draws the test prompts once (positives and negatives separately, counts kept,
    as :func:`probes.bootstrap_auroc`) and scores both AUROCs on that same draw, so what the
    two share cancels in the difference.

    >>> y = [0, 0, 0, 0, 1, 1, 1, 1]
    >>> probe_vs_text([0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3, 4, 5, 6, 7], y).reads_the_prompt
    True
    """
    _check_bootstrap_args(n_boot, level)
    probe, text, label_array = _paired_scores(probe_scores, text_scores, labels)
    positive_idx = np.flatnonzero(label_array == 1)
    negative_idx = np.flatnonzero(label_array == 0)
    resample_labels = np.r_[np.ones(positive_idx.size), np.zeros(negative_idx.size)]
    point = _auroc_rows(np.stack([probe, text]), label_array)

    rng = np.random.default_rng(seed)
    chunk = max(1, _CHUNK_VALUES // (2 * label_array.size))
    probe_samples, text_samples = [], []
    for start in range(0, n_boot, chunk):
        rows = min(chunk, n_boot - start)
        draw = np.concatenate(
            [
                positive_idx[rng.integers(0, positive_idx.size, size=(rows, positive_idx.size))],
                negative_idx[rng.integers(0, negative_idx.size, size=(rows, negative_idx.size))],
            ],
            axis=1,
        )
        probe_samples.append(_auroc_rows(probe[draw], resample_labels))
        text_samples.append(_auroc_rows(text[draw], resample_labels))
    probe_boot, text_boot = np.concatenate(probe_samples), np.concatenate(text_samples)

    n = int(label_array.size)

    def estimate(value: float, samples: np.ndarray) -> Estimate:
        low, high = _interval(samples, level)
        return Estimate(value=float(value), low=low, high=high, n=n, method="paired bootstrap")

    difference = estimate(point[0] - point[1], probe_boot - text_boot)
    return ProbeVsText(
        probe_auroc=estimate(point[0], probe_boot),
        text_auroc=estimate(point[1], text_boot),
        difference=difference,
        reads_the_prompt=bool(difference.low <= 0.0),
    )
