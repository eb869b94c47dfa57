"""The labelled corpus and the windowed scorer (a fast subset of `make bench`'s corpus table)."""

from __future__ import annotations

import numpy as np

from bench.corpus import nightshift, run, three_sigma, windowed_gaussian
from detector.corpus import corpus, probation
from detector.evaluation import scaled_sigmoid, score_windows, windows_of


def test_corpus_is_seeded_and_varied() -> None:
    a, b = corpus(0, 12), corpus(0, 12)
    assert [s.name for s in a] == [s.name for s in b]
    assert all(np.array_equal(x.values, y.values) for x, y in zip(a, b, strict=True))
    assert [len(s.values) for s in a[:3]] == [1, 7, 60]
    whole = corpus()
    assert len(whole) >= 50
    assert {s.name.split("-")[1] for s in whole} >= {"daily", "weekly", "odd", "flat", "trend"}
    assert len({k for s in whole for k in s.kinds}) == 8
    for s in whole:
        assert all(a >= probation(len(s.values)) for a in s.anomalies), s.name
        assert (np.diff(s.timestamps.astype(np.int64)) > 0).all()


def test_window_score_rewards_early_and_charges_misses_and_false_alarms() -> None:
    n = 1000
    labels = np.zeros(n, dtype=np.int8)
    assert score_windows(labels, [500], 150).raw == -1.0  # a miss
    (lo, hi) = windows_of([500], n)[0]
    assert (lo, hi) == (450, 550)
    early, late = labels.copy(), labels.copy()
    early[lo] = 1
    late[540] = 1
    assert score_windows(early, [500], 150).raw > score_windows(late, [500], 150).raw > 0
    noisy = early.copy()
    noisy[[200, 300, 470, 480]] = 1  # two false alarms; more rows inside a found window are free
    scored = score_windows(noisy, [500], 150)
    assert scored.false == 2 and round(scored.raw, 3) == round(scaled_sigmoid(-1.0) - 0.22, 3)
    assert score_windows(noisy, [500], 350).false == 0  # the learning rows are not counted
    assert score_windows(labels, [500], 150).normalised == 0.0
    assert round(score_windows(early, [500], 150).normalised) == 100


def test_detect_beats_windowed_gaussian_and_three_sigma_on_a_corpus_subset() -> None:
    series = corpus(1, 24)
    ours, _, clean = run(nightshift, series)
    for peer in (windowed_gaussian, three_sigma):
        theirs, _, _ = run(peer, series)
        assert ours.normalised > theirs.normalised + 10, peer.__name__
    assert ours.normalised >= 35
    assert clean <= 8  # labels after learning on the series that have no anomaly
