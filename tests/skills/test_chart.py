"""`grafico`: a PNG of the period with the normal band and anomalies, and a one-line summary."""

from __future__ import annotations

import io
import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import matplotlib.image
import numpy as np
import pandas as pd
import pytest

from bot.app import Core, build_core
from bot.settings import Settings
from skills import chart
from skills.core import Invocation, Reply
from skills.periods import MAX_PERIOD
from storage.parsing import CountRow, FeedBatch, load_file
from storage.records import AnomalyRecord
from storage.store import Store
from tests.conftest import DATA
from tests.fakes.clock import FixedClock

SP = ZoneInfo("America/Sao_Paulo")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# 2025-07-14 12:30 in São Paulo: the file has 07-12 13:45 to 07-15 13:44, so one previous day
# covers 06:30-12:30.
NOON = datetime(2025, 7, 14, 15, 30, tzinfo=UTC)


def load(core: Core, clock: FixedClock) -> Core:
    core.store.ingest(load_file(DATA / "transactions.csv", default_date=date(2025, 7, 12), tz=SP))
    clock.set(NOON)
    return core


@pytest.fixture
def loaded(core: Core, clock: FixedClock) -> Core:
    """The file in a store on each backend: for what reads the store differently per backend."""
    return load(core, clock)


@pytest.fixture
def quick(settings: Settings, sqlite_store: Store, clock: FixedClock) -> Core:
    """The file on SQLite only: for what does not depend on the backend (arguments, wording)."""
    return load(build_core(settings, clock=clock, store=sqlite_store), clock)


@pytest.fixture
def feed() -> pd.DataFrame:
    """The same file read independently of the store: local naive times, status, count."""
    frame = pd.read_csv(DATA / "transactions.csv", parse_dates=["timestamp"])
    return frame


def total(feed: pd.DataFrame, status: str, start: str, end: str) -> int:
    """Transactions of `status` with local start <= time < end, straight from the file."""
    rows = feed[
        (feed["status"] == status)
        & (feed["timestamp"] >= pd.Timestamp(start))
        & (feed["timestamp"] < pd.Timestamp(end))
    ]
    return int(rows["count"].sum())


def pt(n: int) -> str:
    return f"{n:,}".replace(",", ".")


async def ask(core: Core, text: str) -> Reply:
    return await core.handle(Invocation("console", "op", text))


def store_anomaly(core: Core, key: str, status: str, start: datetime, end: datetime) -> None:
    core.store.save_anomaly(
        AnomalyRecord(
            key,
            "surge" if status == "denied" else "volume_drop",
            status,
            (status,),
            start,
            end,
            start,
            end,
            "critical",
            0.9,
            7.0,
            42.0,
            f"{status} fora do normal",
            f"{status} out of line",
            True,
        )
    )


def red_pixels(png: bytes) -> int:
    """Pixels of the critical shading (matplotlib's #d62728 at 25% on white)."""
    image = matplotlib.image.imread(io.BytesIO(png))[:, :, :3]
    shade = 1 - 0.25 * (1 - np.array([0xD6, 0x27, 0x28]) / 255)
    return int(np.all(np.abs(image - shade) < 0.03, axis=2).sum())


async def test_grafico_6h_is_a_png_with_a_one_line_summary(
    loaded: Core, feed: pd.DataFrame
) -> None:
    reply = await ask(loaded, "grafico 6h")
    assert reply.outcome == "ok", reply.plain_text()
    assert reply.image is not None
    assert reply.image.data.startswith(PNG_MAGIC)
    assert reply.image.filename == "nightshift-6h.png"
    assert reply.title == "📊 approved por minuto · últimas 6 horas"
    now = total(feed, "approved", "2025-07-14 06:30", "2025-07-14 12:30")
    before = total(feed, "approved", "2025-07-13 06:30", "2025-07-13 12:30")
    change = f"{'+' if now >= before else '−'}{abs(now / before - 1) * 100:.1f}".replace(".", ",")
    assert reply.image.caption == (
        f"approved · últimas 6 horas: {pt(now)} (normal {pt(before)}, {change}%; 1 dia)"
        " · nenhuma anomalia"
    )
    assert "\n" not in reply.image.caption
    assert reply.image.caption in reply.plain_text()


@pytest.mark.parametrize(
    "text",
    ["chart denied 2h", "gráfico últimas 2 horas negadas", "GRAFICO 2h Denied", "grafico 120m"],
)
async def test_period_and_status_in_either_order_and_language(quick: Core, text: str) -> None:
    reply = await ask(quick, text)
    status = "approved" if text.endswith("120m") else "denied"
    assert reply.title == f"📊 {status} por minuto · últimas 2 horas"
    assert reply.image is not None


async def test_default_is_approved_over_six_hours(quick: Core) -> None:
    reply = await ask(quick, "grafico")
    assert reply.title == "📊 approved por minuto · últimas 6 horas"


async def test_unknown_status_lists_the_known_ones(quick: Core) -> None:
    reply = await ask(quick, "grafico 6h pix")
    assert reply.outcome == "error"
    assert reply.image is None
    assert "`pix`" in reply.title
    for status in ("approved", "denied", "reversed", "backend_reversed", "failed", "refunded"):
        assert status in reply.title


async def test_anomalies_of_the_status_are_shaded_and_counted(loaded: Core) -> None:
    store_anomaly(
        loaded, "denied-1", "denied", NOON - timedelta(minutes=45), NOON - timedelta(minutes=20)
    )
    plain = await ask(loaded, "grafico 6h")
    assert plain.image is not None
    assert plain.image.caption.endswith("· nenhuma anomalia")  # a denied surge is not approved's

    denied = await ask(loaded, "grafico 6h denied")
    assert denied.image is not None
    assert denied.image.caption.endswith("· 1 anomalia")
    assert red_pixels(denied.image.data) > 50 * red_pixels(plain.image.data) + 1000


async def test_a_silent_feed_shows_against_its_normal(loaded: Core, clock: FixedClock) -> None:
    # the file ends 07-15 13:44 local; an hour later nothing came, the three days before did
    clock.set(datetime(2025, 7, 15, 17, 45, tzinfo=UTC))
    reply = await ask(loaded, "grafico 1h")
    assert reply.image is not None
    assert reply.image.caption.startswith("approved · última hora: 0 (normal ")
    assert "−100,0%; 3 dias)" in reply.image.caption


async def test_long_periods_are_bucketed_and_have_no_band(quick: Core) -> None:
    reply = await ask(quick, "grafico 7d")
    assert reply.title == "📊 approved por 30 min · últimos 7 dias"
    assert reply.image is not None
    assert "(sem histórico para a faixa normal)" in reply.image.caption


async def test_english_replies(quick: Core) -> None:
    english = build_core(Settings(lang="en"), quick.clock, quick.store)
    reply = await english.handle(Invocation("console", "op", "chart last 30 minutes refunded"))
    assert reply.title == "📊 refunded per minute · last 30 minutes"
    assert reply.image is not None
    assert reply.image.filename == "nightshift-30m.png"
    assert "(normal " in reply.image.caption and "1 day)" in reply.image.caption


async def test_without_approved_the_busiest_status_is_drawn(
    settings: Settings, sqlite_store: Store, clock: FixedClock
) -> None:
    clock.set(NOON)
    start = int(NOON.timestamp()) - 3600
    busier = [CountRow(start + 60 * m, "failed", 9) for m in range(60)]
    sqlite_store.ingest(FeedBatch(counts=[*busier, CountRow(start, "denied", 100)]))
    reply = await ask(build_core(settings, clock=clock, store=sqlite_store), "grafico 1h")
    assert reply.title == "📊 failed por minuto · última hora"


async def test_nothing_to_draw_on_an_empty_store(core: Core) -> None:
    reply = await ask(core, "grafico")
    assert reply.outcome == "ok"
    assert reply.image is None
    assert "Nenhuma transação" in reply.title


@pytest.mark.parametrize(
    "period", [timedelta(minutes=1), timedelta(minutes=59), timedelta(hours=6), MAX_PERIOD]
)
def test_windows_are_whole_buckets_up_to_the_current_minute(period: timedelta) -> None:
    now = datetime(2025, 7, 14, 15, 30, 42, tzinfo=UTC)
    window = chart.window_for(now, period)
    assert window.end == datetime(2025, 7, 14, 15, 30, tzinfo=UTC)
    assert window.end - window.start >= period
    assert window.end - window.start < period + window.bucket
    assert len(window.index) <= 400
    assert window.index[-1] + window.bucket == pd.Timestamp(window.end)


def _random_history(seed: int, window: chart.Window) -> FeedBatch:
    """The window and the comparable ones before it, minute by minute with minutes missing
    everywhere; of those before, one is missing, one has zeros only and one has a status seen
    nowhere else."""
    rng = random.Random(seed)
    shifts = chart.history_shifts(window)
    missing, zeros, rare = rng.sample(shifts, 3)
    first = int((window.start - shifts[-1]).timestamp())
    rows = []
    for m in range(0, int((window.end - window.start + shifts[-1]).total_seconds()), 60):
        when = datetime.fromtimestamp(first + m, UTC)
        inside = [s for s in shifts if window.start - s <= when < window.end - s]
        if missing in inside or rng.random() < 0.2:
            continue
        statuses = ["approved", "denied"] + (["refunded"] if rare in inside else [])
        for status in rng.sample(statuses, rng.randint(1, len(statuses))):
            rows.append(CountRow(first + m, status, 0 if zeros in inside else rng.randint(0, 30)))
    return FeedBatch(counts=rows)


def _minute_table(store: Store, start: datetime, window: chart.Window) -> pd.DataFrame:
    """Buckets x statuses of the window's span from `start`, from the minute rows in pandas."""
    frame = store.counts_frame(start, start + (window.end - window.start))
    slot = (frame["minute"] - pd.Timestamp(start)) // pd.Timedelta(window.bucket)
    table = frame.assign(slot=slot).pivot_table("count", "slot", "status", "sum", fill_value=0)
    return table.reindex(range(len(window.index)), fill_value=0)


@pytest.mark.parametrize(
    "period", [timedelta(hours=1), timedelta(hours=6), timedelta(hours=24), timedelta(days=3)]
)
def test_reads_equal_the_minute_rows_bucketed_in_pandas(store: Store, period: timedelta) -> None:
    """What the store sums per bucket is what summing every minute row would give."""
    window = chart.window_for(datetime(2025, 7, 14, 15, 30, 42, tzinfo=UTC), period)
    store.ingest(_random_history(7, window))
    data = chart.read_chart(store, window)

    tables = {
        shift: _minute_table(store, window.start - shift, window)
        for shift in chart.history_shifts(window)
    }
    busy = tuple(s for s, t in tables.items() if t.to_numpy().sum() > 0)
    assert 0 < len(busy) < len(tables)  # the missing and the all-zero days are left out
    assert data.history == busy
    current = _minute_table(store, window.start, window)
    seen = set(current.columns).union(*(tables[s].columns for s in busy))
    assert data.statuses == tuple(sorted(seen))
    assert dict(data.totals) == {s: int(current[s].sum()) for s in current.columns}

    for status in (*data.statuses, "pix"):
        counts = chart.read_counts(store, data, status)
        expected = [tables[s].get(status, pd.Series(0, tables[s].index)) for s in busy]
        assert counts.counts.tolist() == current.get(status, 0 * current.index).tolist()
        assert counts.history.shape == (len(busy), len(window.index))
        assert counts.history.tolist() == [e.tolist() for e in expected]


def _pooled_band(days: np.ndarray, reach: int) -> list[tuple[float, float, float]]:
    """(low, expected, high) per bucket, the slow obvious way: every day's neighbours pooled."""
    out = []
    for i in range(days.shape[1]):
        near = days[:, max(0, i - reach) : i + reach + 1].ravel()
        out.append((np.quantile(near, 0.1), float(np.median(near)), np.quantile(near, 0.9)))
    return out


def test_band_on_a_known_history() -> None:
    """Day k before held k per minute: every bucket pools 1..7 equally, whatever its
    neighbours, so the median is 4 and the 10th-90th percentile runs from 1 to 7."""
    window = chart.window_for(NOON, timedelta(hours=1))
    days = np.array([[float(k)] * 60 for k in range(1, 8)])
    band = chart.baseline_band(window, chart.StatusCounts(np.zeros(60), days))
    assert band is not None
    assert list(band.index) == list(window.index)
    assert band["expected"].tolist() == [4.0] * 60
    assert band["low"].tolist() == [1.0] * 60
    assert band["high"].tolist() == [7.0] * 60


@pytest.mark.parametrize(
    ("period", "reach"),
    [(timedelta(minutes=3), 7), (timedelta(hours=6), 7), (timedelta(hours=24), 1)],
)
@pytest.mark.parametrize("n_days", [1, 3, 7])
def test_band_pools_each_bucket_with_its_neighbours(
    period: timedelta, reach: int, n_days: int
) -> None:
    """Against pooling by hand, including the buckets at the ends that have fewer neighbours
    (a 3-minute window is all ends)."""
    window = chart.window_for(NOON, period)
    rng = np.random.default_rng(n_days)
    days = rng.integers(0, 500, size=(n_days, len(window.index))).astype(float)
    band = chart.baseline_band(window, chart.StatusCounts(np.zeros(len(window.index)), days))
    assert band is not None
    got = band[["low", "expected", "high"]].to_numpy()
    assert got == pytest.approx(np.array(_pooled_band(days, reach)), rel=1e-12)


def test_no_history_no_band() -> None:
    window = chart.window_for(NOON, timedelta(hours=1))
    counts = chart.StatusCounts(np.zeros(60), np.zeros((0, 60)))
    assert chart.baseline_band(window, counts) is None
