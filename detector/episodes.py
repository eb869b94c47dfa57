"""Episodes: signals folded into findings that open once, stay open while active, then resolve.

`Spell` is the one rule both detectors follow: an episode opens on a strong enough signal, every
active step keeps it open, and it resolves after `resolve` quiet steps in a row. The feed
(`Episodes.fold`, steps are minutes) adds severity, the statuses involved and per-metric segments;
`detect` (`onsets`, steps are rows) labels only the step each episode opened at.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

import numpy as np

from detector.config import DetectorConfig
from detector.evidence import evidence
from detector.findings import Finding, Segment, Severity
from detector.signals import Signal, rank, score_of, strongest

MINUTE = timedelta(minutes=1)
Step = TypeVar("Step", datetime, int)


@dataclass(slots=True)
class Spell(Generic[Step]):
    """How long an open episode has been quiet since it was last active."""

    last_active: Step
    quiet: int = 0

    def stir(self, at: Step) -> None:
        """Active at `at`: the quiet count starts again."""
        self.last_active = at
        self.quiet = 0

    def rest(self, steps: int, resolve: int) -> bool:
        """`steps` more quiet steps; True once the episode has been quiet `resolve` steps."""
        self.quiet += steps
        return self.quiet >= resolve


def onsets(opening: np.ndarray, active: np.ndarray, resolve: int) -> np.ndarray:
    """Boolean mask of the rows where an episode opens: a row `opening` while none is open.

    An open episode stays open through rows that are `active` (or opening) and resolves after
    `resolve` quiet rows in a row, exactly as a feed episode does minute by minute. Only the
    active rows are visited, so a long quiet series costs nothing here.
    """
    out = np.zeros(len(opening), dtype=np.bool_)
    spell: Spell[int] | None = None
    for i in np.flatnonzero(opening | active).tolist():
        if spell is not None and spell.rest(i - spell.last_active - 1, resolve):
            spell = None
        if spell is None:
            if opening[i]:
                spell = Spell(i)
                out[i] = True
            continue
        spell.stir(i)
    return out


@dataclass(slots=True)
class OpenSegment:
    """A metric's open segment (mutable working state)."""

    peak: Signal
    start: datetime
    detected_at: datetime
    spell: Spell[datetime]
    critical: bool = False
    episode: str = ""
    codes: Counter[str] = field(default_factory=Counter)
    merchants: dict[str, Counter[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.critical = self.peak.critical


@dataclass(slots=True)
class Episode:
    """An open episode while it lasts (mutable working state, never handed out)."""

    key: str
    kind: str
    metric: str
    start: datetime
    detected_at: datetime
    severity: Severity
    score: float
    lead: Signal
    statuses: list[str]
    spell: Spell[datetime]
    codes: Counter[str] = field(default_factory=Counter)
    merchants: dict[str, Counter[str]] = field(default_factory=dict)
    emitted: tuple[object, ...] = ()


def key_of(start: datetime, cfg: DetectorConfig, what: str) -> str:
    """An episode's stable key: its local start minute and what it is about."""
    return f"{start.astimezone(cfg.tz).strftime('%Y%m%d-%H%M')}-{what}"


class Episodes:
    """The feed's episodes: each minute's signals folded into one open episode and its segments."""

    def __init__(self, config: DetectorConfig) -> None:
        self.config = config
        self.current: Episode | None = None
        self.pending = 0
        self.segments: dict[str, OpenSegment] = {}
        self.log: list[Segment] = []

    def clear(self) -> None:
        """Forget what replaying history opened (the live minutes start clean)."""
        self.current = None
        self.segments.clear()
        self.log.clear()

    def fold(
        self,
        minute: datetime,
        signals: list[Signal],
        flagged: set[str],
        auth_codes: Mapping[str, int] | None,
        merchants: Mapping[str, Mapping[str, int]] | None,
    ) -> list[Finding]:
        """Fold one minute's signals into the open episode; return the findings that changed."""
        cfg = self.config
        out: list[Finding] = []
        ep = self.current
        self._track(minute, signals, flagged)
        if ep is None:
            if not signals:
                self.pending = 0
                return out
            critical = any(s.critical for s in signals)
            self.pending += 1
            if not critical and self.pending < cfg.confirm_minutes:
                return out  # a warning must hold a few minutes: no crying wolf at 3 a.m.
            lead = strongest(signals)
            start = min(s.since for s in signals)
            self.pending = 0
            ep = Episode(
                key=key_of(start, cfg, lead.metric),
                kind=lead.kind,
                metric=lead.metric,
                start=start,
                detected_at=minute + MINUTE,
                severity="critical" if critical else "warning",
                score=max(score_of(s.z) for s in signals),
                lead=lead,
                statuses=[],
                spell=Spell(minute),
            )
            self.current = ep
        active = bool(signals) or bool(flagged & set(ep.statuses))
        if signals:
            lead = strongest(signals)
            if rank(lead) >= rank(ep.lead) or ep.lead.metric == lead.metric:
                ep.lead = lead
                ep.kind = lead.kind
                ep.metric = lead.metric
            for s in sorted(signals, key=lambda s: -abs(s.z)):
                if s.status not in ep.statuses:
                    ep.statuses.append(s.status)
            if any(s.critical for s in signals):
                ep.severity = "critical"
            ep.score = max(ep.score, *(score_of(s.z) for s in signals))
        if active:
            ep.spell.stir(minute)
            if auth_codes:
                ep.codes.update({k: v for k, v in auth_codes.items() if v > 0})
            if merchants:
                for status in ep.statuses:
                    if status in merchants:
                        ep.merchants.setdefault(status, Counter()).update(merchants[status])
        for seg in self.segments.values():
            seg.episode = ep.key
            seg.codes = ep.codes
            seg.merchants = ep.merchants
        if not active and ep.spell.rest(1, cfg.resolve_minutes):
            self.current = None
            out.append(self.finding(ep).resolve(ep.spell.last_active + MINUTE))
            return out
        mark = (ep.severity, tuple(ep.statuses), ep.metric, round(ep.score, 1))
        if mark != ep.emitted:
            ep.emitted = mark
            out.append(self.finding(ep))
        return out

    def _track(self, minute: datetime, signals: list[Signal], flagged: set[str]) -> None:
        for sig in signals:
            seg = self.segments.get(sig.metric)
            if seg is None:
                self.segments[sig.metric] = OpenSegment(
                    sig, sig.since, minute + MINUTE, Spell(minute)
                )
                continue
            if rank(sig) >= rank(seg.peak):
                seg.peak = sig
            seg.critical = seg.critical or sig.critical
        signalled = {s.metric for s in signals}
        for metric, seg in list(self.segments.items()):
            if metric in signalled or seg.peak.status in flagged:
                seg.spell.stir(minute)
            elif seg.spell.rest(1, self.config.resolve_minutes):
                del self.segments[metric]
                self.log.append(self.segment(seg, seg.spell.last_active + MINUTE))

    def segment(self, seg: OpenSegment, end: datetime | None) -> Segment:
        """A segment as `analyze` shows it; `end` None while it is still open."""
        s = seg.peak
        return Segment(
            episode=seg.episode,
            kind=s.kind,
            metric=s.metric,
            status=s.status,
            start=seg.start,
            end=end,
            detected_at=seg.detected_at,
            severity="critical" if seg.critical else "warning",
            score=score_of(s.z),
            expected=round(s.expected, 4),
            observed=round(s.observed, 4),
            z=round(s.z, 2),
            evidence=evidence(s, seg.start, codes=seg.codes, merchants=seg.merchants),
        )

    def flush(self) -> list[Segment]:
        """Closed segments since the last call, then the still-open ones (offline use)."""
        out = self.log + [self.segment(seg, None) for seg in self.segments.values()]
        self.log = []
        return out

    def finding(self, ep: Episode) -> Finding:
        """An episode as the operator sees it."""
        return Finding(
            key=ep.key,
            kind=ep.kind,
            metric=ep.metric,
            statuses=tuple(ep.statuses),
            start=ep.start,
            end=None,
            detected_at=ep.detected_at,
            severity=ep.severity,
            score=ep.score,
            expected=round(ep.lead.expected, 4),
            observed=round(ep.lead.observed, 4),
            evidence=evidence(ep.lead, ep.start, ep.statuses, ep.codes, ep.merchants),
        )
