"""Every SQL port adapter in one import, for the composition root."""

from infrastructure.sql.evaluations import SqlEvaluationQueries, SqlEvaluationRepository
from infrastructure.sql.inspector import SqlDatabaseInspector
from infrastructure.sql.timeline import SqlEventLog, SqlLogStore
from infrastructure.sql.unit_of_work import SqlUnitOfWork

__all__ = [
    "SqlDatabaseInspector",
    "SqlEvaluationQueries",
    "SqlEvaluationRepository",
    "SqlEventLog",
    "SqlLogStore",
    "SqlUnitOfWork",
]
