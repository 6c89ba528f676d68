"""The probes' input checks: arrays of any kind come back as numpy or tensors of the right shape
and dtype, and each kind of bad input gets an error that names it and says what to do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from probes._validation import (
    check_binary_labels,
    check_finite_scores,
    to_float64_activations,
    to_float_activations,
    to_label_tensor,
    to_numpy,
    to_numpy_1d,
)


def test_arrays_tensors_and_lists_become_numpy() -> None:
    np.testing.assert_array_equal(
        to_numpy(torch.tensor([[1.0, 2.0]], requires_grad=True)), [[1.0, 2.0]]
    )
    np.testing.assert_array_equal(to_numpy_1d([3, 4], "scores"), [3, 4])
    with pytest.raises(ValueError, match=r"scores must be 1-D, got shape \(2, 1\); pass one value"):
        to_numpy_1d(np.zeros((2, 1)), "scores")


def test_binary_labels_are_checked_and_made_int64() -> None:
    labels = check_binary_labels(np.array([True, False, True]))
    assert labels.dtype == np.int64 and labels.tolist() == [1, 0, 1]
    assert check_binary_labels(torch.tensor([0.0, 1.0])).tolist() == [0, 1]
    with pytest.raises(ValueError, match=r"y_train must be binary .* found values \[0, 1, 2\]"):
        check_binary_labels([0, 1, 2], "y_train")
    with pytest.raises(ValueError, match="labels contain only class 1; .* need both classes"):
        check_binary_labels([1, 1, 1])
    with pytest.raises(ValueError, match="labels is empty"):
        check_binary_labels([])


def test_non_finite_scores_are_refused() -> None:
    check_finite_scores(np.array([0.0, -1e300]))
    for bad in (np.nan, np.inf, -np.inf):
        with pytest.raises(ValueError, match="test scores contain NaN or infinite values"):
            check_finite_scores(np.array([0.0, bad]), "test scores")


def test_activations_must_be_three_dimensional_and_finite() -> None:
    X = to_float64_activations(np.ones((2, 3, 4), dtype=np.float32))
    assert X.dtype == torch.float64 and tuple(X.shape) == (2, 3, 4)
    with pytest.raises(
        ValueError, match=r"must have shape \[layers, n, d_model\], got shape \(3, 4\)"
    ):
        to_float64_activations(np.ones((3, 4)))
    with pytest.raises(ValueError, match="X_test contains NaN or infinite values"):
        to_float64_activations(torch.tensor([[[0.0, float("nan")]]]), "X_test")
    with pytest.raises(ValueError, match=r"add a leading axis \(X\[None\]\)"):
        to_float_activations(torch.ones(3, 4))


def test_float_activations_keep_float32_and_widen_integers() -> None:
    assert to_float_activations(torch.ones(1, 2, 3)).dtype == torch.float32
    assert to_float_activations(torch.ones(1, 2, 3, dtype=torch.float64)).dtype == torch.float64
    assert to_float_activations(torch.ones(1, 2, 3, dtype=torch.int64)).dtype == torch.float64
    assert to_float_activations(torch.ones(1, 2, 3, dtype=torch.bfloat16)).dtype == torch.float32
    assert to_float_activations(np.ones((1, 2, 3), dtype=np.float32)).dtype == torch.float32
    assert to_float_activations(np.ones((1, 2, 3), dtype=np.int32)).dtype == torch.float64


def test_labels_must_pair_with_the_examples() -> None:
    y = to_label_tensor([0, 1, 1], n=3, device=torch.device("cpu"))
    assert y.dtype == torch.int64 and y.tolist() == [0, 1, 1]
    with pytest.raises(ValueError, match=r"y has 3 labels but X has 4 examples \(axis 1\)"):
        to_label_tensor([0, 1, 1], n=4, device=torch.device("cpu"))
