"""`detect`'s scorer: causal, seasonal, calibrated, and labelled once per episode."""

from __future__ import annotations

import numpy as np
import pytest

from detector.univariate import choose_period, learning_rows, score_series, score_stream

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


@pytest.mark.parametrize(("minutes", "rows"), [(5, 4032), (15, 6000), (1, 10_000)])
@pytest.mark.parametrize("phase", [0.0, 37.0, 183.4])
def test_clean_periodic_series_get_no_label_after_learning(
    minutes: int, rows: int, phase: float
) -> None:
    """A noise-free daily sine and square wave at any spacing and phase: their residuals fall to
    exactly zero once a cycle has been seen, which is no collapse of variance, and the learning
    rows' unsettled statistics do not make the settled ones look rare. (At 1-minute steps the
    learning period is half a day: the square wave's first edges come after it, unseen, and are
    news; the sine's smooth turn is not.)"""
    stamps = np.datetime64("2025-03-03T00:00:00") + np.arange(rows) * np.timedelta64(minutes, "m")
    day = 1440 // minutes
    t = np.arange(rows, dtype=float) + phase * day / 288
    sine = 50 + 20 * np.sin(2 * np.pi * t / day)
    square = np.where((t % day) < day / 2, 80.0, 20.0)
    for values in (sine, square) if minutes > 1 else (sine,):
        scored = score_series(values, stamps)
        assert scored.period == day
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


def _hourly_with_weekends(seed: int, weeks: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Hourly counts with a daily cycle and weekends at 40% of a weekday (starts on a Monday)."""
    rng = np.random.default_rng(seed)
    hours = np.arange(weeks * 7 * 24)
    daily = 1 + 0.8 * np.sin(2 * np.pi * ((hours % 24) - 9) / 24)
    weekend = (hours // 24) % 7 >= 5
    rate = 100 * daily * np.where(weekend, 0.4, 1.0)
    stamps = np.datetime64("2026-01-05T00:00:00") + hours * np.timedelta64(3600, "s")
    return rng.poisson(rate).astype(float), stamps


def test_a_weekly_series_is_modelled_by_the_week_and_a_weekday_at_weekend_level_is_news() -> None:
    wednesday = (8 * 7 + 2) * 24 + 9  # 09:00 on the ninth week's Wednesday
    three_weeks = 3 * 168  # the week is the model once it has been seen twice (at 504 rows)
    for seed in range(6):
        values, stamps = _hourly_with_weekends(seed)
        clean = score_series(values, stamps)
        assert clean.period == 168
        assert clean.label[three_weeks:].sum() == 0
        values[wednesday : wednesday + 12] *= 0.4  # the afternoon falls to a Sunday's level
        found = np.flatnonzero(score_series(values, stamps).label[three_weeks:]) + three_weeks
        assert len(found) == 1 and 0 <= found[0] - wednesday <= 3, found


def test_a_daily_series_keeps_the_day_when_the_week_adds_nothing() -> None:
    rng = np.random.default_rng(5)
    t = np.arange(4 * 7 * 288, dtype=float)
    values = 100 + 40 * np.sin(2 * np.pi * t / 288) + rng.normal(0, 3, len(t))
    stamps = np.datetime64("2025-03-03T00:00:00") + t.astype(np.int64) * np.timedelta64(300, "s")
    assert score_series(values, stamps).period == 288
    assert choose_period(values, (288.0, 2016.0)) == 288


def test_an_unevenly_sampled_series_keeps_its_daily_phase() -> None:
    """Half the rows 5 minutes apart, the others 10, 15 or 60: the day is still found, in
    5-minute steps, and an afternoon's drop is caught at once."""
    rng = np.random.default_rng(0)
    gaps = rng.choice([300, 300, 300, 600, 900, 3600], size=2500)
    seconds = np.cumsum(gaps)
    stamps = np.datetime64("2026-01-01T00:00:00") + seconds.astype("timedelta64[s]")
    values = 60 + 15 * np.sin(2 * np.pi * seconds / 86_400) + rng.normal(0, 3, len(gaps))
    values[2000:2100] -= 25
    scored = score_series(values, stamps)
    assert scored.period == 288
    assert scored.label[2000:2005].sum() == 1
