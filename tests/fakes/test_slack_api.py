"""The fake Slack Web API answers the real slack_sdk client as Slack does."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack_api import FakeSlack


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as fake:
        yield fake


@pytest.fixture
def client(slack: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=slack.bot_token, base_url=slack.api_url)


async def test_auth_and_tokens(slack: FakeSlack, client: AsyncWebClient) -> None:
    assert (await client.auth_test())["user_id"] == "U0BOT"
    with pytest.raises(SlackApiError, match="invalid_auth"):
        await AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url).auth_test()
    with pytest.raises(SlackApiError, match="not_allowed_token_type"):
        await client.apps_connections_open(app_token=slack.bot_token)
    url = (await client.apps_connections_open(app_token=slack.app_token))["url"]
    assert url.startswith("ws://127.0.0.1:")


async def test_post_update_and_block_limits(slack: FakeSlack, client: AsyncWebClient) -> None:
    blocks = [{"type": "section", "text": {"type": "plain_text", "text": "a < b & *c*"}}]
    posted = await client.chat_postMessage(channel="C1", text="fallback", blocks=blocks)
    await client.chat_update(channel="C1", ts=posted["ts"], text="new", blocks=blocks)
    assert slack.posted("C1")[0].text == "new"
    assert slack.posted("C1")[0].block_texts() == ["a < b & *c*"]
    too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        await client.chat_postMessage(channel="C1", text="t", blocks=too_long)
    too_many = [{"type": "divider"}] * 51
    with pytest.raises(SlackApiError, match="invalid_blocks"):
        await client.chat_postMessage(channel="C1", text="t", blocks=too_many)
    with pytest.raises(SlackApiError, match="message_not_found"):
        await client.chat_update(channel="C1", ts="1.2", text="x")


async def test_rate_limit_on_demand(slack: FakeSlack, client: AsyncWebClient) -> None:
    slack.fail("chat.postMessage", retry_after=3)
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel="C1", text="hi")
    assert info.value.response.status_code == 429
    assert info.value.response.headers["Retry-After"] == "3"
    await client.chat_postMessage(channel="C1", text="hi")
    assert len(slack.calls_to("chat.postMessage")) == 2


async def test_files_upload_v2_goes_through_three_steps(
    slack: FakeSlack, client: AsyncWebClient
) -> None:
    png = b"\x89PNG" + b"1" * 50
    await client.files_upload_v2(channel="C1", file=png, filename="c.png", title="chart")
    assert [c.method for c in slack.calls] == [
        "files.getUploadURLExternal",
        "files.completeUploadExternal",
    ]
    (upload,) = slack.uploads.values()
    assert upload["data"] == png
    assert slack.posted("C1")[0].files[0]["title"] == "chart"
