import itertools

import pytest

from domain.status import ACTIVE_STATUSES, TERMINAL_STATUSES, EvaluationStatus, can_transition

S = EvaluationStatus
ALLOWED = {
    (S.SUBMITTED, S.QUEUED),
    (S.QUEUED, S.PROVISIONING),
    (S.QUEUED, S.RUNNING),
    (S.PROVISIONING, S.RUNNING),
    (S.PROVISIONING, S.QUEUED),
    (S.RUNNING, S.QUEUED),
}


@pytest.mark.parametrize(("current", "requested"), itertools.product(S, S))
def test_transition_table(current: S, requested: S) -> None:
    if current == requested:
        expected = True
    elif current in TERMINAL_STATUSES:
        expected = False
    elif requested in TERMINAL_STATUSES:
        expected = True
    else:
        expected = (current, requested) in ALLOWED
    assert can_transition(current, requested) is expected


def test_terminal_and_active_sets() -> None:
    assert {s for s in S if s.is_terminal} == {S.COMPLETED, S.FAILED, S.CANCELLED}
    assert {s for s in S if s.is_active} == ACTIVE_STATUSES == {S.PROVISIONING, S.RUNNING}


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_terminal_never_moves_back(terminal: S) -> None:
    assert not any(can_transition(terminal, other) for other in S if other != terminal)
