"""The upper bound of an ``id_prefix`` range: above every string with the prefix, below
every other string above the prefix."""

import pytest

from infrastructure.sql.evaluation_queries import prefix_upper_bound

MAX = chr(0x10FFFF)


@pytest.mark.parametrize(
    ("prefix", "bound"),
    [
        ("abc", "abd"),
        ("eval_2025", "eval_2026"),
        ("a~", "a\x7f"),
        ("a\u00e9", "a\u00ea"),
        ("a" + MAX, "b"),
        ("a" + MAX + MAX, "b"),
        ("\ud7ff", "\ue000"),  # the surrogates are no characters of any stored id
        (MAX, None),
    ],
)
def test_bound(prefix: str, bound: str | None) -> None:
    assert prefix_upper_bound(prefix) == bound


@pytest.mark.parametrize("prefix", ["abc", "a~", "a" + MAX, "z\u00ff"])
def test_every_string_with_the_prefix_is_inside(prefix: str) -> None:
    bound = prefix_upper_bound(prefix)
    assert bound is not None
    for tail in ("", "a", "~", MAX, MAX * 3, "\u00ff\U0001f600"):
        assert prefix <= prefix + tail < bound
    # What lacks the prefix is outside: the bound itself, the prefix's own stem.
    assert not bound.startswith(prefix)
    assert not (prefix <= prefix[:-1] < bound)
