"""`POST /transactions` with dimensioned rows, through the real ASGI app."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import httpx
import pytest

from bot.app import App, Core, build_core
from bot.settings import Secret, Settings
from storage.store import Store
from tests.fakes.clock import FixedClock

TOKEN = "s3cret-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
CSV = {**AUTH, "content-type": "text/csv"}
EVERYTHING = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
HEAD = "timestamp,status,acquirer,count\n"
CIELO = "2025-07-14T03:00:00Z,approved,cielo,100\n"
STONE = "2025-07-14T03:00:00Z,approved,stone,7\n"


@pytest.fixture
def secured(store: Store, clock: FixedClock) -> Core:
    return build_core(Settings(webhook_token=Secret(TOKEN)), clock, store)


@pytest.fixture
async def client(secured: Core) -> AsyncIterator[httpx.AsyncClient]:
    app = App(secured, console=False).asgi()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nightshift") as c:
        yield c


async def test_two_acquirers_of_one_minute_make_107(
    client: httpx.AsyncClient, secured: Core
) -> None:
    answer = await client.post("/transactions", content=HEAD + CIELO + STONE, headers=CSV)
    assert answer.status_code == 200, answer.text
    assert secured.store.totals_by_status(*EVERYTHING) == {"approved": 107}


async def test_one_minute_in_two_posts_and_a_resend_still_make_107(
    client: httpx.AsyncClient, secured: Core
) -> None:
    for part in (CIELO, STONE, CIELO + STONE):
        answer = await client.post("/transactions", content=HEAD + part, headers=CSV)
        assert answer.status_code == 200, answer.text
    assert secured.store.totals_by_status(*EVERYTHING) == {"approved": 107}
    frame = secured.store.slice_frame(*EVERYTHING)
    assert sorted(zip(frame["value"], frame["count"], strict=True)) == [
        ("cielo", 100),
        ("stone", 7),
    ]


async def test_a_bad_dimension_is_422_naming_it_and_nothing_is_stored(
    client: httpx.AsyncClient, secured: Core
) -> None:
    rows = [
        {
            "timestamp": "2025-07-14T03:00:00Z",
            "status": "approved",
            "acquirer": "cielo",
            "count": 1,
        },
        {"timestamp": "2025-07-14T03:00:00Z", "status": "approved", "acquirer": [1], "count": 1},
    ]
    answer = await client.post("/transactions", json=rows, headers=AUTH)
    assert answer.status_code == 422
    assert answer.json()["errors"] == [{"row": 2, "reason": "acquirer must be text"}]
    bad_name = [{"timestamp": "2025-07-14T03:00:00Z", "status": "a", "Card Brand": "x", "count": 1}]
    answer = await client.post("/transactions", json=bad_name, headers=AUTH)
    assert answer.status_code == 422
    assert "'Card Brand' is not a dimension name" in answer.json()["errors"][0]["reason"]
    assert secured.store.totals_by_status(*EVERYTHING) == {}


async def test_the_dimensions_setting_reaches_the_intake(store: Store, clock: FixedClock) -> None:
    core = build_core(Settings(dimensions=(), slice_top=1), clock, store)
    app = App(core, console=False).asgi()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://nightshift") as c:
        answer = await c.post("/transactions", content=HEAD + CIELO + STONE, headers=CSV)
    assert answer.status_code == 200, answer.text
    assert store.totals_by_status(*EVERYTHING) == {"approved": 107}
    assert store.slice_frame(*EVERYTHING).empty


def test_replay_sends_each_combo_with_its_columns() -> None:
    from datetime import date

    from bot.replay import _minutes
    from storage.parsing import parse_csv, parse_json

    text = "timestamp,status,acquirer,note,count\n" + "".join(
        f"2025-07-14T03:00:00Z,approved,{a},{n},{c}\n"
        for a, n, c in (("cielo", "x", 100), ("stone", "x", 4), ("stone", "y", 3))
    )
    batch = parse_csv(text, default_date=date(2025, 7, 14), tz=UTC, dimensions=("acquirer",))
    [rows] = _minutes(batch).values()
    again = parse_json(
        json.dumps(rows), default_date=date(2025, 7, 14), tz=UTC, dimensions=("acquirer",)
    )
    assert again.count_tuples() == batch.count_tuples() == [(1752462000, "approved", 107)]
    assert again.slices_frame().equals(batch.slices_frame())


async def test_half_a_character_is_422_naming_the_row_not_a_500(
    client: httpx.AsyncClient, secured: Core
) -> None:
    """JSON can spell a lone surrogate ("\\ud800"), which no UTF-8 encodes: a kept value, a
    status or an event id holding one is refused; in a dropped column it is told apart."""
    row = '{"timestamp": "2025-07-14T03:00:00Z", "status": %s, "acquirer": %s, "count": 1}'
    for status, acquirer, reason in (
        ('"approved"', '"cielo\\ud800"', "acquirer holds half of a character"),
        ('"appr\\udfffoved"', '"cielo"', "is not a status name"),
    ):
        body = f"[{row % (status, acquirer)}]"
        answer = await client.post(
            "/transactions", content=body, headers={**AUTH, "content-type": "application/json"}
        )
        assert answer.status_code == 422, answer.text
        assert answer.json()["errors"][0]["row"] == 1
        assert reason in answer.json()["errors"][0]["reason"]
    event = '[{"id": "tx\\ud800", "timestamp": "2025-07-14T03:00:00Z", "status": "approved"}]'
    answer = await client.post(
        "/transactions", content=event, headers={**AUTH, "content-type": "application/json"}
    )
    assert answer.status_code == 422, answer.text
    assert "id holds half of a character" in answer.json()["detail"]
    assert secured.store.totals_by_status(*EVERYTHING) == {}
