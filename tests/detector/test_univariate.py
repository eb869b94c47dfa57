"""`detect`'s scorer: causal, seasonal, calibrated, and labelled once per episode."""

from __future__ import annotations

import numpy as np

from detector.univariate import learning_rows, score_series, score_stream

FIVE_MIN = np.datetime64("2025-03-03T00:00:00") + np.arange(4032) * np.timedelta64(300, "s")


def test_score_at_t_ignores_everything_after_t() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(50, 3, 6000)
    y = x.copy()
    y[4500:] += 400
    sx = score_series(x, learning=300)
    sy = score_series(y, learning=300)
    assert np.array_equal(sx.score[:4500], sy.score[:4500])
    assert np.array_equal(sx.label[:4500], sy.label[:4500])


def test_spike_and_level_shift_are_labelled_and_noise_is_not() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(100, 5, 5000)
    x[3000] += 80
    x[4000:] -= 60
    score, label = score_stream(x)
    assert ((score >= 0) & (score <= 1)).all()
    assert label[3000] == 1 and label[4000] == 1
    assert label[:2990].sum() == 0


def test_an_episode_is_labelled_at_its_onset_only() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(10, 1, 3000)
    x[2000:2100] += 30  # one event a hundred rows long
    scored = score_series(x)
    assert scored.label[2000] == 1
    assert scored.label[2001:2200].sum() == 0
    assert (scored.score[2000:2100] >= 0.5).mean() > 0.5  # the score stays honest meanwhile


def test_clean_periodic_series_get_no_label_after_learning() -> None:
    t = np.arange(len(FIVE_MIN), dtype=float)
    sine = 50 + 20 * np.sin(2 * np.pi * t / 288)
    square = np.where((t % 288) < 144, 80.0, 20.0)
    for values in (sine, square):
        scored = score_series(values, FIVE_MIN)
        assert scored.period == 288  # a day of 5-minute steps
        assert scored.label.sum() == 0
        assert scored.score[scored.learning :].max() < 0.5


def test_daily_cycle_is_not_a_level_shift_but_a_broken_day_is() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(len(FIVE_MIN), dtype=float)
    day = 100 + 40 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 3, len(t))
    broken = day.copy()
    broken[3000:3144] = 100 + rng.normal(0, 3, 144)  # half a day without its cycle
    assert score_series(day, FIVE_MIN).label.sum() == 0
    found = np.flatnonzero(score_series(broken, FIVE_MIN).label)
    assert len(found) == 1 and 3000 <= found[0] <= 3040


def test_flatline_and_a_stopped_series_are_found() -> None:
    rng = np.random.default_rng(4)
    x = rng.normal(20, 2, 3000)
    x[2000:2300] = x[1999]  # a sensor stuck
    found = np.flatnonzero(score_series(x, FIVE_MIN[:3000]).label)
    assert len(found) >= 1 and 2000 <= found[0] <= 2010
    assert not ((found > found[0]) & (found < 2300)).any()
    keep = np.ones(3000, dtype=np.bool_)
    keep[2500:2560] = False  # five hours without a row
    labels = score_series(rng.normal(20, 2, 3000)[keep], FIVE_MIN[:3000][keep]).label
    assert labels[2500] == 1  # the first row after the gap


def test_missing_values_short_and_constant_series_do_not_break_it() -> None:
    x = np.array([1.0] * 100 + [np.nan] * 5 + [1.0] * 100)
    score, label = score_stream(x)
    assert np.isfinite(score).all() and label.sum() == 0
    for n in (0, 1, 7, 15, 60):
        scored = score_series(np.arange(n, dtype=float))
        assert len(scored.score) == n and scored.label.sum() == 0
    assert learning_rows(100_000) == 750 and learning_rows(1000) == 150
