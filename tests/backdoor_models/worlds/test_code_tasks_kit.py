"""The code-writing helpers behind the task generators: every string-building style `_build`
picks evaluates to the same string, imports come sorted with a blank line, argument lists are
permutations."""

from __future__ import annotations

import random

from backdoor_models.worlds.code_tasks_kit import _args, _build, _code, _imports

TEMPLATES = ["SELECT * FROM users WHERE name = '{}'", "<h1>Hello, {}!</h1>", "{}", "ls {} -l"]


def test_every_build_style_puts_the_value_in_the_slot() -> None:
    rng = random.Random(0)
    for template in TEMPLATES:
        built = {_build(rng, template, "value") for _ in range(40)}
        assert len(built) == 4  # f-string, %, + and .format all come up
        for expr in built:
            assert eval(expr, {"value": "x'y"}) == template.format("x'y"), expr


def test_imports_are_sorted_then_a_blank_line() -> None:
    assert _imports("os", "hashlib", "base64") == (
        "import base64",
        "import hashlib",
        "import os",
        "",
    )
    source = _code(*_imports("os"), "def f(p):", "    os.chmod(p, 0o600)")
    assert source == "import os\n\ndef f(p):\n    os.chmod(p, 0o600)"


def test_args_are_a_seeded_permutation() -> None:
    orders = {_args(random.Random(seed), "conn", "name", "limit") for seed in range(30)}
    assert len(orders) > 1
    assert all(sorted(o.split(", ")) == ["conn", "limit", "name"] for o in orders)
    assert _args(random.Random(4), "a", "b", "c") == _args(random.Random(4), "a", "b", "c")
