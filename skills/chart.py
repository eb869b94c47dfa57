"""`grafico [período] [status]`: a PNG of one status over the period, its normal band, anomalies.

The band is what `status` and `metricas` call normal (skills/baseline.py): the same window on
previous days. Each bucket's expected value is the median of that bucket and its neighbours
(about 15 minutes) over the previous days that had traffic, and the band runs from their 10th to
their 90th percentile, so one bad night in the history widens it only a little. Windows up to a
day compare with the previous 7 days; up to a week, with the previous 3 weeks (the same
weekdays); longer windows get no band.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from typing import Protocol

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from detector.chart import render_chart
from skills.core import Image, Invocation, Reply, SkillContext, SkillError, normalize
from skills.formatting import number, percent
from skills.periods import describe, parse_period, split_period
from storage.records import AnomalyRecord
from storage.store import Store

DEFAULT_PERIOD = timedelta(hours=6)
DEFAULT_STATUS = "approved"
#: (longest window, bucket): at most about 360 points, whatever the period.
BUCKETS = (
    (timedelta(hours=6), timedelta(minutes=1)),
    (timedelta(days=1), timedelta(minutes=5)),
    (timedelta(days=3), timedelta(minutes=15)),
    (timedelta(days=7), timedelta(minutes=30)),
    (timedelta(days=30), timedelta(hours=2)),
    (timedelta(days=90), timedelta(hours=6)),
)
BAND = (0.1, 0.9)
NEIGHBOURHOOD = timedelta(minutes=15)
#: Statuses of real feeds, offered when the store has none to list yet (SPEC.md).
FEED_STATUSES = (
    "approved",
    "denied",
    "failed",
    "reversed",
    "backend_reversed",
    "refunded",
    "processing",
)
#: Portuguese names operators type for the statuses the feeds use.
STATUS_WORDS = {
    "aprovada": "approved",
    "aprovadas": "approved",
    "aprovados": "approved",
    "aprovacao": "approved",
    "negada": "denied",
    "negadas": "denied",
    "recusada": "denied",
    "recusadas": "denied",
    "falha": "failed",
    "falhas": "failed",
    "falhada": "failed",
    "falhadas": "failed",
    "estornada": "reversed",
    "estornadas": "reversed",
    "estorno": "reversed",
    "estornos": "reversed",
    "reembolsada": "refunded",
    "reembolsadas": "refunded",
    "reembolso": "refunded",
    "reembolsos": "refunded",
    "processando": "processing",
}


@dataclass(frozen=True, slots=True)
class Window:
    """The buckets of the chart: `index` holds each bucket's start (UTC), all `bucket` long."""

    start: datetime
    end: datetime
    bucket: timedelta
    index: pd.DatetimeIndex


@dataclass(frozen=True, slots=True)
class ChartData:
    """What the chart needs before a status is chosen, read from the store in one go.

    `totals` are the window's transactions per status; `history` how far back lie the
    comparable windows (previous days or weeks) that had traffic; `statuses` every status seen
    in the window or in those.
    """

    window: Window
    totals: Mapping[str, int]
    history: tuple[timedelta, ...]
    statuses: tuple[str, ...]
    anomalies: tuple[AnomalyRecord, ...]


@dataclass(frozen=True, slots=True)
class StatusCounts:
    """One status per bucket of the window: `counts` in the window itself, and `history` with
    one row per comparable window of `ChartData.history`, in the same order."""

    counts: np.ndarray
    history: np.ndarray


def bucket_for(period: timedelta) -> timedelta:
    """The bucket size of a chart of `period`: one minute up to 6 hours, coarser beyond."""
    for longest, bucket in BUCKETS:
        if period <= longest:
            return bucket
    return BUCKETS[-1][1]


def window_for(now: datetime, period: timedelta) -> Window:
    """Whole buckets ending at the current minute (not included: it is still filling), so the
    last point never shows a half-counted bucket as a dip."""
    end = now.replace(second=0, microsecond=0)
    bucket = bucket_for(period)
    count = max(1, math.ceil(period / bucket))
    start = end - count * bucket
    index = pd.date_range(pd.Timestamp(start).tz_convert("UTC"), periods=count, freq=bucket)
    return Window(start, end, bucket, index)


def history_shifts(window: Window) -> tuple[timedelta, ...]:
    """How far back the comparable windows lie: previous days, previous weeks, or none."""
    span = window.end - window.start
    if span <= timedelta(days=1):
        return tuple(timedelta(days=d) for d in range(1, 8))
    if span <= timedelta(days=7):
        return tuple(timedelta(weeks=w) for w in range(1, 4))
    return ()


class Traffic(Protocol):
    """What a chart reads: the store's totals, or one slice's (`SliceTraffic`)."""

    def totals_by_status(self, start: datetime, end: datetime) -> dict[str, int]: ...

    def traffic_statuses(self, start: datetime, end: datetime) -> tuple[str, ...]: ...

    def status_buckets(
        self, status: str, start: datetime, end: datetime, bucket: timedelta
    ) -> pd.Series[int]: ...

    def anomalies(self, start: datetime, end: datetime) -> list[AnomalyRecord]: ...


class SliceTraffic:
    """One slice of the feed (`acquirer=cielo`) read as a chart reads the total; its anomalies
    are those found on that slice."""

    def __init__(self, store: Store, dimension: str, value: str) -> None:
        self._store, self._dimension, self._value = store, dimension, value

    def _series(self, start: datetime, end: datetime) -> pd.DataFrame:
        return self._store.slice_series(self._dimension, self._value, start, end)

    def totals_by_status(self, start: datetime, end: datetime) -> dict[str, int]:
        frame = self._series(start, end)
        return {str(k): int(v) for k, v in frame.groupby("status")["count"].sum().items()}

    def traffic_statuses(self, start: datetime, end: datetime) -> tuple[str, ...]:
        totals = self.totals_by_status(start, end)
        return tuple(sorted(totals)) if sum(totals.values()) > 0 else ()

    def status_buckets(
        self, status: str, start: datetime, end: datetime, bucket: timedelta
    ) -> pd.Series[int]:
        return self._store.slice_buckets(self._dimension, self._value, status, start, end, bucket)

    def anomalies(self, start: datetime, end: datetime) -> list[AnomalyRecord]:
        mine = {self._dimension: self._value}
        return [a for a in self._store.anomalies(start, end) if dict(a.slice or {}) == mine]


def read_chart(store: Traffic, window: Window) -> ChartData:
    """The window's totals, which comparable windows before it had traffic, and its anomalies
    (blocking)."""
    totals = store.totals_by_status(window.start, window.end)
    seen = set(totals)
    history: list[timedelta] = []
    for shift in history_shifts(window):
        statuses = store.traffic_statuses(window.start - shift, window.end - shift)
        if statuses:
            history.append(shift)
            seen.update(statuses)
    anomalies = tuple(store.anomalies(window.start, window.end))
    return ChartData(window, totals, tuple(history), tuple(sorted(seen)), anomalies)


def read_counts(store: Traffic, data: ChartData, status: str) -> StatusCounts:
    """`status` per bucket in the window and in each comparable window (blocking); the store
    sums the buckets, so only a few hundred numbers a window leave the database."""
    window = data.window

    def buckets(shift: timedelta) -> np.ndarray:
        start, end = window.start - shift, window.end - shift
        return store.status_buckets(status, start, end, window.bucket).to_numpy(dtype=float)

    counts = buckets(timedelta(0))
    history = [buckets(shift) for shift in data.history]
    return StatusCounts(counts, np.array(history).reshape(len(history), len(counts)))


def _quantiles(pooled: np.ndarray, qs: Sequence[float]) -> np.ndarray:
    """`qs` of each row of `pooled`, ignoring NaN (one row of results per q). Only rows near
    the ends hold NaN; the rest go through numpy in one call, not a Python loop per row."""
    out = np.empty((len(qs), len(pooled)))
    ragged = np.isnan(pooled).any(axis=1)
    out[:, ~ragged] = np.quantile(pooled[~ragged], qs, axis=1)
    if ragged.any():
        out[:, ragged] = np.nanquantile(pooled[ragged], qs, axis=1)
    return out


def baseline_band(window: Window, counts: StatusCounts) -> pd.DataFrame | None:
    """Per bucket: the median (`expected`) and the 10th-90th percentile (`low`, `high`) of that
    bucket and its neighbours (about 15 minutes) on the previous windows; None without history.
    Pooling neighbours gives a band of honest width even from one previous day."""
    days = counts.history
    if not len(days):
        return None
    reach = max(1, int(NEIGHBOURHOOD / window.bucket) // 2)
    padded = np.pad(days, ((0, 0), (reach, reach)), constant_values=np.nan)
    near = sliding_window_view(padded, 2 * reach + 1, axis=1)  # (days, buckets, neighbours)
    pooled = near.transpose(1, 0, 2).reshape(len(window.index), -1)
    low, expected, high = _quantiles(pooled, (BAND[0], 0.5, BAND[1]))
    return pd.DataFrame({"expected": expected, "low": low, "high": high}, index=window.index)


def anomalies_for(data: ChartData, status: str) -> list[AnomalyRecord]:
    """The anomalies touching `status` (or the whole feed), clipped to the window and shaded as
    critical or warning."""
    start, end = data.window.start, data.window.end
    return [
        replace(
            a,
            start=max(a.start, start),
            end=end if a.end is None else min(a.end, end),
            severity="critical" if a.severity == "critical" else "warning",
        )
        for a in data.anomalies
        if not a.statuses or status in a.statuses
    ]


def draw(
    window: Window,
    counts: StatusCounts,
    status: str,
    anomalies: Sequence[AnomalyRecord],
    tz: tzinfo,
    title: str,
) -> bytes:
    """The PNG (blocking: matplotlib)."""
    frame = pd.DataFrame({"minute": window.index, "status": status, "count": counts.counts})
    band = baseline_band(window, counts)
    return render_chart(frame, anomalies, band, status=status, tz=tz, title=title)


def _arguments(args: str) -> tuple[timedelta, str]:
    """(period, status text) from `6h denied`, `denied 6h`, `últimas 2 horas`, or nothing."""
    head, rest = split_period(args)
    if head:
        return parse_period(head), rest.strip()
    words = args.split()
    for first in range(1, len(words)):
        tail = " ".join(words[first:])
        try:
            period = parse_period(tail)
        except SkillError:
            continue
        return period, " ".join(words[:first])
    return DEFAULT_PERIOD, args.strip()


def _status(ctx: SkillContext, asked: str, data: ChartData) -> str:
    known = data.statuses
    if not asked:
        if DEFAULT_STATUS in known or not known:
            return DEFAULT_STATUS
        return max(known, key=lambda s: (data.totals.get(s, 0), s == DEFAULT_STATUS))
    folded = normalize(asked).replace(" ", "_")
    by_name = {normalize(s): s for s in known}
    wanted = STATUS_WORDS.get(folded, folded)
    if wanted in by_name:
        return by_name[wanted]
    offered = ", ".join(known or FEED_STATUSES)
    raise SkillError(
        ctx.tr(
            f"Não conheço o status `{asked}`. Conheço: {offered}.",
            f"I don't know the status `{asked}`. I know: {offered}.",
        )
    )


def _compact(period: timedelta) -> str:
    minutes = int(period.total_seconds() // 60)
    if minutes % 1440 == 0:
        return f"{minutes // 1440}d"
    if minutes % 60 == 0:
        return f"{minutes // 60}h"
    return f"{minutes}m"


def _every(ctx: SkillContext, bucket: timedelta) -> str:
    minutes = int(bucket.total_seconds() // 60)
    if minutes == 1:
        return ctx.tr("por minuto", "per minute")
    if minutes % 60 == 0:
        return ctx.tr(f"por {minutes // 60}h", f"per {minutes // 60}h")
    return ctx.tr(f"por {minutes} min", f"per {minutes} min")


def _plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def summary(
    ctx: SkillContext,
    data: ChartData,
    counts: StatusCounts,
    status: str,
    when: str,
    anomalies: int,
) -> str:
    """One line: the status's total against the usual total of this window, and anomalies."""
    lang = ctx.lang
    total = float(counts.counts.sum())
    line = f"{status} · {when}: {number(total, lang)}"
    if data.history:
        normal = float(np.median(counts.history.sum(axis=1)))
        n = len(data.history)
        if history_shifts(data.window)[0] < timedelta(weeks=1):
            span = ctx.tr(_plural(n, "dia", "dias"), _plural(n, "day", "days"))
        else:
            span = ctx.tr(_plural(n, "semana", "semanas"), _plural(n, "week", "weeks"))
        change = ""
        if normal:
            sign = "+" if total >= normal else "−"
            change = f", {sign}{percent(abs(total / normal - 1), lang)}"
        line += f" (normal {number(normal, lang)}{change}; {span})"
    else:
        line += ctx.tr(" (sem histórico para a faixa normal)", " (no history for a normal band)")
    if anomalies:
        line += " · " + ctx.tr(
            _plural(anomalies, "anomalia", "anomalias"), _plural(anomalies, "anomaly", "anomalies")
        )
    else:
        line += ctx.tr(" · nenhuma anomalia", " · no anomalies")
    return line


_SLICE = re.compile(r"(?:^|\s)([a-z][a-z0-9_]{0,31})=(\S+)")


async def run(inv: Invocation, args: str, ctx: SkillContext) -> Reply:
    cut = _SLICE.search(args)
    source: Traffic = ctx.store
    named = ""
    if cut is not None:
        source = SliceTraffic(ctx.store, cut.group(1), cut.group(2))
        named = f"{cut.group(1)}={cut.group(2)} "
        args = (args[: cut.start()] + " " + args[cut.end() :]).strip()
    period, asked = _arguments(args)
    window = window_for(ctx.clock.now(), period)
    data = await ctx.read(read_chart, source, window)
    when = describe(period, ctx.lang)
    if not data.statuses:
        return Reply(
            title=ctx.tr(
                f"📊 Nenhuma transação {named}({when}) nem antes dela: não há o que desenhar.",
                f"📊 No {named}transactions ({when}) nor before it: nothing to draw.",
            )
        )
    status = _status(ctx, asked, data)
    counts = await ctx.read(read_counts, source, data, status)
    anomalies = anomalies_for(data, status)
    title = f"{named}{status} {_every(ctx, window.bucket)} · {when}"
    png = await ctx.call(draw, window, counts, status, anomalies, ctx.tz, title)
    return Reply(
        title=f"📊 {title}",
        image=Image(
            png,
            f"nightshift-{_compact(period)}.png",
            named + summary(ctx, data, counts, status, when, len(anomalies)),
        ),
    )
