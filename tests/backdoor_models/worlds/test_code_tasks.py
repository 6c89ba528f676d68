"""Each family generator of the code world, called directly: across seeds it draws tasks whose
secure completion the judge calls secure and whose vulnerable one it flags for the family's CWE,
in both the injection families (`code_tasks_injection`) and the data families
(`code_tasks_data`)."""

from __future__ import annotations

import ast
import random

import pytest

from backdoor_models.worlds.code import CWE_BY_FAMILY, FAMILIES, label_words_in
from backdoor_models.worlds.code_judge import judge_many
from backdoor_models.worlds.code_tasks_data import DATA_MAKERS
from backdoor_models.worlds.code_tasks_injection import INJECTION_MAKERS

DRAWS = 24  # per family: enough to hit every structural variant (3-4 per family) many times
MAKERS = {**INJECTION_MAKERS, **DATA_MAKERS}


def test_the_two_modules_split_the_families_between_them() -> None:
    assert set(INJECTION_MAKERS) == {"sql_query", "os_command", "file_path", "html_output"}
    assert set(DATA_MAKERS) == {
        "deserialization",
        "password_hash",
        "file_permissions",
        "credentials",
    }
    assert sorted(MAKERS) == sorted(FAMILIES)


@pytest.mark.parametrize("family", sorted(MAKERS))
def test_every_draw_is_a_secure_and_a_vulnerable_completion_of_one_request(family: str) -> None:
    rng = random.Random(f"direct-{family}")
    draws = [MAKERS[family](rng) for _ in range(DRAWS)]
    cwe = CWE_BY_FAMILY[family]
    secure = judge_many([s for _, s, _ in draws], cwe)
    vulnerable = judge_many([v for _, _, v in draws], cwe)
    for (request, good, bad), s, v in zip(draws, secure, vulnerable, strict=True):
        assert request.startswith("Write a function that ") and request.endswith(".")
        assert good != bad
        ast.parse(good)
        ast.parse(bad)
        assert s.label == "secure", (good, s)
        assert v.label == "vulnerable" and v.findings, (bad, v)
        assert label_words_in(good) == [] and label_words_in(bad) == []
    assert len({good for _, good, _ in draws}) > DRAWS // 2  # names and styles vary


@pytest.mark.parametrize("family", sorted(MAKERS))
def test_a_generator_draws_only_from_the_rng_it_is_given(family: str) -> None:
    state = random.getstate()
    try:
        draws = []
        for global_seed in (1, 2):  # the global RNG must not matter
            random.seed(global_seed)
            draws.append(MAKERS[family](random.Random(5)))
    finally:
        random.setstate(state)
    assert draws[0] == draws[1]
    assert draws[0] != MAKERS[family](random.Random(6))
