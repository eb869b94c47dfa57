"""Charts: a PNG with the band and shaded anomalies, for `analyze --chart` and `grafico`."""

from __future__ import annotations

from detector.chart import render_chart
from detector.offline import Analysis
from tests.detector import labels
from tests.detector.conftest import DATA, load


def test_chart_is_a_png_of_reasonable_size(transactions_1: Analysis) -> None:
    counts, _ = load("transactions_1.csv", labels.T1_DAY)
    png = render_chart(counts, transactions_1.segments, transactions_1.baseline, tz=labels.TZ)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert 10_000 < len(png) < 2_000_000
    assert DATA.exists()
