"""The detector's knobs, with defaults tuned to the nature of payment incidents."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import tzinfo
from zoneinfo import ZoneInfo


def _sao_paulo() -> tzinfo:
    return ZoneInfo("America/Sao_Paulo")


@dataclass(frozen=True, slots=True)
class DetectorConfig:
    """Thresholds of the online engine; every default has a reason in its comment."""

    tz: tzinfo = field(default_factory=_sao_paulo)  # local days and hours: seasons, episode keys
    volume_status: str = "approved"  # the status whose drop is an outage / volume drop
    # cold start: no judgement before this many minutes were seen (unless history was warmed)
    min_warm_minutes: int = 30
    # a surge needs this z on the 1-, 3- or 5-minute window; a drop the same, negated
    open_z: tuple[float, float, float] = (9.0, 6.5, 6.5)
    keep_z: float = 3.0  # an open episode stays open while a signal is at least this strong
    surge_ratio: float = 2.0  # observed / expected at least this for a surge
    surge_min_events: int = 5  # and at least this many events in the window
    min_base: float = 10.0  # transactions/min below which rates are too noisy to judge
    drop_ratio: float = 0.7  # observed / expected at most this for a volume drop
    drop_min_expected: float = 30.0  # expected events in the window below which drops are noise
    outage_minutes: int = 2  # consecutive minutes of zero approvals that make an outage
    outage_min_expected: float = 12.0  # expected approvals over those minutes
    critical_drop_ratio: float = 0.5  # a drop this deep (or an outage) is critical
    critical_surge_ratio: float = 3.0  # a surge this large with z >= critical_z is critical
    critical_z: float = 10.0
    confirm_minutes: int = 3  # a warning-only episode opens after this many minutes of signal
    resolve_minutes: int = 5  # quiet minutes before an episode resolves
    level_half_life: float = 10.0  # minutes, volume level (cold start, no seasonal history)
    trend_half_life: float = 60.0
    ratio_half_life: float = 60.0  # minutes, today's level vs the seasonal profile
    share_half_life: float = 240.0  # minutes, each status's rate per unit of base volume
    slow_half_life: float = 120.0  # minutes, how slowly a level follows while flagged
    silence_minutes: int = 10  # feed-silence watchdog: no rows for this long ...
    silence_min_expected: float = 30.0  # ... while at least this many rows were expected
    mix: bool = True  # the IsolationForest status-mix model
    mix_min_total: int = 50  # minutes with fewer transactions are too noisy for the mix
    mix_min_rows: int = 360  # normal minutes needed before the mix model is fitted
    mix_refit_minutes: int = 1440
    mix_persist: int = 3  # consecutive unusual minutes before the mix opens an episode
    seed: int = 0
