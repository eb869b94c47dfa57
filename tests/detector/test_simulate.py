"""`simulate`: seeded, realistic day, labeled incidents that are really in the feed."""

from __future__ import annotations

import pandas as pd
import pytest

from detector import DetectorError
from detector.simulate import INCIDENTS, simulate


def test_same_seed_same_feed_and_labels() -> None:
    a, la = simulate(24, seed=5)
    b, lb = simulate(24, seed=5)
    c, _ = simulate(24, seed=6)
    assert a.equals(b) and la == lb
    assert not a.equals(c)


def test_each_incident_is_labeled_once_and_visible_in_the_counts() -> None:
    frame, labels = simulate(48, seed=2)
    assert sorted(lab.kind for lab in labels) == sorted(INCIDENTS)
    per_minute = frame.pivot_table(
        index="minute", columns="status", values="count", aggfunc="sum", fill_value=0
    )
    for lab in labels:
        window = per_minute[(per_minute.index >= lab.start) & (per_minute.index < lab.end)]
        before = per_minute[
            (per_minute.index >= lab.start - (lab.end - lab.start)) & (per_minute.index < lab.start)
        ]
        if lab.kind == "feed_silence":
            assert window.empty or window.to_numpy().sum() == 0
        elif lab.kind == "failed_surge":
            assert window["failed"].sum() > 5 * max(before["failed"].sum(), 1)
        elif lab.kind in ("outage", "partial_drop"):
            assert window["approved"].mean() < 0.7 * before["approved"].mean()
    day = per_minute.sum(axis=1)
    assert isinstance(day.index, pd.DatetimeIndex)
    assert day.max() > 10 * max(day[day.index.hour == 7].mean(), 1)  # 04h local: quiet night


def test_unknown_incident_kind_is_refused() -> None:
    with pytest.raises(DetectorError, match="meteor"):
        simulate(24, seed=0, incidents=["meteor"])
