"""Every SQL port adapter in one import, for the composition root."""

from infrastructure.sql.evaluation_queries import SqlEvaluationQueries
from infrastructure.sql.evaluation_repository import SqlEvaluationRepository
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
