"""A seeded corpus of labelled univariate series of many shapes, for judging `detect`.

`corpus(seed)` makes the same series every time: spacings from 1 minute to 1 hour, lengths from 1
to ~20,000 points, flat, trending, daily, weekly, odd-period, square and business-hours shapes,
Gaussian, heavy-tailed, count, quantized, autocorrelated and noise-free values, missing
timestamps, and clean series with no anomaly at all. Each anomaly is labelled at its onset (a row
index); kinds: spike, dip, level shift, variance change, trend change, broken seasonal pattern,
flatline, and a series that stops (a gap, then values back near zero). Nothing is placed in the
first 15% of a series (at most 750 points): that is the learning period the scorer ignores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

KINDS = ("spike", "dip", "level", "variance", "trend", "seasonal", "flatline", "stop")
SHAPES = ("flat", "daily", "weekly", "odd", "trend", "square", "business", "drift")
NOISES = ("gauss", "heavy", "counts", "quantized", "ar1", "none", "multiplicative")
SPACINGS = (1, 5, 5, 5, 10, 15, 60)  # minutes


@dataclass(frozen=True, slots=True)
class Labelled:
    """One series: its timestamps (datetime64[s]), values, and the row of each anomaly's onset."""

    name: str
    timestamps: np.ndarray
    values: np.ndarray
    anomalies: tuple[int, ...]
    kinds: tuple[str, ...]


def probation(n: int) -> int:
    """Rows of the learning period: 15% of the series, at most 750 (as the scorer counts it)."""
    return int(min(np.floor(0.15 * n), 750))


def _shape(kind: str, t: np.ndarray, spacing: int, rng: np.random.Generator) -> np.ndarray:
    day = 1440 / spacing
    phase = rng.uniform(0, 2 * np.pi)
    if kind == "flat":
        return np.zeros(len(t))
    if kind == "daily":
        return np.sin(2 * np.pi * t / day + phase)
    if kind == "weekly":
        week = 7 * day
        weekend = ((t // day) % 7 >= 5).astype(float)
        return (
            0.7 * np.sin(2 * np.pi * t / day + phase)
            - 0.8 * weekend
            + 0.1 * np.sin(2 * np.pi * t / week)
        )
    if kind == "odd":
        period = float(rng.integers(24, 400))
        return np.sin(2 * np.pi * t / period + phase) + 0.4 * np.sin(4 * np.pi * t / period)
    if kind == "trend":
        return np.linspace(0, rng.choice([-1.0, 1.0]) * rng.uniform(1, 4), len(t))
    if kind == "square":
        period = day if rng.uniform() < 0.5 else float(rng.integers(20, 300))
        return np.where(((t + phase * period) % period) < period / 2, 1.0, -1.0)
    if kind == "business":
        hour = (t * spacing / 60) % 24
        return np.clip((hour - 8) * 0.6, 0, 1) * np.clip((20 - hour) * 0.6, 0, 1) * 2 - 1
    # drift: a slow random walk, smoothed
    walk = np.cumsum(rng.normal(0, 1, len(t)))
    width = max(len(t) // 50, 1)
    smooth = np.convolve(walk, np.ones(width) / width, mode="same")
    return np.asarray((smooth - smooth.mean()) / (smooth.std() + 1e-9))


def _noise(kind: str, clean: np.ndarray, sd: float, rng: np.random.Generator) -> np.ndarray:
    n = len(clean)
    if kind == "gauss":
        return np.asarray(clean + rng.normal(0, sd, n))
    if kind == "heavy":
        return np.asarray(clean + sd * rng.standard_t(3, n) / np.sqrt(3))
    if kind == "counts":
        return np.asarray(rng.poisson(np.maximum(clean, 0.05)), dtype=float)
    if kind == "quantized":
        step = max(sd * rng.uniform(0.5, 2.0), 1e-3)
        return np.round((clean + rng.normal(0, sd, n)) / step) * step
    if kind == "ar1":
        e = rng.normal(0, sd * np.sqrt(1 - 0.8**2), n)
        out = np.empty(n)
        acc = 0.0
        for i in range(n):
            acc = 0.8 * acc + e[i]
            out[i] = acc
        return clean + out
    if kind == "multiplicative":
        return clean * np.exp(rng.normal(0, sd / max(abs(clean.mean()), 1e-9), n))
    return clean.copy()


def _inject(
    kind: str, x: np.ndarray, at: int, sd: float, amp: float, rng: np.random.Generator
) -> None:
    n = len(x)
    size = sd if sd > 0 else 0.1 * amp + 1e-3
    sign = rng.choice([-1.0, 1.0])
    rest = slice(at, n)
    if kind == "spike":
        x[at] += max(rng.uniform(6, 14) * size, 0.6 * amp)
    elif kind == "dip":
        x[at] -= max(rng.uniform(6, 14) * size, 0.6 * amp)
    elif kind == "level":
        x[rest] += sign * max(rng.uniform(3, 7) * size, 0.3 * amp)
    elif kind == "variance":
        x[rest] += rng.normal(0, rng.uniform(3, 6) * size, n - at)
    elif kind == "trend":
        span = max(n - at, 1)
        x[rest] += sign * np.arange(n - at) * rng.uniform(8, 20) * size / min(span, 200)
    elif kind == "seasonal":
        length = min(n - at, int(rng.integers(50, 400)))
        x[at : at + length] = x[at - length : at][::-1] if at >= length else x[at : at + length]
    elif kind == "flatline":
        length = min(n - at, int(rng.integers(30, 300)))
        x[at : at + length] = x[at - 1]
    else:  # stop: values collapse toward zero for a stretch
        length = min(n - at, int(rng.integers(20, 200)))
        x[at : at + length] = x[at : at + length] * 0.02


def _series(index: int, rng: np.random.Generator) -> Labelled:
    spacing = int(rng.choice(SPACINGS))
    pick = rng.uniform()
    if index < 3:
        n = (1, 7, 60)[index]
    elif pick < 0.15:
        n = int(rng.integers(10_000, 20_000))
    elif pick < 0.3:
        n = int(rng.integers(300, 1000))
    else:
        n = int(rng.integers(1000, 6000))
    shape = str(rng.choice(SHAPES))
    noise = str(rng.choice(NOISES))
    t = np.arange(n, dtype=float)
    base = _shape(shape, t, spacing, rng)
    level = float(rng.choice([1.0, 20.0, 300.0, 5000.0]))
    amp = level * rng.uniform(0.1, 0.6)
    sd = amp * rng.uniform(0.03, 0.25) if noise != "none" else 0.0
    clean = level + amp * base
    if noise == "counts":
        clean = np.maximum(clean / level * rng.uniform(2, 60), 0.1)
        amp = float(np.ptp(clean)) / 2 + 1e-9
        sd = float(np.sqrt(clean.mean()))
    x = _noise(noise, clean, sd, rng)
    start = probation(n)
    count = 0 if index % 5 == 0 or n < 200 else int(rng.integers(1, 4))
    ats: list[int] = []
    kinds: list[str] = []
    if count:
        slots = np.sort(rng.choice(np.arange(start + 10, n - 5), size=count, replace=False))
        for at in slots.tolist():
            if ats and at - ats[-1] < n // 8:
                continue
            kind = str(rng.choice(KINDS))
            if kind == "seasonal" and shape in ("flat", "trend", "drift"):
                kind = "level"
            _inject(kind, x, at, sd, amp, rng)
            ats.append(at)
            kinds.append(kind)
    if noise == "counts":
        x = np.round(np.maximum(x, 0.0))
    keep = np.ones(n, dtype=np.bool_)
    if n > 200 and rng.uniform() < 0.3:
        keep[rng.choice(n, size=n // 50, replace=False)] = False
    for at, kind in zip(ats, kinds, strict=True):
        keep[at] = True
        if kind == "stop":
            gap = min(int(rng.integers(12, 60)), n - at - 1)
            keep[at : at + gap] = False
            keep[at + gap] = True
    rows = np.flatnonzero(keep)
    stamps = np.datetime64("2025-03-03T00:00:00") + (t[rows] * spacing * 60).astype(
        "timedelta64[s]"
    )
    onsets = tuple(int(np.searchsorted(rows, at)) for at in ats)
    name = f"s{index:02d}-{shape}-{noise}-{spacing}min-{n}"
    return Labelled(name, stamps, x[rows], onsets, tuple(kinds))


def corpus(seed: int = 0, count: int = 60) -> list[Labelled]:
    """`count` labelled series, the same for the same seed; the first 3 are tiny (1, 7, 60 points)
    and every fifth has no anomaly; two clean periodic ones (a sine and a noise-free square wave
    at 5-minute spacing, 4,032 points) come last."""
    out = [_series(i, np.random.default_rng([seed, i])) for i in range(count)]
    t = np.arange(4032, dtype=float)
    stamps = np.datetime64("2025-03-03T00:00:00") + (t * 300).astype("timedelta64[s]")
    sine = 50 + 20 * np.sin(2 * np.pi * t / 288)
    square = np.where((t % 288) < 144, 80.0, 20.0)
    out.append(Labelled("clean-daily-sine-5min", stamps, sine, (), ()))
    out.append(Labelled("clean-square-wave-5min", stamps, square, (), ()))
    return out
