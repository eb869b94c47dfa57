"""Offline replay: no look at the future, and the baseline it reports."""

from __future__ import annotations

from datetime import timedelta

from detector.offline import Analysis, analyze_transactions
from detector.simulate import simulate


def test_analysis_of_a_prefix_equals_the_same_minutes_of_the_whole() -> None:
    frame, labels = simulate(24, seed=11)
    cut = labels[3].start + timedelta(minutes=10)
    whole = analyze_transactions(frame)
    prefix = analyze_transactions(frame[frame["minute"] < cut])
    early = [e for e in whole.emissions if e.at <= cut]
    assert early == list(prefix.emissions)
    assert len(early) > 0


def test_baseline_band_covers_normal_minutes(transactions: Analysis) -> None:
    band = transactions.baseline.iloc[60:]
    assert (band["low"] <= band["expected"]).all() and (band["expected"] <= band["high"]).all()
    assert 100 < band["expected"].median() < 135
