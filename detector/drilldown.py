"""Drill-down: which slices carry a finding's deviation, and how much of it each carries.

For the finding's lead status, each value of each dimension is compared with itself just before
the finding: its deviation is what it did during the finding minus its rate over the `reference`
minutes before (scaled to the finding's length). A value's share is its part of the dimension's
net deviation (the same total in every dimension). A dimension is named only when it is
concentrated: its top value carries at least half of the deviation and clearly more than its
share of the volume (a drop spread evenly over all acquirers names none). Authorization codes are
one more dimension, of the denials (`codes_as_slices`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from detector.findings import Cause, Evidence, Finding

Carrier = tuple[str, str, float]  # (dimension, value, share of the deviation)

REFERENCE_MINUTES = 60
MIN_SHARE = 0.5  # the top value must carry at least this much of the deviation ...
OVER_VOLUME = 1.5  # ... and this many times its share of the volume
NEXT_SHARE = 0.2  # further values named with it carry at least this much
MIN_DEVIATION = 5.0  # transactions: a smaller net deviation names nothing


def codes_as_slices(auth_codes: pd.DataFrame | None, status: str = "denied") -> pd.DataFrame:
    """An authorization-code frame (`minute, auth_code, count`) as slices of `status`: one more
    dimension, `auth_code`, with code 00 (approved) left out."""
    columns = ["minute", "status", "dimension", "value", "count"]
    if auth_codes is None or auth_codes.empty:
        return pd.DataFrame(columns=columns)
    codes = auth_codes[auth_codes["auth_code"].astype(str) != "00"]
    return pd.DataFrame(
        {
            "minute": codes["minute"],
            "status": status,
            "dimension": "auth_code",
            "value": codes["auth_code"].astype(str),
            "count": codes["count"],
        }
    )[columns]


def carriers(
    slices: pd.DataFrame,
    status: str,
    start: datetime,
    end: datetime,
    *,
    reference: int = REFERENCE_MINUTES,
) -> tuple[Carrier, ...]:
    """The slices of `status` that carry most of its deviation over [start, end), best first.

    `slices` is a long frame (`minute, status, dimension, value, count`) that covers the
    `reference` minutes before `start` and the minutes of the finding.
    """
    if slices.empty:
        return ()
    rows = slices[slices["status"] == status]
    minute = pd.to_datetime(rows["minute"], utc=True)
    before = pd.Timestamp(start - timedelta(minutes=reference))
    during = (minute >= pd.Timestamp(start)) & (minute < pd.Timestamp(end))
    ref = (minute >= before) & (minute < pd.Timestamp(start))
    span = max((end - start) / timedelta(minutes=1), 1.0)
    keys = ["dimension", "value"]
    obs = rows[during].groupby(keys)["count"].sum()
    base = rows[ref].groupby(keys)["count"].sum()
    if base.empty:
        return ()
    table = pd.concat({"obs": obs, "base": base}, axis=1).fillna(0.0)
    table["dev"] = table["obs"] - table["base"] * span / reference
    out: list[Carrier] = []
    for dimension, part in table.groupby(level="dimension"):
        out.extend(_concentrated(str(dimension), part))
    return tuple(sorted(out, key=lambda c: -c[2]))


def _concentrated(dimension: str, part: pd.DataFrame) -> list[Carrier]:
    net = float(part["dev"].sum())
    volume = float(part["base"].sum())
    if abs(net) < MIN_DEVIATION or volume <= 0:
        return []
    share = np.clip(part["dev"].to_numpy() / net, 0.0, 1.0)
    weight = part["base"].to_numpy() / volume
    values = [str(v) for v in part.index.get_level_values("value")]
    order = np.argsort(-share)
    top = int(order[0])
    if share[top] < MIN_SHARE or share[top] < OVER_VOLUME * weight[top]:
        return []
    picked = [(dimension, values[top], round(float(share[top]), 3))]
    covered = float(share[top])
    for i in order[1:3].tolist():
        if covered >= 0.8 or share[i] < NEXT_SHARE:
            break
        picked.append((dimension, values[i], round(float(share[i]), 3)))
        covered += float(share[i])
    return picked


def drill_down(
    finding: Finding, slices: pd.DataFrame, *, reference: int = REFERENCE_MINUTES
) -> tuple[Carrier, ...]:
    """The slices that carry a finding's deviation (of its lead status), with their share of it.

    `slices` covers the `reference` minutes before `finding.start` up to its end (or to now for
    an open finding); for a finding on a slice, the other dimensions' values are not its own
    cut, so only `auth_code` is looked at (the cause of a slice's denial surge).
    """
    lead = finding.evidence.lead
    if slices.empty:
        return ()
    last = pd.to_datetime(slices["minute"], utc=True).max().to_pydatetime()
    end = finding.end or (last + timedelta(minutes=1))
    found = carriers(slices, lead.status, finding.start, end, reference=reference)
    if finding.slice is not None:
        found = tuple(c for c in found if c[0] == "auth_code")
    return found


def with_carriers(seen: Evidence, found: tuple[Carrier, ...]) -> Evidence:
    """`seen` with a drill-down's carriers: an authorization code that carries the deviation
    becomes its cause (the "código 59" sentence), the rest its `slices`."""
    codes = [c for c in found if c[0] == "auth_code"]
    rest = tuple(c for c in found if c[0] != "auth_code")
    cause = Cause(codes[0][1], codes[0][2]) if codes else seen.cause
    return replace(seen, cause=cause, slices=rest or seen.slices)
