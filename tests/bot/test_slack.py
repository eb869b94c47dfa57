"""The Slack adapter, driven through the real slack-bolt/slack_sdk against the fake Slack API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
from starlette.applications import Starlette

from bot.slack import SlackAdapter, render_blocks
from skills.core import Button, Image, Invocation, ProgressSink, Reply, Section
from tests.fakes.slack_api import FakeSlack, signed_headers

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
OPERATOR = "U0OPS"
STRANGER = "U0EVIL"
CHANNEL = "C0OPS"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(300)
TRICKY = "a <b> & c_d *e* ~f~ `g`"


class Skills:
    """A stand-in for the dispatcher: one allowed user, a refusal, a few canned replies."""

    def __init__(self) -> None:
        self.seen: list[Invocation] = []

    async def handle(self, inv: Invocation, progress: ProgressSink | None = None) -> Reply:
        self.seen.append(inv)
        if inv.actor != f"slack:{OPERATOR}":
            return Reply(title=f"⛔ {inv.actor} não tem acesso.", outcome="refused")
        word = (inv.text.split() or [""])[0]
        if word == "status":
            return Reply(
                title="Status",
                sections=(Section("Feed", ("ok: 120 tx/min",)),),
                buttons=(Button("Alertas", "alertas"),),
            )
        if word == "grafico":
            return Reply(title="Gráfico 6h", image=Image(PNG, "chart.png", "approved 6h"))
        if word == "eco":
            return Reply(
                title=TRICKY,
                sections=(Section(TRICKY, (TRICKY,)), Section("", (TRICKY,), monospace=True)),
                buttons=(Button(TRICKY, "status"),),
            )
        if word == "longo":
            lines = tuple(f"linha {i:04d}" for i in range(120))
            return Reply(
                title="Longo",
                sections=tuple(Section(f"parte {i}", lines[i::60][:2]) for i in range(60)),
            )
        if word == "runbook" and progress is not None:
            await progress.update(Reply(title="passo 1/2"))
            await progress.update(Reply(title="passo 2/2"))
            return Reply(title="runbook ok")
        return Reply(title=f"eco: {inv.text}")


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def skills() -> Skills:
    return Skills()


@pytest.fixture
async def http_adapter(slack: FakeSlack, skills: Skills) -> AsyncIterator[SlackAdapter]:
    adapter = SlackAdapter(slack.bot_token, SECRET, None, slack.api_url, CHANNEL, skills.handle)
    await adapter.start()
    yield adapter
    await adapter.stop()


@pytest.fixture
async def http(http_adapter: SlackAdapter) -> AsyncIterator[httpx.AsyncClient]:
    app = Starlette(routes=http_adapter.routes())
    transport = httpx.ASGITransport(app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bot") as client:
        yield client


async def post_command(
    http: httpx.AsyncClient,
    slack: FakeSlack,
    text: str,
    *,
    user: str = OPERATOR,
    secret: str = SECRET,
    age: int = 0,
) -> httpx.Response:
    body = urlencode(slack.slash_command_form(text, user_id=user, channel_id=CHANNEL))
    headers = signed_headers(body, secret, int(time.time()) - age)
    return await http.post("/slack/events", content=body, headers=headers)


async def test_signed_slash_command_is_answered(
    http: httpx.AsyncClient, slack: FakeSlack, skills: Skills
) -> None:
    response = await post_command(http, slack, "status")
    assert response.status_code == 200
    (message,) = await slack.wait_for_messages(CHANNEL, within=2)
    assert message.block_texts()[:2] == ["Status", "Feed\nok: 120 tx/min"]
    assert message.text == "Status\nFeed\nok: 120 tx/min"
    assert message.buttons()[0]["value"] == "alertas"
    assert skills.seen == [Invocation("slack", OPERATOR, "status", CHANNEL, "ana")]


@pytest.mark.parametrize(("secret", "age"), [("wrong-secret", 0), (SECRET, 6 * 60)])
async def test_bad_signature_or_old_timestamp_is_401_and_runs_nothing(
    http: httpx.AsyncClient, slack: FakeSlack, skills: Skills, secret: str, age: int
) -> None:
    response = await post_command(http, slack, "status", secret=secret, age=age)
    assert response.status_code == 401
    await asyncio.sleep(0.2)
    assert skills.seen == []
    assert slack.posted() == []


async def test_stranger_gets_a_refusal(http: httpx.AsyncClient, slack: FakeSlack) -> None:
    await post_command(http, slack, "status", user=STRANGER)
    (message,) = await slack.wait_for_messages(CHANNEL)
    assert message.block_texts()[0].startswith("⛔")


async def test_labels_show_literally(http: httpx.AsyncClient, slack: FakeSlack) -> None:
    await post_command(http, slack, "eco")
    (message,) = await slack.wait_for_messages(CHANNEL)
    texts = message.block_texts()
    assert texts[0] == TRICKY  # header, plain_text
    assert texts[1] == f"{TRICKY}\n{TRICKY}"  # section, plain_text
    assert texts[2] == "```a &lt;b&gt; &amp; c_d *e* ~f~ `g````"  # code block: mrkdwn escaped
    assert texts[3] == TRICKY  # button label
    assert "&lt;b&gt; &amp;" in message.text  # the notification text is escaped
    assert "<b>" not in message.text


async def test_long_reply_splits_by_block_limit_in_order(
    http: httpx.AsyncClient, slack: FakeSlack
) -> None:
    await post_command(http, slack, "longo")
    messages = await slack.wait_for_messages(CHANNEL, count=3)
    assert all(len(m.blocks) <= 50 for m in messages)
    shown = "\n".join(t for m in messages for t in m.block_texts())
    order = [shown.index(f"parte {i}\n") for i in range(60)]
    assert order == sorted(order)


async def test_chart_is_uploaded_with_files_upload_v2(
    http: httpx.AsyncClient, slack: FakeSlack
) -> None:
    await post_command(http, slack, "grafico 6h")
    await slack.wait_for("files.completeUploadExternal")
    (upload,) = slack.uploads.values()
    assert upload["data"] == PNG
    summary, shared = await slack.wait_for_messages(CHANNEL, count=2)
    assert "approved 6h" in summary.block_texts()
    assert shared.files[0]["name"] == "chart.png"


async def test_not_in_channel_falls_back_to_response_url(
    http: httpx.AsyncClient, slack: FakeSlack
) -> None:
    slack.channels_not_joined.add(CHANNEL)
    await post_command(http, slack, "status")
    await slack.wait_for_responses()
    assert slack.responses[0]["blocks"][0]["text"]["text"] == "Status"


async def test_rate_limit_is_retried(http: httpx.AsyncClient, slack: FakeSlack) -> None:
    slack.fail("chat.postMessage", retry_after=1)
    await post_command(http, slack, "status")
    await slack.wait_for_messages(CHANNEL, within=5)
    assert len(slack.calls_to("chat.postMessage")) == 2


async def test_progress_updates_one_message(http: httpx.AsyncClient, slack: FakeSlack) -> None:
    await post_command(http, slack, "runbook x")
    await slack.wait_for("chat.update", count=2)
    (message,) = slack.posted(CHANNEL)
    assert message.block_texts() == ["runbook ok"]


def test_render_blocks_respects_limits() -> None:
    reply = Reply(
        title="t" * 400,
        sections=(Section("h", ("x" * 7000, "<>" * 2000), True),),
        buttons=tuple(Button(f"b{i}", f"a{i}") for i in range(30)),
    )
    (message,) = render_blocks(reply)
    for block in message.blocks:
        if block["type"] == "section":
            assert len(block["text"]["text"]) <= 3000
    assert sum(len(b["elements"]) for b in message.blocks if b["type"] == "actions") == 30


async def test_socket_mode_envelopes_are_acked_and_answered(
    slack: FakeSlack, skills: Skills
) -> None:
    adapter = SlackAdapter(
        slack.bot_token, None, slack.app_token, slack.api_url, CHANNEL, skills.handle
    )
    assert adapter.routes() == []
    await adapter.start()
    try:
        await slack.wait_for_socket()
        command = await slack.send_envelope("slash_commands", slack.slash_command_form("status"))
        await slack.wait_for_ack(command)
        (status,) = await slack.wait_for_messages(CHANNEL)

        mention = {
            "type": "app_mention",
            "user": OPERATOR,
            "channel": CHANNEL,
            "text": "<@U0BOT> alertas &amp; mais",
            "ts": "1.000001",
        }
        event = await slack.send_envelope("events_api", slack.event_payload(mention))
        await slack.wait_for_ack(event)
        await slack.wait_for_messages(CHANNEL, count=2)

        dm = {
            "type": "message",
            "channel_type": "im",
            "user": OPERATOR,
            "channel": "D0DM",
            "text": "status",
            "ts": "1.000002",
        }
        await slack.wait_for_ack(await slack.send_envelope("events_api", slack.event_payload(dm)))
        await slack.wait_for_messages("D0DM")

        press = slack.block_action_payload(status, status.buttons()[0]["action_id"])
        await slack.wait_for_ack(await slack.send_envelope("interactive", press))
        await slack.wait_for_messages(CHANNEL, count=3)
        assert [inv.text for inv in skills.seen] == [
            "status",
            "alertas & mais",
            "status",
            "alertas",
        ]
        assert adapter.state() == "on (socket)"
    finally:
        await adapter.stop()


async def test_a_long_progress_message_is_replaced_whole(slack: FakeSlack) -> None:
    long = tuple(Section(f"parte {i}", ("x",)) for i in range(40))  # 80 blocks: two messages

    async def handle(inv: Invocation, progress: ProgressSink | None = None) -> Reply:
        assert progress is not None
        await progress.update(Reply(title="passo 1", sections=long))
        await progress.update(Reply(title="passo 2", sections=long))
        return Reply(title="runbook ok")

    adapter = SlackAdapter(slack.bot_token, SECRET, None, slack.api_url, CHANNEL, handle)
    await adapter.start()
    try:
        app = Starlette(routes=adapter.routes())
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app), base_url="http://bot"
        ) as http:
            await post_command(http, slack, "runbook x")
            await slack.wait_for("chat.delete")
    finally:
        await adapter.stop()
    (message,) = slack.posted(CHANNEL)
    assert message.block_texts() == ["runbook ok"]
    assert len(slack.calls_to("chat.postMessage")) == 2  # the first progress only
    assert len(slack.deleted) == 1


async def test_api_url_without_trailing_slash(slack: FakeSlack, skills: Skills) -> None:
    # NIGHTSHIFT_SLACK_API_URL is read without its trailing slash
    base = slack.api_url.rstrip("/")
    adapter = SlackAdapter(slack.bot_token, SECRET, None, base, CHANNEL, skills.handle)
    await adapter.start()
    await adapter.stop()
    assert [c.method for c in slack.calls] == ["auth.test"]


async def test_a_command_is_answered_while_another_still_runs(slack: FakeSlack) -> None:
    cancelled = asyncio.Event()

    async def handle(inv: Invocation, progress: ProgressSink | None = None) -> Reply:
        if inv.text == "cancelar":
            cancelled.set()
            return Reply(title="cancelando")
        await asyncio.wait_for(cancelled.wait(), 5)
        return Reply(title="runbook: cancelado")

    adapter = SlackAdapter(slack.bot_token, None, slack.app_token, slack.api_url, CHANNEL, handle)
    await adapter.start()
    try:
        await slack.wait_for_socket()
        first = await slack.send_envelope("slash_commands", slack.slash_command_form("runbook"))
        await slack.wait_for_ack(first)
        second = await slack.send_envelope("slash_commands", slack.slash_command_form("cancelar"))
        await slack.wait_for_ack(second)
        answers = await slack.wait_for_messages(CHANNEL, count=2)
    finally:
        await adapter.stop()
    assert [m.block_texts() for m in answers] == [["cancelando"], ["runbook: cancelado"]]
