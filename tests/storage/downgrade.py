"""Databases of an older schema version, made from today's by undoing what came after it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import create_engine, text


def stamp_older(database_url: str, version: int, at: datetime, *undo: str) -> None:
    """Run the `undo` statements on a database at today's schema, then stamp it `version`."""
    engine = create_engine(database_url)
    with engine.begin() as conn:
        for statement in undo:
            conn.execute(text(statement))
        conn.execute(text("DELETE FROM schema_version"))
        conn.execute(
            text("INSERT INTO schema_version (version, applied_at) VALUES (:v, :at)"),
            {"v": version, "at": at},
        )
    engine.dispose()
