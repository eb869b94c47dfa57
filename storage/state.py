"""Small facts the process keeps across restarts (key → value), and leases on them."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, delete, or_, select

from storage import schema
from storage.database import Database


class State(Database):
    def _set_state(self, conn: Connection, key: str, value: str, now: datetime) -> None:
        stmt = self._dialect.insert(schema.state).values(key=key, value=value, updated_at=now)
        conn.execute(
            stmt.on_conflict_do_update(
                index_elements=["key"], set_={"value": value, "updated_at": now}
            )
        )

    def set_state(self, key: str, value: str, now: datetime) -> None:
        with self._write() as conn:
            self._set_state(conn, key, value, now)

    def get_state(self, key: str) -> str | None:
        with self._read() as conn:
            value = conn.execute(
                select(schema.state.c.value).where(schema.state.c.key == key)
            ).scalar()
        return None if value is None else str(value)

    def take_lease(self, key: str, holder: str, now: datetime, ttl: timedelta) -> bool:
        """Take or renew the lease `key` (a state row: holder, renewed at) for `holder`, when it
        is free, the holder's own, or not renewed for `ttl`; True if the holder has it now.
        One statement, so two replicas asking at once cannot both get it."""
        state = schema.state
        insert = self._dialect.insert(state).values(key=key, value=holder, updated_at=now)
        stmt = insert.on_conflict_do_update(
            index_elements=[state.c.key],
            set_={"value": holder, "updated_at": now},
            where=or_(state.c.value == holder, state.c.updated_at < now - ttl),
        ).returning(state.c.value)
        with self._write() as conn:
            return conn.execute(stmt).first() is not None

    def release_lease(self, key: str, holder: str) -> None:
        """Give the lease back, if `holder` has it, so another can take it at once."""
        state = schema.state
        with self._write() as conn:
            conn.execute(delete(state).where(and_(state.c.key == key, state.c.value == holder)))
