"""The similar-items hot path's reads, handed to the database driver as they are.

A statement is compiled once per dialect and its rows come back as the driver gives them: no result
processors, which cost more than the query itself for the few dozen rows of an answer (each datetime parsed
from SQLite's text by a regular expression, each price made a Decimal, per row). The caller converts the few
values it shows (`iso_utc`). Errors are still SQLAlchemy's (a database that is down is still a 503).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from backend.core.extensions import DbSession

_compiled: dict[tuple[ClauseElement, str, str], SQLCompiler] = {}


def driver_rows(session: DbSession, statement: ClauseElement, params: Mapping[str, Any]) -> Sequence[Any]:
    """The rows of a built statement (expanding IN parameters allowed) in the session's transaction, each a tuple
    of the driver's own values."""
    connection = session.connection()
    dialect = connection.dialect
    key = (statement, dialect.name, dialect.driver)  # the driver decides the parameters' style
    compiled = _compiled.get(key)
    if compiled is None:
        compiled = _compiled[key] = cast(SQLCompiler, statement.compile(dialect=dialect))
    state = compiled.construct_expanded_state(params)
    values = state.positional_parameters if dialect.positional else state.parameters
    return connection.exec_driver_sql(state.statement, values).all()


def iso_utc(value: datetime | str | None) -> str | None:
    """A UTCDateTime column's driver value as ISO 8601 in UTC, as the column type and the schemas write it:
    SQLite gives the stored text (UTC without an offset), PostgreSQL an aware datetime."""
    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()
