"""Shared fixtures: the CloudWalk files loaded once and replayed once through the engine."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from detector.offline import Analysis, analyze_transactions
from storage.parsing import load_file
from tests.detector import labels

DATA = Path(__file__).resolve().parent.parent / "data"


def load(name: str, day: date) -> tuple[pd.DataFrame, pd.DataFrame]:
    batch = load_file(DATA / name, default_date=day, tz=labels.TZ)
    return batch.counts_frame(), batch.auth_codes_frame()


@pytest.fixture(scope="session")
def transactions() -> Analysis:
    counts, _ = load("transactions.csv", date(2025, 7, 12))
    _, auth = load("transactions_auth_codes.csv", date(2025, 7, 12))
    return analyze_transactions(counts, auth)


@pytest.fixture(scope="session")
def transactions_1() -> Analysis:
    counts, _ = load("transactions_1.csv", labels.T1_DAY)
    return analyze_transactions(counts)
