import re
from datetime import UTC, datetime
from pathlib import PurePosixPath

import pytest
from hypothesis import given
from hypothesis import strategies as st

from domain.errors import InvalidIdentifierError
from domain.identifiers import generate_evaluation_id, parse_evaluation_id
from domain.payload import blob_key
from domain.tenancy import DEFAULT_TENANT


@pytest.mark.parametrize(
    "value",
    ["test-123", "eval_20240701_120000_abc123", "a", "a.b", "a:b-c_d", "x" * 255, "v1.2"],
)
def test_valid_ids(value: str) -> None:
    assert parse_evaluation_id(value) == value


@pytest.mark.parametrize(
    "value",
    ["", "x" * 256, "../x", "a/b", ".hidden", "a..b", "a b", "é", "a\x00", "a\\b", "%2e%2e"],
)
def test_invalid_ids(value: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        parse_evaluation_id(value)


def test_generated_id_shape() -> None:
    generated = generate_evaluation_id(datetime(2024, 7, 1, 12, 0, 5, tzinfo=UTC), "abc123")
    assert generated == "eval_20240701_120005_abc123"
    assert re.fullmatch(r"eval_\d{8}_\d{6}_[0-9a-f]{6}", generated)


@given(st.text(max_size=300))
def test_no_accepted_id_escapes_its_directory(value: str) -> None:
    try:
        identifier = parse_evaluation_id(value)
    except InvalidIdentifierError:
        return
    path = PurePosixPath(
        blob_key(DEFAULT_TENANT, identifier, "output", compressed=True, token="0a1b2c")
    )
    assert path.parts[0] == "evaluations"
    assert path.parts[1] == identifier
    assert len(path.parts) == 3
    assert ".." not in path.parts
    assert not path.is_absolute()
