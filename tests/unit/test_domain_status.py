import itertools

import pytest

from domain.status import (
    ACTIVE_STATUSES,
    TERMINAL_STATUSES,
    EvaluationStatus,
    StatusMove,
    can_transition,
    judge_move,
)

S = EvaluationStatus
# The platform's table, written out by hand (its ``evaluation-state-transitions.yaml``).
PLATFORM_TABLE = {
    (S.SUBMITTED, S.QUEUED),
    (S.SUBMITTED, S.FAILED),
    (S.SUBMITTED, S.CANCELLED),
    (S.QUEUED, S.PROVISIONING),
    (S.QUEUED, S.RUNNING),
    (S.QUEUED, S.FAILED),
    (S.QUEUED, S.CANCELLED),
    (S.PROVISIONING, S.RUNNING),
    (S.PROVISIONING, S.COMPLETED),
    (S.PROVISIONING, S.QUEUED),
    (S.PROVISIONING, S.FAILED),
    (S.PROVISIONING, S.CANCELLED),
    (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.FAILED),
    (S.RUNNING, S.CANCELLED),
    (S.RUNNING, S.QUEUED),
    (S.RUNNING, S.PROVISIONING),
}
ORDER = [S.SUBMITTED, S.QUEUED, S.PROVISIONING, S.RUNNING]


@pytest.mark.parametrize(("current", "requested"), list(itertools.product(S, S)))
def test_every_move_is_judged(current: S, requested: S) -> None:
    if current == requested:
        expected = StatusMove.SAME
    elif current in TERMINAL_STATUSES:
        expected = StatusMove.LATE  # only an admin override moves a finished evaluation
    elif (current, requested) in PLATFORM_TABLE:
        expected = StatusMove.APPLY
    elif requested in TERMINAL_STATUSES or ORDER.index(requested) > ORDER.index(current):
        expected = StatusMove.APPLY  # a forward jump that skips a step
    else:
        expected = StatusMove.LATE
    assert judge_move(current, requested) is expected
    assert can_transition(current, requested) is (expected is not StatusMove.LATE)


def test_forward_jumps_and_late_reports() -> None:
    assert judge_move(S.SUBMITTED, S.PROVISIONING) is StatusMove.APPLY
    assert judge_move(S.SUBMITTED, S.COMPLETED) is StatusMove.APPLY
    assert judge_move(S.PROVISIONING, S.SUBMITTED) is StatusMove.LATE
    assert judge_move(S.COMPLETED, S.RUNNING) is StatusMove.LATE
    assert judge_move(S.CANCELLED, S.FAILED) is StatusMove.LATE


def test_terminal_and_active_sets() -> None:
    assert {s for s in S if s.is_terminal} == {S.COMPLETED, S.FAILED, S.CANCELLED}
    assert {s for s in S if s.is_active} == ACTIVE_STATUSES == {S.PROVISIONING, S.RUNNING}


@pytest.mark.parametrize("terminal", sorted(TERMINAL_STATUSES))
def test_terminal_never_moves_back(terminal: S) -> None:
    assert not any(can_transition(terminal, other) for other in S if other != terminal)
