"""`nightshift replay`: a feed file sent to a running bot one minute at a time, paced."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from datetime import UTC, datetime

import httpx

from bot.errors import CliError
from storage.parsing import FeedBatch, combo_columns


def _minutes(batch: FeedBatch) -> dict[int, list[dict[str, object]]]:
    rows: dict[int, list[dict[str, object]]] = defaultdict(list)
    for r in () if batch.slices else batch.counts:
        stamp = datetime.fromtimestamp(r.minute, UTC).isoformat()
        rows[r.minute].append({"timestamp": stamp, "status": r.status, "count": r.count})
    for s in batch.slices:  # each combo with its extra columns, as the file had them
        stamp = datetime.fromtimestamp(s.minute, UTC).isoformat()
        combo = {"timestamp": stamp, "status": s.status, **combo_columns(s.combo), "count": s.count}
        rows[s.minute].append(combo)
    for a in batch.auth_codes:
        stamp = datetime.fromtimestamp(a.minute, UTC).isoformat()
        rows[a.minute].append({"timestamp": stamp, "auth_code": a.auth_code, "count": a.count})
    for e in batch.events:
        stamp = datetime.fromtimestamp(e.minute, UTC).isoformat()
        event: dict[str, object] = dict(zip(batch.dimensions, e.values, strict=True))
        event |= {
            "id": e.id,
            "timestamp": stamp,
            "status": e.status,
            "amount": e.amount,
            "merchant_id": e.merchant_id,
        }
        rows[e.minute].append(event)
    return rows


def replay(batch: FeedBatch, url: str, *, token: str | None, speed: float) -> int:
    """POST each minute's rows in order; `speed` minutes of feed per real minute (0 = no wait)."""
    if speed < 0:
        raise CliError("--speed: must be 0 (no pacing) or more")
    headers = {"content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    sent = 0
    pause = 60.0 / speed if speed else 0.0
    with httpx.Client(timeout=30) as client:
        for minute, rows in sorted(_minutes(batch).items()):
            started = time.monotonic()
            try:
                response = client.post(url, content=json.dumps(rows), headers=headers)
            except httpx.HTTPError as error:
                raise CliError(f"--url: {url} did not answer ({type(error).__name__})") from None
            if response.status_code != 200:
                stamp = datetime.fromtimestamp(minute, UTC).isoformat()
                raise CliError(
                    f"{url} answered {response.status_code} at {stamp}: {response.text[:200]}"
                )
            sent += len(rows)
            time.sleep(max(0.0, pause - (time.monotonic() - started)))
    return sent
