"""Search over the memory records: every text read, matched in Python with RE2.

``MemoryEvaluationQueries`` filters with ``matches``; ``MemorySearchTexts`` (in
``search_texts``) hands the texts back.
"""

from typing import TYPE_CHECKING

from application.search import SearchField, SearchText, TextSearch, record_texts
from domain.evaluation import Evaluation

if TYPE_CHECKING:  # the database's module filters with ``matches``
    from infrastructure.memory.evaluations import MemoryDatabase


def texts_of(db: "MemoryDatabase", evaluation: Evaluation, search: TextSearch) -> list[SearchText]:
    """The texts of ``evaluation`` in the fields ``search`` looks in."""
    found = record_texts(evaluation, search)
    owner = evaluation.id
    if search.looks_in(SearchField.EVENTS):
        found += [
            SearchText(
                evaluation_id=owner,
                field=SearchField.EVENTS,
                text=event.message,
                event_id=event.event_id,
            )
            for event in sorted(db.events.get(owner, []), key=lambda e: e.timestamp)
            if event.message
        ]
    if search.looks_in(SearchField.LOGS):
        found += [
            SearchText(
                evaluation_id=owner, field=SearchField.LOGS, text=chunk.content, start=chunk.offset
            )
            for chunk in db.log_chunks.get(owner, [])
        ]
    return found


def matches(db: "MemoryDatabase", evaluation: Evaluation, search: TextSearch) -> bool:
    return any(search.find(item.text) is not None for item in texts_of(db, evaluation, search))
