"""The online engine as the live bot uses it: warm, step minute by minute, watch for silence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from detector import DetectorError
from detector.config import DetectorConfig
from detector.engine import Engine
from detector.findings import Cause, Finding
from skills.wording import explain

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)  # 09:00 in Sao Paulo
SP = DetectorConfig().tz
MIN = timedelta(minutes=1)


def normal(rng: np.random.Generator) -> dict[str, int]:
    return {
        "approved": int(rng.poisson(200)),
        "denied": int(rng.poisson(15)),
        "reversed": int(rng.poisson(2)),
        "failed": int(rng.poisson(0.1)),
    }


def run(engine: Engine, minutes: int, start: datetime, make, **extra):  # type: ignore[no-untyped-def]
    out: list[Finding] = []
    for i in range(minutes):
        out.extend(engine.step(start + i * MIN, make(i), **extra))
    return out


def test_cold_start_with_empty_history_stays_quiet_on_normal_traffic() -> None:
    rng = np.random.default_rng(1)
    engine = Engine()
    engine.warm(pd.DataFrame(columns=["minute", "status", "count"]))
    assert run(engine, 240, T0, lambda i: normal(rng)) == []


def test_outage_opens_one_critical_episode_that_updates_and_resolves() -> None:
    rng = np.random.default_rng(2)
    engine = Engine()
    run(engine, 90, T0, lambda i: normal(rng))
    start = T0 + 90 * MIN

    def outage(i: int) -> dict[str, int]:
        row = normal(rng)
        if i < 10:
            row["approved"] = 0
        return row

    found = run(engine, 30, start, outage)
    keys = {f.key for f in found}
    assert len(keys) == 1, "one episode, not a new anomaly every minute"
    first, last = found[0], found[-1]
    assert first.severity == "critical" and "approved" in first.statuses
    assert any(f.kind == "outage" for f in found)
    assert first.start == start
    assert first.detected_at <= start + 3 * MIN
    assert any(f.evidence.lead.kind == "outage" and f.evidence.lead.expected > 100 for f in found)
    assert any("nenhuma transação approved" in explain(f.evidence, "pt", SP) for f in found)
    assert first.evidence.since == start
    assert "10:30" in explain(first.evidence, "pt", SP)  # local time of the start, Sao Paulo
    assert last.resolved and last.end is not None and last.end <= start + 20 * MIN
    assert 0.0 <= first.score <= 1.0


def test_failed_surge_explains_rate_against_normal_since_local_time() -> None:
    rng = np.random.default_rng(3)
    engine = Engine()
    run(engine, 120, T0, lambda i: normal(rng))

    def surge(i: int) -> dict[str, int]:
        row = normal(rng)
        row["failed"] = 25
        return row

    found = run(engine, 5, T0 + 120 * MIN, surge)
    assert found, "a failed surge of 25/min against 0.1/min must be raised"
    f = found[0]
    assert f.metric == "failed_rate" and f.statuses[0] == "failed"
    assert f.detected_at - f.start <= 2 * MIN
    pt, en = explain(f.evidence, "pt", SP), explain(f.evidence, "en", SP)
    assert pt.startswith("failed em ")
    assert "normal neste horário" in pt and "desde 11:00" in pt
    assert en.startswith("failed at ") and "since 11:00" in en
    assert f.observed > f.expected
    assert (
        f.evidence.lead.status == "failed" and f.evidence.lead.ratio > 10 and f.evidence.lead.z > 9
    )


def test_denied_surge_names_dominant_auth_code_and_merchant() -> None:
    rng = np.random.default_rng(4)
    engine = Engine()
    run(engine, 120, T0, lambda i: normal(rng))

    def surge(i: int) -> dict[str, int]:
        row = normal(rng)
        row["denied"] = 80
        return row

    codes = {"00": 200, "51": 68, "05": 12}
    merchants = {"denied": {"m-77": 60, "m-1": 10, "m-2": 10}}
    found = run(engine, 4, T0 + 120 * MIN, surge, auth_codes=codes, merchants=merchants)
    seen = found[-1].evidence
    assert seen.cause == Cause("51", 68 / 80)
    assert seen.merchants == (("m-77", 0.75),)
    text = explain(seen, "pt", SP)
    assert "85% código 51 — saldo insuficiente" in text
    assert "m-77 (75%)" in text
    assert "insufficient funds" in explain(seen, "en", SP)


def test_quiet_hours_with_sparse_rows_raise_nothing() -> None:
    rng = np.random.default_rng(5)
    engine = Engine()
    run(engine, 60, T0, lambda i: normal(rng))

    def night(i: int) -> dict[str, int]:
        return {
            k: v
            for k, v in {"approved": int(rng.poisson(1)), "denied": int(rng.poisson(0.3))}.items()
            if v
        }

    # an evening decline (-30% in an hour) is not an incident
    fade = run(engine, 60, T0 + 60 * MIN, lambda i: {**normal(rng), "approved": 200 - i})
    assert fade == []
    engine2 = Engine()
    run(engine2, 60, T0, night)
    assert run(engine2, 180, T0 + 60 * MIN, night) == []


def test_feed_silence_watchdog_opens_and_resolves() -> None:
    rng = np.random.default_rng(6)
    engine = Engine(DetectorConfig(silence_minutes=10))
    run(engine, 60, T0, lambda i: normal(rng))
    last = T0 + 59 * MIN
    assert engine.check_silence(last + 5 * MIN, last) == []
    opened = engine.check_silence(last + 12 * MIN, last)
    assert len(opened) == 1 and opened[0].kind == "feed_silence"
    assert opened[0].severity == "critical" and not opened[0].resolved
    assert opened[0].evidence.since == last + MIN and opened[0].evidence.lead.window == 11
    assert explain(opened[0].evidence, "pt", SP).startswith(
        "feed silencioso: nenhuma linha desde 10:00 (11 min), esperado ~"
    )
    assert engine.check_silence(last + 13 * MIN, last) == []  # still open, nothing new
    back = last + 14 * MIN
    engine.step(back, normal(rng))
    closed = engine.check_silence(back + MIN, back)
    assert len(closed) == 1 and closed[0].resolved and closed[0].key == opened[0].key


def test_warm_learns_seasonal_profile_from_history_with_past_incident() -> None:
    rng = np.random.default_rng(7)
    minutes = pd.date_range(T0 - timedelta(days=14), T0 - MIN, freq="min")
    hour = np.asarray(minutes.tz_convert("America/Sao_Paulo").hour)
    level = np.where((hour >= 8) & (hour < 22), 200.0, 20.0)
    approved = rng.poisson(level)
    approved[5000:5060] = 0  # a past outage must not become "normal"
    denied = rng.poisson(level * 0.08)
    history = pd.concat(
        [
            pd.DataFrame({"minute": minutes, "status": "approved", "count": approved}),
            pd.DataFrame({"minute": minutes, "status": "denied", "count": denied}),
        ]
    )
    engine = Engine()
    engine.warm(history)
    expected, _ = engine.expectation(T0)
    assert 150 < expected < 250
    # the first live minute is judged at once against history: no cold start
    found = [f for i in range(3) for f in engine.step(T0 + i * MIN, {"approved": 0, "denied": 16})]
    assert found and any(f.kind == "outage" for f in found)


def test_step_refuses_naive_time() -> None:
    with pytest.raises(DetectorError):
        Engine().step(datetime(2025, 1, 1, 12, 0), {"approved": 1})  # noqa: DTZ001
