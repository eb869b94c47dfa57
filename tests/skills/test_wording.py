"""The words of findings (skills/wording.py, skills/findings.py), to the letter, in pt and en."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from detector.findings import Cause, Evidence, Finding
from detector.signals import Signal
from skills.findings import anomaly_record
from skills.formatting import percent
from skills.wording import explain

SP = ZoneInfo("America/Sao_Paulo")
SINCE = datetime(2025, 7, 12, 20, 9, tzinfo=UTC)  # 17:09 in Sao Paulo


def seen(
    kind: str,
    status: str,
    *,
    metric: str = "",
    window: int = 2,
    since: datetime = SINCE,
    observed: float = 0.0,
    expected: float = 0.0,
    sd: float = 0.0,
    z: float = 0.0,
    ratio: float = 0.0,
    total: float = 0.0,
) -> Evidence:
    metric = metric or (status if kind in ("outage", "volume_drop") else f"{status}_rate")
    lead = Signal(
        kind, metric, status, z, ratio, expected, observed, sd, total, since, True, window
    )
    return Evidence(lead, since)


DENIED = replace(
    seen("surge", "denied", observed=31.0, expected=3.5, sd=1.3, z=21.2, ratio=8.7, total=100.0),
    cause=Cause("51", 0.97),
    merchants=(("loja-77", 0.8), ("loja-9", 0.15)),
    also=("approved",),
)


@pytest.mark.parametrize(
    ("evidence", "pt", "en"),
    [
        (
            DENIED,
            "denied em 31% das transações vs 3,5% ± 1,3% normal neste horário (z=21), 8,7× o "
            "normal, desde 17:09; 97% código 51 — saldo insuficiente; concentrado em loja-77 "
            "(80%), loja-9 (15%); também: approved",
            "denied at 31% of transactions vs 3.5% ± 1.3% normal at this hour (z=21), 8.7× "
            "normal, since 17:09; 97% code 51 — insufficient funds; mostly loja-77 (80%), "
            "loja-9 (15%); also: approved",
        ),
        (
            seen(
                "rate",
                "failed",
                observed=2.9,
                expected=0.07,
                sd=0.09,
                z=19.4,
                ratio=42.3,
                total=100,
            ),
            "failed em 2,9% das transações vs 0,07% ± 0,09% normal neste horário (z=19), 42× o "
            "normal, desde 17:09",
            "failed at 2.9% of transactions vs 0.07% ± 0.09% normal at this hour (z=19), 42× "
            "normal, since 17:09",
        ),
        (
            replace(seen("outage", "approved", expected=1234.4), also=("failed", "denied")),
            "nenhuma transação approved há 2+ min (esperado ~1.234/min neste horário) desde "
            "17:09; também: failed, denied",
            "no approved transactions for 2+ min (expected ~1,234/min at this hour) since 17:09; "
            "also: failed, denied",
        ),
        (
            seen(
                "volume_drop", "approved", observed=77.2, expected=114.4, sd=6.1, z=-6.7, ratio=0.67
            ),
            "approved caiu para 77/min vs 114 ± 6 esperado neste horário (−33%, z=-7) desde 17:09",
            "approved down to 77/min vs 114 ± 6 expected at this hour (−33%, z=-7) since 17:09",
        ),
        (
            seen("mix", "denied", observed=0.25, expected=0.031, z=3.0, ratio=8.1),
            "mistura de status incomum: denied em 25% vs 3,1% normal (isolation forest) "
            "desde 17:09",
            "unusual status mix: denied at 25% vs 3.1% normal (isolation forest) since 17:09",
        ),
        (
            seen("feed_silence", "*", metric="feed", window=12, expected=218.3, z=-51.2),
            "feed silencioso: nenhuma linha desde 17:09 (12 min), esperado ~218 transações/min "
            "neste horário",
            "feed silent: no rows since 17:09 (12 min), expected ~218 transactions/min "
            "at this hour",
        ),
        (
            seen(
                "outage",
                "sales",
                metric="sales",
                window=60,
                since=datetime(2025, 1, 1, 18, 0, tzinfo=UTC),
                expected=53.19,
                sd=8.9,
                z=-8.43,
            ),
            "vendas às 15:00: 0 vs 53 esperadas (−100%, z=-8.4)",
            "sales at 15:00: 0 vs 53 expected (−100%, z=-8.4)",
        ),
    ],
)
def test_each_kind_of_finding_reads_the_same_in_both_languages(
    evidence: Evidence, pt: str, en: str
) -> None:
    assert explain(evidence, "pt", SP) == pt
    assert explain(evidence, "en", SP) == en


def test_an_unknown_authorization_code_is_shown_by_its_number() -> None:
    unknown = replace(DENIED, cause=Cause("77", 0.6), merchants=(), also=())
    assert explain(unknown, "pt", SP).endswith("desde 17:09; 60% código 77")
    assert explain(unknown, "en", SP).endswith("since 17:09; 60% code 77")


def test_percentages_of_any_size_keep_their_significant_digits() -> None:
    assert [percent(v, "pt", None) for v in (0.31, 0.035, 0.0007, 1.0)] == [
        "31%",
        "3,5%",
        "0,07%",
        "100%",
    ]
    assert percent(0.035, "en", None) == "3.5%"
    assert percent(0.035, "pt") == "3,5%"  # a fixed number of digits stays the default


def test_a_finding_is_stored_with_its_numbers_and_its_words_in_both_languages() -> None:
    finding = Finding(
        key="20250712-1709-denied_rate",
        kind="surge",
        metric="denied_rate",
        statuses=("denied", "approved"),
        start=SINCE,
        end=None,
        detected_at=SINCE.replace(minute=11),
        severity="critical",
        score=0.88,
        expected=3.5,
        observed=31.0,
        evidence=DENIED,
    )
    now = SINCE.replace(minute=20)
    record = anomaly_record(finding.resolve(now), now, SP, approvals_lost=581.96)
    assert (record.key, record.kind, record.metric, record.statuses) == (
        finding.key,
        "surge",
        "denied_rate",
        ("denied", "approved"),
    )
    assert (record.start, record.end, record.detected_at, record.updated_at) == (
        SINCE,
        now,
        finding.detected_at,
        now,
    )
    assert (record.severity, record.score, record.expected, record.observed) == (
        "critical",
        0.88,
        3.5,
        31.0,
    )
    assert record.resolved and record.approvals_lost == 582.0
    assert record.explanation_pt == explain(DENIED, "pt", SP)
    assert record.explanation_en.startswith("denied at 31% of transactions")
    assert record.explanation_en.endswith("; also: approved")


def test_a_slice_finding_opens_with_its_slice_and_closes_with_its_share_of_volume() -> None:
    down = seen("volume_drop", "approved", observed=0.0, expected=41.0, sd=6.4, z=-6.4)
    stone = replace(down, slice=(("acquirer", "stone"),), share=0.06)
    assert explain(stone, "pt", SP) == (
        "acquirer=stone: approved caiu para 0/min vs 41 ± 6 esperado neste horário "
        "(−100%, z=-6) desde 17:09; 6% do volume"
    )
    assert explain(stone, "en", SP) == (
        "acquirer=stone: approved down to 0/min vs 41 ± 6 expected at this hour "
        "(−100%, z=-6) since 17:09; 6% of volume"
    )


def test_a_total_finding_names_the_slices_that_carry_it() -> None:
    drop = seen("volume_drop", "approved", observed=62.0, expected=100.0, sd=10.0, z=-3.8)
    drilled = replace(drop, slices=(("acquirer", "cielo", 0.92),))
    assert explain(drilled, "pt", SP).endswith("desde 17:09; 92% em acquirer=cielo")
    assert explain(drilled, "en", SP).endswith("since 17:09; 92% in acquirer=cielo")
