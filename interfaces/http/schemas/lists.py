"""Pages of evaluations, and the running ones."""

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from application.queries import RunningInfo
from domain.status import EvaluationStatus
from interfaces.http.schemas.records import EvaluationBody, EvaluationFieldsBody


class EvaluationPage(msgspec.Struct, kw_only=True):
    """Where one page of evaluations stands in all the matches.

    Keyword-only, so that a page's own positional ``evaluations`` comes first.
    """

    total: int
    limit: int
    offset: int
    has_more: bool
    next_cursor: str | None


class EvaluationFieldsList(EvaluationPage):
    """A page of evaluations with only the fields named in ``fields=``."""

    evaluations: list[EvaluationFieldsBody]


class EvaluationList(EvaluationPage):
    """A page of evaluations, newest first.

    ``total`` counts every match (exact, from counters); ``has_more`` says a
    next page exists. Page on with ``offset``, or pass ``next_cursor`` back as
    ``cursor`` (stable under inserts).
    """

    evaluations: list[EvaluationBody]


class RunningBody(msgspec.Struct, kw_only=True):
    """An evaluation holding a container; ``executor_id`` is the job name (the platform's)."""

    eval_id: str
    status: EvaluationStatus
    executor_id: str | None
    container_id: str | None
    started_at: datetime | None
    timeout: Annotated[int | None, Meta(description="seconds")]

    @classmethod
    def of(cls, info: RunningInfo) -> "RunningBody":
        return cls(
            eval_id=info.evaluation_id,
            status=info.status,
            executor_id=info.executor_id,
            container_id=info.container_id,
            started_at=info.started_at,
            timeout=info.timeout,
        )


class RunningList(msgspec.Struct, kw_only=True):
    running_evaluations: list[RunningBody]
    count: int
