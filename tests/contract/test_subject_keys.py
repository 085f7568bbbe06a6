"""The SubjectKeys contract (crypto-shredding, ADR 0029) over every adapter.

An adapter that encrypts per subject adds itself to ``keys`` below; the contract is what
erasure relies on: ``destroy`` of an unknown subject, or twice, is no error, and one
subject's destruction is no other's.
"""

import pytest

from application.ports.subject_keys import SubjectKeys
from infrastructure.memory.subject_keys import NoSubjectKeys

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["none"])
def keys(request: pytest.FixtureRequest, anyio_backend: str) -> SubjectKeys:
    assert request.param == "none"
    return NoSubjectKeys()


async def test_destroying_is_idempotent_and_unknown_subjects_are_no_error(
    keys: SubjectKeys,
) -> None:
    for subject in ("alice@example.com", "alice@example.com", "never-seen", "ü/ \u2713"):
        await keys.destroy(subject)
