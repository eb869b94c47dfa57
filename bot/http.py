"""The HTTP surface: Alertmanager webhooks, the transaction feed, health and metrics.

The routes are one explicit list (`routes()`); chat adapters add theirs (`/slack/events`,
`/telegram/webhook`) beside them in the composition root.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from bot.groupcommit import GroupCommit
from bot.metrics import Metrics
from skills.core import Clock
from storage.parsing import FeedError, parse_csv, parse_json
from storage.records import AlertChange, AlertGroup, AlertIn, IngestResult
from storage.schema import ALERTNAME_WIDTH, RECEIVER_WIDTH, SEVERITY_WIDTH
from storage.store import StorageError, Store

log = logging.getLogger(__name__)

_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)


class _AlertV4(BaseModel):
    model_config = ConfigDict(extra="ignore")
    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=64)


class _WebhookV4(BaseModel):
    model_config = ConfigDict(extra="ignore")
    version: Literal["4"]
    groupKey: str
    status: Literal["firing", "resolved"]
    receiver: str = Field(max_length=RECEIVER_WIDTH)
    alerts: list[_AlertV4] = Field(max_length=50_000)
    externalURL: str = ""


def _when(value: datetime | None) -> datetime | None:
    if value is None or value <= _ZERO_TIME:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def parse_alertmanager(body: bytes) -> AlertGroup:
    """A webhook body → AlertGroup; ValueError names the field at fault."""
    try:
        payload = _WebhookV4.model_validate_json(body)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        more = f" (and {error.error_count() - 1} more)" if error.error_count() > 1 else ""
        raise ValueError(f"{where}: {first['msg']}{more}") from None
    for i, a in enumerate(payload.alerts):
        for label, width in (("alertname", ALERTNAME_WIDTH), ("severity", SEVERITY_WIDTH)):
            if len(a.labels.get(label, "")) > width:
                raise ValueError(f"alerts.{i}.labels.{label}: longer than {width} characters")
    return AlertGroup(
        receiver=payload.receiver,
        status=payload.status,
        group_key=payload.groupKey,
        external_url=payload.externalURL,
        alerts=tuple(
            AlertIn(
                fingerprint=a.fingerprint,
                status=a.status,
                labels=a.labels,
                annotations=a.annotations,
                starts_at=_when(a.startsAt),
                ends_at=_when(a.endsAt),
                generator_url=a.generatorURL,
            )
            for a in payload.alerts
        ),
    )


class BodyTooLarge(Exception):
    pass


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def _error(status: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status)


@dataclass(frozen=True, slots=True)
class Intake:
    """What the routes need; built by the composition root."""

    store: Store
    clock: Clock
    metrics: Metrics
    token: str | None
    tz: Any
    max_body: int
    dimensions: Sequence[str] | None = None  # NIGHTSHIFT_DIMENSIONS (None: every extra column)
    slice_top: int = 20  # NIGHTSHIFT_SLICE_TOP
    on_alerts: Callable[[list[AlertChange]], Awaitable[None]] | None = None
    on_ingest: Callable[[int], Awaitable[None]] | None = None
    adapter_states: Callable[[], Sequence[tuple[str, str]]] = tuple

    def authorized(self, request: Request) -> bool:
        if self.token is None:
            return True
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode(), self.token.encode())


def routes(intake: Intake) -> list[Route]:
    """The product's HTTP routes, in one list."""
    # Webhooks that arrive together are stored in one transaction (bot/groupcommit.py).
    alert_writes: GroupCommit[tuple[AlertGroup, datetime], list[AlertChange]] = GroupCommit(
        intake.store.apply_alert_groups
    )

    async def guarded_body(request: Request, route: str) -> bytes | Response:
        if not intake.authorized(request):
            intake.metrics.inc(
                "nightshift_http_rejected_total", "Rejected requests.", route=route, reason="401"
            )
            return _error(
                401,
                "missing or wrong bearer token",
            )
        try:
            return await _read_body(request, intake.max_body)
        except BodyTooLarge:
            return _error(413, f"body over the limit of {intake.max_body} bytes")

    async def alertmanager(request: Request) -> Response:
        body = await guarded_body(request, "alertmanager")
        if isinstance(body, Response):
            return body
        try:
            group = parse_alertmanager(body)
        except ValueError as error:
            intake.metrics.inc(
                "nightshift_webhooks_total", "Alertmanager webhooks.", outcome="invalid"
            )
            return _error(422, str(error))
        try:
            changes = await alert_writes.submit((group, intake.clock.now()))
        except StorageError as error:
            intake.metrics.inc(
                "nightshift_webhooks_total", "Alertmanager webhooks.", outcome="unavailable"
            )
            return _error(503, f"store unavailable, retry later ({error})")
        intake.metrics.inc("nightshift_webhooks_total", "Alertmanager webhooks.", outcome="stored")
        if changes and intake.on_alerts is not None:
            await intake.on_alerts(changes)
        return JSONResponse(
            {"status": "stored", "alerts": len(group.alerts), "changed": len(changes)}
        )

    async def transactions(request: Request) -> Response:
        body = await guarded_body(request, "transactions")
        if isinstance(body, Response):
            return body
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        today = intake.clock.now().astimezone(intake.tz).date()
        parse = parse_csv if content_type in ("text/csv", "application/csv") else parse_json

        def parse_and_store() -> IngestResult:
            # Tens of ms for 10k rows: off the event loop, in one trip to a worker thread.
            text = body.decode("utf-8-sig")
            batch = parse(text, default_date=today, tz=intake.tz, dimensions=intake.dimensions)
            if not len(batch):
                return IngestResult(0, 0)
            return intake.store.ingest(batch, slice_top=intake.slice_top)

        try:
            result = await asyncio.to_thread(parse_and_store)
        except UnicodeDecodeError:
            return _error(422, "body is not UTF-8 text")
        except FeedError as error:
            problems = [{"row": row, "reason": reason} for row, reason in error.problems[:100]]
            return _error(422, str(error), errors=problems)
        except StorageError as error:
            return _error(503, f"store unavailable, retry later ({error})")
        intake.metrics.inc("nightshift_ingested_rows_total", "Feed rows stored.", result.accepted)
        if intake.on_ingest is not None:
            await intake.on_ingest(result.accepted)
        return JSONResponse({"accepted": result.accepted, "new_events": result.new_events})

    async def healthz(request: Request) -> Response:
        ok = await asyncio.to_thread(intake.store.ping)
        body = {
            "status": "ok" if ok else "unavailable",
            "store": {"ok": ok, "dialect": intake.store.dialect},
            "adapters": dict(intake.adapter_states()),
        }
        return JSONResponse(body, status_code=200 if ok else 503)

    async def metrics(request: Request) -> Response:
        return PlainTextResponse(
            intake.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    return [
        Route("/webhooks/alertmanager", alertmanager, methods=["POST"]),
        Route("/transactions", transactions, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
    ]


def json_error_handlers() -> dict[Any, Callable[..., Awaitable[Response]]]:
    """Any unexpected failure answers JSON 500 with no traceback (and is logged)."""

    async def server_error(request: Request, exc: Exception) -> Response:
        log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"detail": "internal error"}, status_code=500)

    return {Exception: server_error}
