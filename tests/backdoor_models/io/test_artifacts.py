"""Atomic, pickle-free artifacts: what is written reads back; a failed write leaves the old file
whole and no temporary file behind; pickle formats and misshapen tensors are refused."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from backdoor_models.io.artifacts import read_tensors, write_tensors
from backdoor_models.io.atomic import jsonable, read_json, write_json, write_text


def test_json_round_trip_with_numpy_paths_and_nan(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "a.json"  # folders are made
    write_json(path, {"x": np.float32(0.5), "n": np.int64(3), "p": Path("a/b"), "nan": math.nan})
    assert read_json(path) == {"x": 0.5, "n": 3, "p": "a/b", "nan": None}
    assert jsonable((1, [np.float64(2.0)])) == [1, [2.0]]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    write_json(path, {"old": 1})
    with pytest.raises(TypeError):
        write_json(path, {"new": object()})  # not JSON
    tensors = tmp_path / "t.safetensors"
    write_tensors(tensors, {"w": torch.zeros(2)})
    shared = torch.ones(3)
    with pytest.raises(RuntimeError):  # safetensors refuses shared memory, mid-write
        write_tensors(tensors, {"a": shared, "b": shared})
    assert read_json(path) == {"old": 1}
    assert torch.equal(read_tensors(tensors)["w"], torch.zeros(2))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "t.safetensors"]


def test_broken_json_names_the_file_and_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    write_text(path, "{not json")
    with pytest.raises(ValueError, match=r"broken.json is not valid JSON .*delete it and re-run"):
        read_json(path)


def test_tensors_round_trip_in_the_expected_order(tmp_path: Path) -> None:
    path = tmp_path / "t.safetensors"
    b, a = torch.arange(6.0).reshape(2, 3), torch.ones(4)
    write_tensors(path, {"b": b, "a": a})
    got = read_tensors(path, expected={"b": (2, 3), "a": (4,)})
    assert list(got) == ["b", "a"] and torch.equal(got["b"], b) and torch.equal(got["a"], a)


def test_pickle_formats_and_misshapen_tensors_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="only .safetensors files are loaded"):
        read_tensors(tmp_path / "model.pt")
    path = tmp_path / "t.safetensors"
    write_tensors(path, {"w": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match=r"w has shape \(2, 2\), expected \(3, 2\)"):
        read_tensors(path, expected={"w": (3, 2)})
