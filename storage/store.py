"""The store: `Store`, made of the store's parts, and `open_store`, which opens a database.

`Store` is what the rest of nightshift holds. Each of its methods lives in the module of its
part, which owns it:

    storage/ingest.py     feed batches into the minute buckets; retention
    storage/traffic.py    frames and sums over the minute buckets
    storage/slices.py     dimensioned counts: combos, totals and marginals; slice frames
    storage/alerts.py     Alertmanager webhooks, alert state and history
    storage/anomalies.py  detector findings
    storage/incidents.py  incidents: what belongs to one fire, its timeline, operators' acts
    storage/cards.py      each incident's message per chat, and a flood's roll-up
    storage/journal.py    the audit trail
    storage/state.py      small facts kept across restarts; leases
    storage/outbox.py     notifications and their deliveries
    storage/database.py   the engine, the dialect, transactions, health

Exceptions are drawn in `storage/errors.py`; how each dialect writes fast is in
`storage/dialects/`.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from storage.alerts import Alerts
from storage.anomalies import Anomalies
from storage.cards import Cards
from storage.dialects import dialect_for
from storage.errors import StorageError
from storage.incidents import Incidents
from storage.ingest import Ingest
from storage.journal import Journal
from storage.migrations import migrate
from storage.outbox import Outbox
from storage.slices import Slices
from storage.state import State
from storage.traffic import Traffic

__all__ = ["StorageError", "Store", "open_store"]


class Store(Ingest, Traffic, Slices, Alerts, Anomalies, Incidents, Cards, Journal, State, Outbox):
    """One database, opened and migrated; safe to share between threads."""


def open_store(url: str, *, migrate_schema: bool = True) -> Store:
    """Open (and by default migrate) the database at a SQLAlchemy URL."""
    try:
        dialect = dialect_for(url)
        engine = dialect.create_engine(url)
    except (ArgumentError, ImportError, SQLAlchemyError, StorageError) as error:
        raise StorageError(f"cannot use database URL: {error}") from None
    if migrate_schema:
        try:
            migrate(engine, datetime.now(UTC))
        except StorageError:
            engine.dispose()
            raise
        except SQLAlchemyError as error:
            engine.dispose()
            reason = str(error.orig if hasattr(error, "orig") else error).splitlines()[0]
            raise StorageError(f"cannot open the database: {reason}") from None
    return Store(engine, dialect)
