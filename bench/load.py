"""The load generator: POSTs prepared bodies with N concurrent senders, in its own process.

`run_load(job)` writes the bodies to files, starts `python -m bench.load JOB.json` (so the
client costs the server's process no CPU time; a lean client, see below, so it costs the
machine little) and reads back every answer's latency and status. Warm-up bodies are sent
first, one at a time, and not counted.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import httptools
import uvloop


@dataclass(frozen=True, slots=True)
class Job:
    url: str
    bodies: Sequence[bytes]
    content_type: str
    concurrency: int = 1
    warmup: int = 0  # the first `warmup` bodies, sent one at a time, not counted
    token: str | None = None


@dataclass(frozen=True, slots=True)
class LoadResult:
    elapsed: float  # seconds from the first counted request to the last answer
    latencies: tuple[float, ...]  # seconds, one per counted request
    statuses: dict[int, int]
    answers: tuple[dict[str, Any], ...]  # JSON answers of the counted requests (when JSON)
    client_cpu: float  # seconds of CPU the load generator spent sending the counted requests
    steal: float  # the share of the machine's CPU time the hypervisor took meanwhile (0..1)

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def failures(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)

    @property
    def per_second(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else float("nan")

    @property
    def client_cpu_ms(self) -> float:
        """The load generator's own CPU time per counted request, in ms."""
        return self.client_cpu / self.requests * 1000 if self.requests else float("nan")

    def percentile_ms(self, q: float) -> float:
        return percentile(self.latencies, q) * 1000


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return float(values[0])
    return float(statistics.quantiles(values, n=1000, method="inclusive")[int(q * 10) - 1])


def run_load(job: Job, workdir: Path, timeout: float = 600.0) -> LoadResult:
    """Send `job` from a separate process and return what it measured."""
    folder = workdir / f"load-{time.monotonic_ns()}"
    folder.mkdir(parents=True)
    for i, body in enumerate(job.bodies):
        (folder / f"{i:07d}.body").write_bytes(body)
    spec = {
        "url": job.url,
        "count": len(job.bodies),
        "folder": str(folder),
        "content_type": job.content_type,
        "concurrency": job.concurrency,
        "warmup": job.warmup,
        "token": job.token,
    }
    (folder / "job.json").write_text(json.dumps(spec))
    done = subprocess.run(
        [sys.executable, "-m", "bench.load", str(folder / "job.json")],
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed: {done.stderr.decode()[-2000:]}")
    raw = json.loads(done.stdout)
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()
    return LoadResult(
        elapsed=raw["elapsed"],
        latencies=tuple(raw["latencies"]),
        statuses={int(k): v for k, v in raw["statuses"].items()},
        answers=tuple(raw["answers"]),
        client_cpu=raw["cpu"],
        steal=raw["steal"],
    )


# ------------------------------------------------------------------- the child process
#
# The client is as lean as the benchmark allows: on a 2-core machine every millisecond of CPU
# it spends is taken from the server it measures. aiohttp cost 0.5-0.7 ms of CPU a request
# (a third of the machine at 1,000 requests/s); this one writes prepared HTTP/1.1 requests on
# keep-alive connections and reads the answers with httptools' C parser.


class _Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection: one request at a time, answers read as they come."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.answer: asyncio.Future[tuple[int, bytes]] | None = None
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc or ConnectionError("the server closed the connection"))

    # httptools callbacks
    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        assert self.answer is not None
        self.answer.set_result((self.parser.get_status_code(), b"".join(self.body)))
        self.body = []

    async def send(self, request: bytes) -> tuple[int, bytes]:
        assert self.transport is not None
        self.answer = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.answer


def _requests(spec: dict[str, Any]) -> list[bytes]:
    """Every body as a whole HTTP/1.1 request, ready to write."""
    folder = Path(spec["folder"])
    url = urlsplit(spec["url"])
    head = [
        f"POST {url.path or '/'} HTTP/1.1",
        f"host: {url.netloc}",
        f"content-type: {spec['content_type']}",
    ]
    if spec["token"]:
        head.append(f"authorization: Bearer {spec['token']}")
    prefix = "\r\n".join(head).encode()
    out = []
    for i in range(spec["count"]):
        body = (folder / f"{i:07d}.body").read_bytes()
        out.append(b"%s\r\ncontent-length: %d\r\n\r\n%s" % (prefix, len(body), body))
    return out


async def _drive(spec: dict[str, Any]) -> dict[str, Any]:
    requests = _requests(spec)
    url = urlsplit(spec["url"])
    loop = asyncio.get_running_loop()
    connections: list[_Connection] = []
    for _ in range(spec["concurrency"]):
        _, conn = await loop.create_connection(_Connection, url.hostname, url.port)
        connections.append(conn)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    answers: list[Any] = []
    warmup: int = spec["warmup"]
    for request in requests[:warmup]:
        await asyncio.wait_for(connections[0].send(request), 120)
    queue = iter(requests[warmup:])
    clock = time.perf_counter

    async def sender(conn: _Connection) -> None:
        for request in queue:  # a shared iterator: each request goes out once
            started = clock()
            status, raw = await conn.send(request)
            latencies.append(clock() - started)
            statuses[status] += 1
            answers.append(raw)

    started, cpu, ticks = clock(), time.process_time(), _cpu_ticks()
    await asyncio.wait_for(asyncio.gather(*(sender(c) for c in connections)), 600)
    elapsed, cpu = clock() - started, time.process_time() - cpu
    spent = [after - before for before, after in zip(ticks, _cpu_ticks(), strict=True)]
    total = sum(spent)
    for conn in connections:
        assert conn.transport is not None
        conn.transport.close()
    return {
        "elapsed": elapsed,
        "cpu": cpu,
        "steal": spent[7] / total if len(spent) > 7 and total > 0 else 0.0,
        "latencies": latencies,
        "statuses": {str(k): v for k, v in statuses.items()},
        "answers": [_answer(raw) for raw in answers],  # decoded after the clock stopped
    }


def _cpu_ticks() -> list[int]:
    """The machine's CPU time by kind (user, nice, system, idle, iowait, irq, softirq, steal…),
    from /proc/stat; empty where there is none."""
    try:
        with open("/proc/stat") as stat:
            return [int(n) for n in stat.readline().split()[1:]]
    except OSError:
        return []


def _answer(raw: bytes) -> dict[str, Any]:
    try:
        answer = json.loads(raw)
    except ValueError:
        return {}
    return answer if isinstance(answer, dict) else {}


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    uvloop.install()
    result = asyncio.run(_drive(spec))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
