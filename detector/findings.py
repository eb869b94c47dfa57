"""What the detector reports: one `Finding` per episode, opened, updated and resolved."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

Severity = Literal["critical", "warning"]
Kind = Literal["outage", "volume_drop", "surge", "rate", "mix", "feed_silence"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One anomaly episode as the operator sees it; `key` is stable across its updates."""

    key: str
    kind: str
    metric: str
    statuses: tuple[str, ...]
    start: datetime
    end: datetime | None
    detected_at: datetime
    severity: Severity
    score: float
    expected: float
    observed: float
    explanation_pt: str
    explanation_en: str
    resolved: bool = False

    def explanation(self, lang: str = "pt") -> str:
        """The explanation in `lang` (`pt` or `en`)."""
        return self.explanation_en if lang == "en" else self.explanation_pt

    def resolve(self, end: datetime) -> Finding:
        """This episode, closed at `end`."""
        return replace(self, end=end, resolved=True)


@dataclass(frozen=True, slots=True)
class Segment:
    """One metric's stretch out of line inside an episode: a row of `analyze`'s table."""

    episode: str  # the `Finding.key` it belongs to
    kind: str
    metric: str
    status: str
    start: datetime
    end: datetime | None
    detected_at: datetime
    severity: Severity
    score: float
    expected: float  # per minute, at the peak
    observed: float  # per minute, at the peak
    z: float
    explanation_pt: str
    explanation_en: str
