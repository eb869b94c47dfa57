"""The HTTP intake through the real ASGI app: auth, limits, validation, idempotency, 503."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import App, Core, build_core
from bot.settings import Secret, Settings
from storage.store import Store, open_store
from tests.conftest import DATA
from tests.fakes.clock import FixedClock
from tests.payloads import alert, body, webhook

TOKEN = "s3cret-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))


def _client(core: Core) -> httpx.AsyncClient:
    app = App(core, console=False).asgi()
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://nightshift")


@pytest.fixture
def secured(store: Store, clock: FixedClock) -> Core:
    return build_core(Settings(webhook_token=Secret(TOKEN), max_body_bytes=64 * 1024), clock, store)


@pytest.fixture
async def client(secured: Core) -> AsyncIterator[httpx.AsyncClient]:
    async with _client(secured) as c:
        yield c


async def test_webhook_is_stored_once_and_resolves(
    client: httpx.AsyncClient, secured: Core
) -> None:
    first = await client.post("/webhooks/alertmanager", content=body(webhook()), headers=AUTH)
    assert first.status_code == 200
    assert first.json()["changed"] == 1
    again = await client.post("/webhooks/alertmanager", content=body(webhook()), headers=AUTH)
    assert again.json()["changed"] == 0
    [stored] = secured.store.alerts()
    assert (stored.alertname, stored.severity, stored.ends_at) == (
        "PaymentsApiDown",
        "critical",
        None,
    )
    resolved = webhook(alert(status="resolved", ends_at="2025-07-14T15:10:00Z"))
    answer = await client.post("/webhooks/alertmanager", content=body(resolved), headers=AUTH)
    assert answer.json()["changed"] == 1
    assert secured.store.alerts() == []


@pytest.mark.parametrize(
    "headers", [{}, {"authorization": "Bearer wrong"}, {"authorization": f"Basic {TOKEN}"}]
)
async def test_bad_or_missing_token_is_401_and_stores_nothing(
    client: httpx.AsyncClient, secured: Core, headers: dict[str, str]
) -> None:
    answer = await client.post("/webhooks/alertmanager", content=body(webhook()), headers=headers)
    assert answer.status_code == 401
    rows = await client.post("/transactions", json=[], headers=headers)
    assert rows.status_code == 401
    assert secured.store.alerts(active_only=False) == []


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda p: p.pop("version"), "version"),
        (lambda p: p.update(version="3"), "version"),
        (lambda p: p["alerts"][0].pop("fingerprint"), "alerts.0.fingerprint"),
        (lambda p: p["alerts"][0].update(status="burning"), "alerts.0.status"),
        (lambda p: p["alerts"][0].update(startsAt="yesterday"), "alerts.0.startsAt"),
        (lambda p: p["alerts"][0]["labels"].update(team=7), "alerts.0.labels.team"),
        (lambda p: p["alerts"][0]["labels"].update(severity="s" * 33), "alerts.0.labels.severity"),
        (
            lambda p: p["alerts"][0]["labels"].update(alertname="A" * 257),
            "alerts.0.labels.alertname",
        ),
        (lambda p: p.update(receiver="r" * 257), "receiver"),
    ],
)
async def test_malformed_webhook_is_422_naming_the_field(
    client: httpx.AsyncClient, secured: Core, mutate: object, field: str
) -> None:
    payload = webhook()
    mutate(payload)  # type: ignore[operator]
    answer = await client.post("/webhooks/alertmanager", content=body(payload), headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith(field)
    assert secured.store.alerts(active_only=False) == []


async def test_not_json_is_422(client: httpx.AsyncClient) -> None:
    answer = await client.post("/webhooks/alertmanager", content=b"{nope", headers=AUTH)
    assert answer.status_code == 422


@pytest.mark.parametrize("route", ["/webhooks/alertmanager", "/transactions"])
async def test_json_nested_too_deeply_is_422_on_every_route(
    client: httpx.AsyncClient, route: str
) -> None:
    answer = await client.post(route, content=b"[" * 10_000, headers=AUTH)
    assert answer.status_code == 422
    assert "nested too deeply" in answer.json()["detail"] or "recursion" in answer.json()["detail"]


async def test_body_over_the_limit_is_413(client: httpx.AsyncClient, secured: Core) -> None:
    big = webhook(*(alert(fingerprint=f"{i:016x}") for i in range(400)))
    answer = await client.post("/webhooks/alertmanager", content=body(big), headers=AUTH)
    assert answer.status_code == 413
    assert secured.store.alerts(active_only=False) == []


async def test_cloudwalk_csv_and_json_twice_change_no_count(
    client: httpx.AsyncClient, secured: Core
) -> None:
    csv_text = (DATA / "transactions_1.csv").read_text()
    lines = csv_text.splitlines()
    head, rows = lines[0], lines[1:1001]
    csv_body = "\n".join([head, *rows]) + "\n"
    headers = {**AUTH, "content-type": "text/csv"}
    first = await client.post("/transactions", content=csv_body, headers=headers)
    assert first.status_code == 200, first.text
    assert first.json()["accepted"] == 1000
    totals = secured.store.totals_by_status(*EVERYTHING)
    await client.post("/transactions", content=csv_body, headers=headers)
    as_json = [{"time": t, "status": s, "f0_": int(c)} for t, s, c in (r.split(",") for r in rows)]
    second = await client.post("/transactions", json=as_json, headers=AUTH)
    assert second.json()["accepted"] == 1000
    assert secured.store.totals_by_status(*EVERYTHING) == totals


async def test_bad_rows_are_422_listing_rows_and_nothing_is_stored(
    client: httpx.AsyncClient, secured: Core
) -> None:
    rows = [
        {"timestamp": "2025-07-14T03:00:00Z", "status": "approved", "count": 5},
        {"timestamp": "2025-07-14T03:01:00Z", "status": "approved", "count": -1},
        {"timestamp": "not a time", "status": "approved", "count": 1},
        {"timestamp": "2025-07-14T03:02:00Z", "count": 1},
    ]
    answer = await client.post("/transactions", json=rows, headers=AUTH)
    assert answer.status_code == 422
    assert [e["row"] for e in answer.json()["errors"]] == [2, 3, 4]
    assert "status is missing" in answer.json()["errors"][2]["reason"]
    assert secured.store.totals_by_status(*EVERYTHING) == {}


async def test_csv_that_csv_cannot_read_is_422_naming_the_line(
    client: httpx.AsyncClient, secured: Core
) -> None:
    csv_body = (
        "timestamp,status,count\n2025-07-14T03:00:00Z,approved,5\n2025-07-14T03:01:00Z,a\rx,1\n"
    )
    answer = await client.post(
        "/transactions", content=csv_body, headers={**AUTH, "content-type": "text/csv"}
    )
    assert answer.status_code == 422
    assert answer.json()["detail"].startswith("row 3: not readable as CSV")
    assert secured.store.totals_by_status(*EVERYTHING) == {}


async def test_auth_code_rows_through_the_feed(client: httpx.AsyncClient, secured: Core) -> None:
    csv_body = "timestamp,auth_code,count\n2025-07-12 17:10:00,51,40\n2025-07-12 17:10:00,00,90\n"
    answer = await client.post(
        "/transactions", content=csv_body, headers={**AUTH, "content-type": "text/csv"}
    )
    assert answer.json()["accepted"] == 2
    frame = secured.store.auth_codes_frame(*EVERYTHING)
    assert sorted(frame["auth_code"]) == ["00", "51"]


async def test_store_down_is_503(clock: FixedClock) -> None:
    dead = open_store("postgresql+psycopg://nobody@127.0.0.1:1/none", migrate_schema=False)
    core = build_core(Settings(), clock, dead)
    async with _client(core) as c:
        hook = await c.post("/webhooks/alertmanager", content=body(webhook()))
        feed = await c.post("/transactions", json=[{"time": "00h 01", "status": "a", "count": 1}])
        health = await c.get("/healthz")
    assert (hook.status_code, feed.status_code, health.status_code) == (503, 503, 503)


async def test_healthz_and_metrics(client: httpx.AsyncClient) -> None:
    await client.post("/webhooks/alertmanager", content=body(webhook()), headers=AUTH)
    health = await client.get("/healthz")
    assert health.status_code == 200
    assert health.json()["store"]["ok"] is True
    text = (await client.get("/metrics")).text
    assert 'nightshift_webhooks_total{outcome="stored"} 1' in text
    assert "nightshift_store_up 1" in text


_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**13),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["2025-07-14T03:00:00Z", "00h 05", "approved", "51"]),
)
_row = st.dictionaries(
    st.sampled_from(
        [
            "time",
            "timestamp",
            "status",
            "count",
            "f0_",
            "id",
            "amount",
            "merchant_id",
            "auth_code",
            "extra",
        ]
    ),
    _value,
    max_size=6,
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(rows=st.one_of(st.lists(_row, max_size=6), _row, st.text(max_size=40)))
async def test_fuzzed_feed_never_500_and_never_half_stored(tmp_path: Path, rows: object) -> None:
    store = open_store("sqlite://")
    core = build_core(Settings(), FixedClock(), store)
    before = store.totals_by_status(*EVERYTHING)
    async with _client(core) as c:
        content = rows if isinstance(rows, str) else json.dumps(rows)
        answer = await c.post("/transactions", content=content)
        hook = await c.post("/webhooks/alertmanager", content=content)
    after = store.totals_by_status(*EVERYTHING)
    store.close()
    assert answer.status_code in (200, 422), answer.text
    assert hook.status_code == 422
    if answer.status_code == 422:
        assert after == before


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    alerts=st.lists(
        st.fixed_dictionaries(
            {
                "status": st.sampled_from(["firing", "resolved", "x"]),
                "labels": st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
                "startsAt": st.sampled_from(["2025-07-14T03:00:00Z", "0001-01-01T00:00:00Z", "x"]),
                "fingerprint": st.text(max_size=70),
            }
        ),
        max_size=4,
    )
)
async def test_fuzzed_webhook_never_500(tmp_path: Path, alerts: list[dict[str, object]]) -> None:
    store = open_store("sqlite://")
    core = build_core(Settings(), FixedClock(), store)
    payload = {
        "version": "4",
        "groupKey": "k",
        "status": "firing",
        "receiver": "r",
        "alerts": alerts,
    }
    async with _client(core) as c:
        answer = await c.post("/webhooks/alertmanager", content=json.dumps(payload))
    stored = store.alerts(active_only=False)
    store.close()
    assert answer.status_code in (200, 422), answer.text
    if answer.status_code == 422:
        assert stored == []


def test_firing_alert_keeps_no_end_time() -> None:
    from bot.http import parse_alertmanager

    group = parse_alertmanager(body(webhook()))
    assert group.alerts[0].ends_at is None
    assert group.alerts[0].starts_at == datetime(2025, 7, 14, 14, 52, tzinfo=UTC)
    assert group.alerts[0].starts_at + timedelta(minutes=8) == datetime(
        2025, 7, 14, 15, 0, tzinfo=UTC
    )
