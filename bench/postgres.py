"""PostgreSQL for the benchmark: a fresh database per use on the given server, dropped after."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

from psycopg import sql
from sqlalchemy.engine import make_url

from tests.realservers import connect


def dsn(url: str) -> str:
    """A libpq connection string for a SQLAlchemy URL (for the raw psycopg baseline)."""
    parsed = make_url(url)
    parts = {
        "host": parsed.host,
        "port": parsed.port,
        "user": parsed.username,
        "password": parsed.password,
        "dbname": parsed.database,
    }
    return " ".join(f"{k}={v}" for k, v in parts.items() if v is not None)


def server_version(url: str) -> str:
    with connect(make_url(url), autocommit=True) as conn:
        row = conn.execute("show server_version").fetchone()
    return str(row[0]) if row else "?"


@contextlib.contextmanager
def fresh_database(url: str, purpose: str) -> Iterator[str]:
    """A new empty database on the server of `url`; yields its SQLAlchemy URL, then drops it."""
    admin = make_url(url)
    name = f"nightshift_bench_{purpose}_{secrets.token_hex(4)}"
    with connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin.set(database=name).render_as_string(hide_password=False)
    finally:
        with connect(admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
