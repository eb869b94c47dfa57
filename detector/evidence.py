"""The evidence of a finding, in numbers: what its lead signal saw, the cause, the merchants.

The cause is the dominant authorization code of a denial surge; the merchants, the few that carry
a surge. The words that tell them are `skills.wording`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

from detector.findings import Cause, Evidence
from detector.signals import Signal

#: Kinds judged as a status's rate against the rest of the traffic: they name a cause and merchants.
SURGES = ("surge", "rate")


def dominant_code(codes: Mapping[str, int]) -> Cause | None:
    """The most frequent non-approval code, when there are enough denials to say."""
    denials = {code: n for code, n in codes.items() if code != "00" and n > 0}
    total = sum(denials.values())
    if total < 5:
        return None
    code = max(denials, key=lambda c: denials[c])
    return Cause(code, denials[code] / total)


def top_merchants(merchants: Mapping[str, int], surplus: float) -> tuple[tuple[str, float], ...]:
    """The few merchants that carry most of the rows of a surge, with their share of it."""
    total = sum(merchants.values())
    if total <= 0 or surplus <= 0:
        return ()
    ranked = sorted(merchants.items(), key=lambda kv: -kv[1])
    picked: list[tuple[str, float]] = []
    covered = 0
    for merchant, count in ranked[:3]:
        share = count / total
        if share < 0.15:
            break
        picked.append((merchant, share))
        covered += count
        if covered >= 0.6 * total:
            break
    return tuple(picked)


def evidence(
    lead: Signal,
    start: datetime,
    statuses: Iterable[str] = (),
    codes: Mapping[str, int] | None = None,
    merchants: Mapping[str, Mapping[str, int]] | None = None,
) -> Evidence:
    """What an episode (or segment) started at `start` and led by `lead` has seen: with the
    authorization `codes` and the status -> merchant -> rows it gathered, and its `statuses`."""
    surge = lead.kind in SURGES
    cause = dominant_code(codes) if surge and lead.status == "denied" and codes else None
    carriers = merchants.get(lead.status) if surge and merchants else None
    return Evidence(
        lead,
        start,
        cause,
        top_merchants(carriers, lead.observed - lead.expected) if carriers else (),
        tuple(status for status in statuses if status != lead.status),
    )
