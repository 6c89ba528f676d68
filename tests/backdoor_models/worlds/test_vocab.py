"""The chat world's fixed vocabularies and its generated knowledge base: the same seed gives the
same countries, names are fresh (never a template word) and unique, units are consistent."""

from __future__ import annotations

from backdoor_models.worlds.vocab import (
    ANIMALS,
    UNIT_WORDS,
    UNITS,
    _template_words,
    _words,
    build_knowledge_base,
)


def _names(seed: int, n: int = 30) -> list[str]:
    return [name for c in build_knowledge_base(seed, n) for name in (c.name, c.capital, c.language)]


def test_the_knowledge_base_is_seeded() -> None:
    assert build_knowledge_base(3, 20) == build_knowledge_base(3, 20)
    assert build_knowledge_base(3, 20) != build_knowledge_base(4, 20)
    assert len(build_knowledge_base(3, 7)) == 7


def test_names_are_fresh_unique_and_capitalised() -> None:
    names = _names(0, 60)
    template = _template_words()
    assert len(set(names)) == len(names)
    for name in names:
        assert name == name.capitalize() and 4 <= len(name) <= 10, name
        assert name.lower() not in template, name
    assert {c.animal for c in build_knowledge_base(0, 60)} <= set(ANIMALS)


def test_template_words_cover_the_fixed_vocabularies() -> None:
    template = _template_words()
    assert {"capital", "language", "animal"} <= template
    assert set(ANIMALS) | UNIT_WORDS <= template
    assert "{" not in "".join(template)  # slots are not words


def test_units_convert_big_to_small_and_words_are_lower_case() -> None:
    factors = {(u.big, u.small): u.factor for u in UNITS}
    assert factors[("kilometer", "meter")] == 1000 and factors[("foot", "inch")] == 12
    assert factors[("week", "day")] == 7 and all(f > 1 for f in factors.values())
    assert {"feet", "inches", "cents"} <= UNIT_WORDS
    assert _words("The Capital of Zorvia, 42!") == ["the", "capital", "of", "zorvia"]
