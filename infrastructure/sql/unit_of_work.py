"""The request's transaction, committed by the use case."""

from sqlalchemy.ext.asyncio import AsyncSession

from application.ports.unit_of_work import UnitOfWork
from infrastructure.sql.errors import translate_errors


class SqlUnitOfWork(UnitOfWork):
    """``UnitOfWork`` over the request's ``AsyncSession``.

    A failed commit surfaces (as ``BackendUnavailableError`` when the database
    went away) so the request cannot answer 2xx for data that is not durable.
    """

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def commit(self) -> None:
        with translate_errors("commit"):
            await self._session.commit()

    async def rollback(self) -> None:
        with translate_errors():
            await self._session.rollback()

    async def release(self) -> None:
        # Closing ends the (read-only) transaction and returns the connection; the
        # session stays usable and checks a connection out again when next used.
        with translate_errors():
            await self._session.close()
