"""Async client for the Prometheus Alertmanager HTTP API v2: live alerts, silences, posting alerts.

Exceptions:

    AlertmanagerError   -- any failed call: unreachable, timed out, non-2xx answer, or a body
                           that is not the JSON the API documents; the message is one line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Self
from urllib.parse import quote

import httpx

from skills.core import Silence

__all__ = ["AlertmanagerClient", "AlertmanagerError"]

logger = logging.getLogger(__name__)

_BODY_EXCERPT = 200


class AlertmanagerError(Exception):
    """A call to Alertmanager failed; ``str(error)`` is one line fit for a log or a chat reply."""


def _one_line(text: str, limit: int = _BODY_EXCERPT) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _timestamp(value: datetime, what: str) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got {value!r}")
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _dict_list(payload: object, what: str) -> list[dict[str, object]]:
    if not isinstance(payload, list) or not all(isinstance(item, dict) for item in payload):
        raise AlertmanagerError(f"Alertmanager {what}: expected a JSON array of objects")
    return payload


class AlertmanagerClient:
    """Talks to one Alertmanager (``base_url`` may carry a route prefix, e.g. ``/alertmanager``)."""

    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url = httpx.URL(base_url)
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("Alertmanager URL must look like http(s)://host[:port][/prefix]")
        # Shown in errors and logs: never the credentials a URL may carry.
        self._where = str(url.copy_with(username=None, password=None)).rstrip("/")
        self._timeout = timeout
        self._http = httpx.AsyncClient(
            base_url=url,
            timeout=timeout,
            transport=transport,
            headers={"Accept": "application/json"},
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def ready(self) -> bool:
        """True when Alertmanager answers its readiness probe; never raises."""
        try:
            response = await self._http.get("/-/ready")
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    async def active_alerts(self) -> list[dict[str, object]]:
        """Alerts not yet resolved, silenced and inhibited ones included (see ``status``)."""
        payload = await self._call("GET", "/api/v2/alerts")
        return _dict_list(payload, "GET /api/v2/alerts")

    async def alert_states(self) -> dict[str, str]:
        """Fingerprint → Alertmanager's state of each unresolved alert (`suppressed`: silenced)."""
        states: dict[str, str] = {}
        for alert in await self.active_alerts():
            status, fingerprint = alert.get("status"), alert.get("fingerprint")
            if isinstance(fingerprint, str) and isinstance(status, dict):
                states[fingerprint] = str(status.get("state", ""))
        return states

    async def silence_list(self) -> list[Silence]:
        """Every silence Alertmanager knows, read into records (malformed ones left out)."""
        out: list[Silence] = []
        for silence in await self.silences():
            status, ends = silence.get("status"), _parse_time(silence.get("endsAt"))
            matchers = silence.get("matchers")
            if not isinstance(status, dict) or ends is None or not isinstance(matchers, list):
                continue
            shown = ", ".join(
                f"{m.get('name')}{'=' if m.get('isEqual', True) else '!='}{m.get('value')}"
                for m in matchers
                if isinstance(m, dict)
            )
            out.append(
                Silence(
                    id=str(silence.get("id", "")),
                    state=str(status.get("state", "")),
                    ends_at=ends,
                    matchers=shown,
                    created_by=str(silence.get("createdBy", "")),
                )
            )
        return out

    async def post_alerts(self, alerts: Sequence[Mapping[str, object]]) -> None:
        """Send alerts as a Prometheus server would; ``startsAt``/``endsAt`` may be datetimes."""
        body = [
            {
                key: _timestamp(value, key) if isinstance(value, datetime) else value
                for key, value in alert.items()
            }
            for alert in alerts
        ]
        await self._call("POST", "/api/v2/alerts", body)

    async def create_silence(
        self,
        matchers: Sequence[Mapping[str, object]],
        starts: datetime,
        ends: datetime,
        created_by: str,
        comment: str,
    ) -> str:
        """Create a silence; returns its id. Matchers default to ``isRegex=false, isEqual=true``."""
        if not matchers:
            raise ValueError("a silence needs at least one matcher")
        body = {
            "matchers": [{"isRegex": False, "isEqual": True, **matcher} for matcher in matchers],
            "startsAt": _timestamp(starts, "starts"),
            "endsAt": _timestamp(ends, "ends"),
            "createdBy": created_by,
            "comment": comment,
        }
        payload = await self._call("POST", "/api/v2/silences", body)
        silence_id = payload.get("silenceID") if isinstance(payload, dict) else None
        if not isinstance(silence_id, str) or not silence_id:
            raise AlertmanagerError("Alertmanager POST /api/v2/silences: answer has no silenceID")
        logger.info("created Alertmanager silence %s by %s", silence_id, created_by)
        return silence_id

    async def silences(self) -> list[dict[str, object]]:
        """All silences Alertmanager knows: active, pending and recently expired (``status``)."""
        payload = await self._call("GET", "/api/v2/silences")
        return _dict_list(payload, "GET /api/v2/silences")

    async def expire_silence(self, silence_id: str) -> None:
        """Expire a silence now."""
        await self._call("DELETE", f"/api/v2/silence/{quote(silence_id, safe='')}")
        logger.info("expired Alertmanager silence %s", silence_id)

    async def _call(self, method: str, path: str, body: object = None) -> object:
        what = f"{method} {path}"
        try:
            response = await self._http.request(method, path, json=body)
        except httpx.TimeoutException:
            raise AlertmanagerError(
                f"Alertmanager at {self._where} timed out after {self._timeout:g}s on {what}"
            ) from None
        except httpx.HTTPError as exc:
            reason = _one_line(str(exc)) or type(exc).__name__
            raise AlertmanagerError(
                f"Alertmanager at {self._where} unreachable on {what}: {reason}"
            ) from exc
        if response.is_error:
            detail = _one_line(response.text) or response.reason_phrase
            raise AlertmanagerError(
                f"Alertmanager at {self._where} answered {response.status_code} to {what}: {detail}"
            )
        logger.debug("Alertmanager %s -> %s", what, response.status_code)
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise AlertmanagerError(
                f"Alertmanager at {self._where} sent a body that is not JSON on {what}"
            ) from None
