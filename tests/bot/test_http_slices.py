"""`POST /transactions` with dimensioned rows, through the real ASGI app."""

from __future__ import annotations

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
