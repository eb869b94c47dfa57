"""The load generator: POSTs prepared bodies with N concurrent senders, in its own process.

`run_load(job)` writes the bodies to files, starts `python -m bench.load JOB.json` (asyncio and
aiohttp, so the client costs the server no CPU time of its own process) and reads back every
answer's latency and status. Warm-up bodies are sent first, one at a time, and not counted.
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
from typing import Any

import aiohttp


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

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def failures(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)

    @property
    def per_second(self) -> float:
        return self.requests / self.elapsed if self.elapsed > 0 else float("nan")

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
    )


# ------------------------------------------------------------------- the child process


async def _send(
    session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str]
) -> tuple[float, int, Any]:
    started = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        raw = await response.read()
    took = time.perf_counter() - started
    try:
        answer = json.loads(raw)
    except ValueError:
        answer = None
    return took, response.status, answer


async def _drive(spec: dict[str, Any]) -> dict[str, Any]:
    folder = Path(spec["folder"])
    bodies = [(folder / f"{i:07d}.body").read_bytes() for i in range(spec["count"])]
    headers = {"content-type": spec["content_type"]}
    if spec["token"]:
        headers["authorization"] = f"Bearer {spec['token']}"
    url: str = spec["url"]
    warmup: int = spec["warmup"]
    connector = aiohttp.TCPConnector(limit=spec["concurrency"], force_close=False)
    timeout = aiohttp.ClientTimeout(total=120)
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    answers: list[Any] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        for body in bodies[:warmup]:
            await _send(session, url, body, headers)
        queue = iter(bodies[warmup:])

        async def sender() -> None:
            for body in queue:  # a shared iterator: each body goes out once
                took, status, answer = await _send(session, url, body, headers)
                latencies.append(took)
                statuses[status] += 1
                answers.append(answer if isinstance(answer, dict) else {})

        started = time.perf_counter()
        await asyncio.gather(*(sender() for _ in range(spec["concurrency"])))
        elapsed = time.perf_counter() - started
    return {
        "elapsed": elapsed,
        "latencies": latencies,
        "statuses": {str(k): v for k, v in statuses.items()},
        "answers": answers,
    }


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    result = asyncio.run(_drive(spec))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
