"""Two `serve` replicas on one PostgreSQL: one leader polls Telegram and runs the jobs; when it
stops, the other takes over; the outbox sends each notification once."""

from __future__ import annotations

import asyncio
import socket
from datetime import UTC, datetime

from sqlalchemy import func, select

from bot.app import App, build_core
from bot.delivery import LEASE, instance_id
from bot.settings import Secret, Settings
from storage import schema
from storage.records import AlertGroup, AlertIn
from storage.store import open_store
from tests.fakes.clock import FixedClock
from tests.fakes.telegram_api import FakeTelegram


async def _until(check: object, within: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not check():  # type: ignore[operator]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("not reached in time")
        await asyncio.sleep(0.05)


async def test_one_leader_polls_and_the_other_takes_over(fresh_postgres_url: str) -> None:
    async with FakeTelegram() as tg:
        settings = Settings(
            database_url=fresh_postgres_url,
            telegram_bot_token=Secret(tg.token),
            telegram_api_url=tg.api_url,
            telegram_chat_ids=("-100",),
            leader_lease_seconds=3,
        )
        apps = [App(build_core(settings)) for _ in range(2)]
        for app in apps:
            await app.start()
        try:
            states = [a.telegram.state() for a in apps if a.telegram is not None]
            assert sorted(states) == ["on (polling)", "on (sending only)"]
            leader = next(a for a in apps if a.telegram and a.telegram.state() == "on (polling)")
            other = next(a for a in apps if a is not leader)
            await leader.stop()
            await _until(
                lambda: other.telegram is not None and other.telegram.state() == "on (polling)"
            )
            assert await other.leader.is_leader()
        finally:
            for app in apps:
                await app.stop()
                app.core.close()


async def test_two_workers_on_one_outbox_send_each_notification_once(
    fresh_postgres_url: str,
) -> None:
    from bot.delivery import DeliveryWorker, Renderer
    from bot.metrics import Metrics
    from bot.routing import Routes
    from skills.core import Reply

    clock = FixedClock()
    sent: list[str] = []

    class Recording:
        async def post(self, target: str, reply: Reply) -> str:
            await asyncio.sleep(0.01)  # let the other worker try to claim meanwhile
            sent.append(reply.title)
            return str(len(sent))

        async def edit(self, target: str, ref: str, reply: Reply) -> None:
            pass  # a roll-up is edited as more incidents join it

        async def thread(self, target: str, ref: str, reply: Reply) -> str:
            raise AssertionError("no threads here")

    stores = [open_store(fresh_postgres_url) for _ in range(2)]
    for n in range(40):  # forty incidents, each of its own alert, to be told once each
        alert = AlertIn(
            f"fp{n}", "firing", {"alertname": f"A{n}", "severity": "critical"}, {}, None, None
        )
        stores[0].apply_alert_group(AlertGroup("r", "firing", f"g{n}", (alert,)), clock.now())
    for n in range(200):
        stores[0].enqueue(
            subject_kind="reply",
            subject=f"r{n}",
            event="note",
            severity="info",
            destinations=["console"],
            now=clock.now(),
            body={"title": f"r{n}"},
        )
    workers = [
        DeliveryWorker(
            store=s,
            clock=clock,
            notifiers={"console": Recording()},
            render=Renderer(s, "pt", UTC),
            metrics=Metrics(),
            routes=Routes.default(None, [], console=True),
            interval=lambda _d: 0.0,
        )
        for s in stores
    ]
    try:
        for _ in range(8):
            await asyncio.gather(*(w.run_once() for w in workers))
            clock.advance(minutes=2)  # past the flood's minute: every incident gets a message
        assert sorted(t for t in sent if t.startswith("r")) == sorted(f"r{n}" for n in range(200))
        assert stores[1].outbox_counts() == {"sent": 200}
        own = [t for t in sent if t.startswith("🔴 INCIDENTE")]
        assert len(own) == len(set(own))  # no incident told twice
        with stores[1].engine.connect() as conn:
            cards = schema.cards
            rolled = conn.execute(
                select(func.count()).where(cards.c.rollup_id.is_not(None))
            ).scalar_one()
            due = conn.execute(select(func.count()).where(cards.c.wanted > cards.c.shown))
            assert due.scalar_one() == 0
        assert len(own) + rolled == 40  # every incident told: on its own or in a roll-up
    finally:
        for s in stores:
            s.close()


async def test_a_restarted_instance_lets_go_of_its_own_leases_not_anothers(
    fresh_postgres_url: str,
) -> None:
    """`serve` killed with -9 mid-send leaves its cards leased for LEASE (2 min): started again
    as the same instance (host and port), it posts them at once; another instance's lease is
    left to run out, as that one may still be sending."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    async with FakeTelegram() as tg:
        settings = Settings(
            database_url=fresh_postgres_url,
            port=port,
            telegram_bot_token=Secret(tg.token),
            telegram_api_url=tg.api_url,
            telegram_chat_ids=("-100", "-200"),
        )
        store = open_store(fresh_postgres_url)
        now = datetime.now(UTC)
        store.open_incident("Killed mid-send", "op", now, route=["telegram:-100"])
        store.open_incident("Another replica sends", "op", now, route=["telegram:-200"])
        assert store.claim_cards("telegram:-100", now, LEASE, holder=instance_id(port))
        assert store.claim_cards("telegram:-200", now, LEASE, holder=f"elsewhere:{port}")
        app = App(build_core(settings))
        await app.start()
        try:
            await _until(lambda: any("Killed mid-send" in m.first_text for m in tg.posts(-100)))
            await asyncio.sleep(1.0)
            # `serve` runs on the wall clock: started after 08:00 it also sends a late handoff
            scheduled = ("🌙", "🌅")
            assert [m for m in tg.posts(-200) if not m.first_text.startswith(scheduled)] == []
        finally:
            await app.stop()
            app.core.close()
            store.close()
