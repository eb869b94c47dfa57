"""The store: feed buckets, alerts, findings, the journal and the outbox (see `store.py`)."""
