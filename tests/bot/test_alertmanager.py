"""Tests of the Alertmanager client against the real binary, and of the real-server fixtures."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import psycopg
import pytest
from aiohttp import web
from sqlalchemy.engine import make_url

from bot.alertmanager import AlertmanagerClient, AlertmanagerError
from tests.realservers import AlertmanagerFactory

TOKEN = "night-owl-webhook-token"
ZERO_TIME = "0001-01-01T00:00:00Z"
WAIT = 15.0  # upper bound for anything Alertmanager does on its 1 s group_wait/group_interval
LABELS = {"alertname": "HighDenialRate", "severity": "critical", "service": "payments"}


@dataclass(frozen=True, slots=True)
class Delivery:
    authorization: str | None
    payload: dict[str, Any]


class WebhookReceiver:
    """Records every POST Alertmanager makes; a wrong or missing token gets 401 like the bot."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.url = ""
        self.deliveries: asyncio.Queue[Delivery] = asyncio.Queue()

    async def handle(self, request: web.Request) -> web.Response:
        authorization = request.headers.get("Authorization")
        await self.deliveries.put(Delivery(authorization, await request.json()))
        if authorization != f"Bearer {self.token}":
            return web.Response(status=401)
        return web.Response(text="ok")

    async def next(self) -> Delivery:
        return await asyncio.wait_for(self.deliveries.get(), timeout=WAIT)


@pytest.fixture
async def receiver() -> AsyncIterator[WebhookReceiver]:
    hook = WebhookReceiver(TOKEN)
    app = web.Application()
    app.router.add_post("/webhooks/alertmanager", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    hook.url = f"http://{host}:{port}/webhooks/alertmanager"
    yield hook
    await runner.cleanup()


@pytest.fixture
async def client(
    alertmanager: AlertmanagerFactory, receiver: WebhookReceiver
) -> AsyncIterator[AlertmanagerClient]:
    server = alertmanager(receiver.url, TOKEN)
    async with AlertmanagerClient(server.url, timeout=5.0) as am:
        yield am


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``check`` every 50 ms for at most WAIT seconds."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def parse_time(value: object) -> datetime:
    assert isinstance(value, str)
    return datetime.fromisoformat(value)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_posted_alert_is_active_and_webhooks_report_firing_then_resolved(
    client: AlertmanagerClient, receiver: WebhookReceiver
) -> None:
    assert await client.ready()
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    annotations = {"summary": "denials above 30% for 5 minutes"}
    await client.post_alerts([{"labels": LABELS, "annotations": annotations, "startsAt": started}])

    [alert] = [a for a in await client.active_alerts() if a["labels"] == LABELS]
    fingerprint = alert["fingerprint"]
    assert isinstance(fingerprint, str)
    assert fingerprint
    assert parse_time(alert["startsAt"]) == started

    firing = await receiver.next()
    assert firing.authorization == f"Bearer {TOKEN}"
    payload = firing.payload
    assert payload["version"] == "4"
    assert payload["status"] == "firing"
    assert payload["receiver"] == "nightshift"
    assert "HighDenialRate" in payload["groupKey"]
    assert payload["groupLabels"] == {"alertname": "HighDenialRate"}
    assert payload["commonLabels"] == LABELS
    assert payload["commonAnnotations"] == annotations
    assert payload["externalURL"].startswith("http://127.0.0.1:")
    [sent] = payload["alerts"]
    assert sent["status"] == "firing"
    assert sent["fingerprint"] == fingerprint
    assert sent["labels"] == LABELS
    assert parse_time(sent["startsAt"]) == started
    assert sent["endsAt"] == ZERO_TIME

    ended = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    await client.post_alerts([{"labels": LABELS, "startsAt": started, "endsAt": ended}])
    assert [a for a in await client.active_alerts() if a["labels"] == LABELS] == []

    resolved = await receiver.next()
    assert resolved.authorization == f"Bearer {TOKEN}"
    assert resolved.payload["status"] == "resolved"
    assert resolved.payload["groupKey"] == payload["groupKey"]
    [sent] = resolved.payload["alerts"]
    assert sent["status"] == "resolved"
    assert sent["fingerprint"] == fingerprint
    assert parse_time(sent["endsAt"]) == ended


async def test_silence_is_listed_mutes_the_alert_and_can_be_expired(
    client: AlertmanagerClient,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # Alertmanager keeps milliseconds
    await client.post_alerts([{"labels": LABELS, "startsAt": now - timedelta(minutes=1)}])

    silence_id = await client.create_silence(
        [{"name": "alertname", "value": "HighDenialRate"}],
        starts=now,
        ends=now + timedelta(hours=1),
        created_by="telegram:42",
        comment="known issue with acquirer",
    )

    [silence] = [s for s in await client.silences() if s["id"] == silence_id]
    assert silence["status"] == {"state": "active"}
    assert silence["createdBy"] == "telegram:42"
    assert silence["comment"] == "known issue with acquirer"
    assert silence["matchers"] == [
        {"name": "alertname", "value": "HighDenialRate", "isRegex": False, "isEqual": True}
    ]
    assert parse_time(silence["endsAt"]) == now + timedelta(hours=1)

    async def muted() -> bool:
        [alert] = [a for a in await client.active_alerts() if a["labels"] == LABELS]
        status = alert["status"]
        assert isinstance(status, dict)
        return bool(status["state"] == "suppressed" and status["silencedBy"] == [silence_id])

    await eventually(muted, "the alert to show the silence")
    # What the skills read: the same, parsed into records in bot/ (no JSON reaches a skill).
    [typed] = [s for s in await client.silence_list() if s.id == silence_id]
    assert (typed.state, typed.matchers, typed.created_by) == (
        "active",
        "alertname=HighDenialRate",
        "telegram:42",
    )
    assert typed.ends_at == now + timedelta(hours=1)
    assert "suppressed" in (await client.alert_states()).values()

    await client.expire_silence(silence_id)
    [silence] = [s for s in await client.silences() if s["id"] == silence_id]
    assert silence["status"] == {"state": "expired"}


async def test_rejected_request_raises_one_line_error_with_the_reason(
    client: AlertmanagerClient,
) -> None:
    now = datetime.now(UTC)
    with pytest.raises(AlertmanagerError, match=r"answered 400 to POST /api/v2/silences") as err:
        await client.create_silence(
            [{"name": "alertname", "value": "X"}],
            starts=now,
            ends=now - timedelta(hours=1),
            created_by="console:ops",
            comment="ends before it starts",
        )
    assert "\n" not in str(err.value)


async def test_unreachable_alertmanager_is_not_ready_and_raises_one_line_error() -> None:
    url = f"http://ops:hunter2@127.0.0.1:{free_port()}"
    async with AlertmanagerClient(url, timeout=2.0) as am:
        assert not await am.ready()
        with pytest.raises(AlertmanagerError, match=r"unreachable on GET /api/v2/alerts") as err:
            await am.active_alerts()
    assert "\n" not in str(err.value)
    assert "hunter2" not in str(err.value)


def answering(handler: Callable[[httpx.Request], httpx.Response]) -> AlertmanagerClient:
    return AlertmanagerClient(
        "http://alertmanager.test:9093", timeout=2.0, transport=httpx.MockTransport(handler)
    )


async def test_timeout_is_reported_with_the_limit() -> None:
    def hang(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with answering(hang) as am:
        with pytest.raises(AlertmanagerError, match=r"timed out after 2s on GET /api/v2/silences"):
            await am.silences()


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(200, text="<html>proxy login</html>"),
        httpx.Response(200, json={"data": []}),
        httpx.Response(200, json=["not an alert"]),
    ],
    ids=["not-json", "not-a-list", "not-objects"],
)
async def test_unexpected_answer_raises_instead_of_returning_garbage(
    response: httpx.Response,
) -> None:
    async with answering(lambda request: response) as am:
        with pytest.raises(AlertmanagerError, match=r"GET /api/v2/alerts"):
            await am.active_alerts()


async def test_base_url_prefix_is_kept_and_datetimes_are_sent_as_utc() -> None:
    seen: list[httpx.Request] = []

    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"silenceID": "abc-123"})

    client = AlertmanagerClient(
        "http://alertmanager.test/am/", transport=httpx.MockTransport(record)
    )
    async with client as am:
        starts = datetime(2025, 1, 15, 0, 30, tzinfo=timezone(timedelta(hours=-3)))
        silence_id = await am.create_silence(
            [{"name": "alertname", "value": "X"}], starts, starts + timedelta(hours=2), "me", "c"
        )
    assert silence_id == "abc-123"
    [request] = seen
    assert request.url.path == "/am/api/v2/silences"
    body = json.loads(request.content)
    assert body["startsAt"] == "2025-01-15T03:30:00Z"
    assert body["endsAt"] == "2025-01-15T05:30:00Z"


def test_postgres_url_reaches_a_live_server(postgres_url: str) -> None:
    url = make_url(postgres_url)
    assert url.drivername == "postgresql+psycopg"
    with psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database,
    ) as conn:
        assert conn.execute("select 1").fetchone() == (1,)


def test_fresh_postgres_url_is_a_new_empty_database(
    postgres_url: str, fresh_postgres_url: str
) -> None:
    url = make_url(fresh_postgres_url)
    assert url.database != make_url(postgres_url).database
    with psycopg.connect(
        host=url.host,
        port=url.port,
        user=url.username,
        password=url.password,
        dbname=url.database,
    ) as conn:
        tables = conn.execute(
            "select count(*) from information_schema.tables where table_schema = 'public'"
        ).fetchone()
        assert tables == (0,)
        conn.execute("create table probe (id int)")
        conn.execute("insert into probe values (1)")
        assert conn.execute("select id from probe").fetchall() == [(1,)]
