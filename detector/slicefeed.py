"""A seeded dimensioned feed: the simulated total split into slices, with slice incidents.

The total is `simulate`'s (same seed, same total incidents). Each dimension splits every
(minute, status) count among its values with Zipf-like shares (the first value carries most,
as acquirers and brands do), and incidents confined to one slice are placed at busy times,
apart from the total's: an acquirer down (`slice_outage`: the slice goes to zero), one brand's
issuer denying (`slice_denied_surge`: its denials 4-8x, authorization code 59), and a slow
degradation of one slice's approvals. The totals follow what the slices did. Authorization codes
come along (`00` for the approvals; denials by code).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from detector import DetectorError
from detector.simulate import Label, place, simulate

SLICE_INCIDENTS = ("slice_outage", "slice_denied_surge", "slice_degradation")
SLICE_AFFECTS = {
    "slice_outage": ("approved",),
    "slice_denied_surge": ("denied",),
    "slice_degradation": ("approved",),
}
# which dimension each slice incident prefers (the first dimension when it is absent)
PREFERS = {"slice_outage": "acquirer", "slice_denied_surge": "brand", "slice_degradation": ""}
MIN_SHARE = {"slice_outage": 0.04, "slice_denied_surge": 0.1, "slice_degradation": 0.08}
NAMES = {
    "acquirer": ("cielo", "rede", "getnet", "stone", "pagseguro", "safrapay", "adiq", "sipag"),
    "brand": ("visa", "mastercard", "elo", "amex", "hipercard", "diners", "discover", "jcb"),
}
DENIAL_CODES = {"51": 0.5, "05": 0.25, "14": 0.1, "54": 0.08, "59": 0.07}
SURGE_CODE = "59"  # a brand's issuer turning its fraud rule up
ZIPF = 1.1
EPOCH = pd.Timestamp(0, tz="UTC")


@dataclass(frozen=True, slots=True)
class SliceFeed:
    """A simulated dimensioned feed: the totals, the slice marginals, the codes, the labels."""

    counts: pd.DataFrame  # minute, status, count
    slices: pd.DataFrame  # minute, status, dimension, value, count
    auth_codes: pd.DataFrame  # minute, auth_code, count
    labels: list[Label]
    dimensions: tuple[tuple[str, tuple[str, ...]], ...]  # each dimension and its values


def parse_dimensions(text: str) -> list[tuple[str, int]]:
    """`acquirer:5,brand:4` as [("acquirer", 5), ("brand", 4)]."""
    out: list[tuple[str, int]] = []
    for part in (p.strip() for p in text.split(",")):
        name, _, size = part.partition(":")
        if not name or not size.isdigit() or not 1 <= int(size) <= 50:
            raise DetectorError(f"dimension {part!r}: expected NAME:VALUES (1 to 50 values)")
        if name in {"timestamp", "status", "count"} or name in {n for n, _ in out}:
            raise DetectorError(f"dimension {name!r}: reserved or repeated")
        out.append((name, int(size)))
    return out


def values_of(name: str, size: int) -> tuple[str, ...]:
    """Value names of a dimension: real acquirers and brands, else `name1`, `name2`, ..."""
    known = NAMES.get(name, ())
    return tuple(known[i] if i < len(known) else f"{name}{i + 1}" for i in range(size))


def zipf_shares(size: int, rng: np.random.Generator) -> np.ndarray:
    """Zipf-like shares, jittered, largest first."""
    raw = 1.0 / np.arange(1, size + 1) ** ZIPF * rng.uniform(0.8, 1.2, size)
    return np.sort(raw / raw.sum())[::-1]


def simulate_slices(
    dimensions: Sequence[tuple[str, int]],
    hours: int = 24,
    seed: int = 0,
    incidents: Sequence[str] | None = None,
    slice_incidents: Sequence[str] | None = None,
    *,
    quiet_hours: int = 0,
) -> SliceFeed:
    """A dimensioned feed of `hours` hours: `simulate(hours, seed, incidents)` split by
    `dimensions`, with each of `slice_incidents` (default all) confined to one slice, placed
    after the first `quiet_hours` (a history to learn from)."""
    if not dimensions:
        raise DetectorError("simulate_slices needs at least one dimension")
    kinds = list(SLICE_INCIDENTS if slice_incidents is None else slice_incidents)
    unknown = [k for k in kinds if k not in SLICE_INCIDENTS]
    if unknown:
        raise DetectorError(f"unknown slice incident kind(s): {', '.join(unknown)}")
    base, labels = simulate(hours, seed, incidents)
    rng = np.random.default_rng([seed, 15])
    wide = base.pivot_table(
        index="minute", columns="status", values="count", aggfunc="sum", fill_value=0
    )
    stamps = pd.date_range(wide.index.min(), periods=hours * 60, freq="min")
    wide = wide.reindex(stamps, fill_value=0)
    statuses = [str(c) for c in wide.columns]
    totals = np.array(wide.to_numpy(np.int64))
    dims = [(name, values_of(name, size), zipf_shares(size, rng)) for name, size in dimensions]
    splits = [rng.multinomial(totals, shares) for _, _, shares in dims]
    level = pd.Series(totals.sum(axis=1)).rolling(31, center=True, min_periods=1).mean()
    origin = stamps[0].to_pydatetime()
    taken = np.zeros(len(stamps), dtype=bool)
    taken[: quiet_hours * 60] = True
    for lab in labels:
        taken[_at(lab.start, origin) : _at(lab.end, origin)] = True
    placed = place(kinds, level.to_numpy(), rng, origin, taken=taken, busy_share=0.55)
    excess = np.zeros(len(stamps), dtype=np.int64)
    slice_labels: list[Label] = []
    for lab in placed:
        a, b = _at(lab.start, origin), _at(lab.end, origin)
        d = _dimension_for(lab.kind, [name for name, _, _ in dims])
        name, values, shares = dims[d]
        big = np.flatnonzero(shares >= MIN_SHARE[lab.kind])
        v = int(rng.choice(big)) if len(big) else 0
        old = splits[d][a:b, :, v].copy()
        new = _incident(lab.kind, old, statuses, rng)
        totals[a:b] += new - old
        splits[d][a:b, :, v] = new
        if lab.kind == "slice_denied_surge":
            excess[a:b] = np.maximum(new - old, 0)[:, statuses.index("denied")]
        for other, (_, _, other_shares) in enumerate(dims):
            if other != d:
                splits[other][a:b] = rng.multinomial(totals[a:b], other_shares)
        slice_labels.append(
            Label(lab.kind, lab.start, lab.end, SLICE_AFFECTS[lab.kind], ((name, values[v]),))
        )
    counts = _long(totals, stamps, statuses)
    slices = pd.concat(
        [
            _long(split.reshape(len(stamps), -1), stamps, _pairs(statuses, values)).pipe(
                _named, name
            )
            for split, (name, values, _) in zip(splits, dims, strict=True)
        ],
        ignore_index=True,
    )
    codes = _codes(totals, statuses, excess, stamps, rng)
    dimensions_out = tuple((name, values) for name, values, _ in dims)
    all_labels = sorted([*labels, *slice_labels], key=lambda lab: lab.start)
    return SliceFeed(counts, slices, codes, all_labels, dimensions_out)


def _at(moment: datetime, origin: datetime) -> int:
    return int((moment - origin) / timedelta(minutes=1))


def _dimension_for(kind: str, names: list[str]) -> int:
    preferred = PREFERS[kind]
    if preferred in names:
        return names.index(preferred)
    return len(names) - 1 if kind == "slice_degradation" else 0


def _incident(
    kind: str, old: np.ndarray, statuses: list[str], rng: np.random.Generator
) -> np.ndarray:
    new = old.copy()
    if kind == "slice_outage":
        new[:] = 0
    elif kind == "slice_denied_surge":
        col = statuses.index("denied")
        new[:, col] = rng.poisson(old[:, col] * rng.uniform(4.0, 8.0))
    else:
        col = statuses.index("approved")
        ramp = np.linspace(1.0, 0.3, len(old))
        ramp[len(old) * 2 // 3 :] = 0.3
        new[:, col] = rng.binomial(old[:, col], ramp)
    return new


def _pairs(statuses: list[str], values: tuple[str, ...]) -> list[str]:
    return [f"{s}\t{v}" for s in statuses for v in values]


def _named(frame: pd.DataFrame, dimension: str) -> pd.DataFrame:
    parts = frame["status"].str.split("\t", n=1, expand=True)
    status, value = parts[0], parts[1]
    return pd.DataFrame(
        {
            "minute": frame["minute"],
            "status": status,
            "dimension": dimension,
            "value": value,
            "count": frame["count"],
        }
    )


def _long(values: np.ndarray, stamps: pd.DatetimeIndex, columns: list[str]) -> pd.DataFrame:
    row, col = np.nonzero(values)
    return pd.DataFrame(
        {
            "minute": stamps[row],
            "status": np.asarray(columns, dtype=object)[col],
            "count": values[row, col].astype(np.int64),
        }
    )


def _codes(
    totals: np.ndarray,
    statuses: list[str],
    excess: np.ndarray,
    stamps: pd.DatetimeIndex,
    rng: np.random.Generator,
) -> pd.DataFrame:
    names = list(DENIAL_CODES)
    denied = totals[:, statuses.index("denied")]
    split = rng.multinomial(np.maximum(denied - excess, 0), list(DENIAL_CODES.values()))
    split[:, names.index(SURGE_CODE)] += excess
    table = np.column_stack([totals[:, statuses.index("approved")], split])
    frame = _long(table, stamps, ["00", *names])
    return frame.rename(columns={"status": "auth_code"})


def joint_rows(feed: SliceFeed, rng: np.random.Generator) -> pd.DataFrame:
    """One row per (minute, status, value of each dimension) whose marginals are exactly the
    feed's slices: each transaction of a (minute, status) drawn a value per dimension, matched
    at random across dimensions (`timestamp, status, <dimensions...>, count` as written)."""
    names = [name for name, _ in feed.dimensions]
    status_names = sorted(feed.slices["status"].unique())
    code = {status: i for i, status in enumerate(status_names)}
    keyed = feed.slices.sort_values(["minute", "status", "dimension", "value"])
    columns: dict[str, np.ndarray] = {}
    group: np.ndarray | None = None
    for name in names:
        part = keyed[keyed["dimension"] == name]
        counts = part["count"].to_numpy()
        labels = np.repeat(part["value"].to_numpy(dtype=object), counts)
        groups = np.repeat(
            ((part["minute"] - EPOCH) // pd.Timedelta(minutes=1)).to_numpy() * 16
            + part["status"].map(code).to_numpy(),
            counts,
        )
        order = np.lexsort((rng.random(len(labels)), groups))
        columns[name] = labels[order]
        group = groups[order]
    if group is None:
        return pd.DataFrame()
    frame = pd.DataFrame({"group": group, **columns})
    out = frame.groupby(["group", *names], sort=True).size().rename("count").reset_index()
    out["minute"] = pd.to_datetime((out["group"] // 16) * 60, unit="s", utc=True)
    out["status"] = np.asarray(status_names, dtype=object)[out["group"] % 16]
    return out[["minute", "status", *names, "count"]]
