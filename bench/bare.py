"""The bare endpoint: the server stack nightshift uses (Starlette on uvicorn) doing no work.

`python -m bench.bare HOST PORT`. Every POST reads its body and answers 200 JSON; GET /healthz
answers 200. Its numbers are the ceiling the real routes are compared with.
"""

from __future__ import annotations

import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route


async def accept(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"status": "stored", "bytes": len(body)})


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def app() -> Starlette:
    return Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/{path:path}", accept, methods=["POST"]),
        ]
    )


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    # The same uvicorn settings as `nightshift serve` (bot/cli.py).
    uvicorn.run(app(), host=host, port=port, log_level="warning", access_log=False, lifespan="on")


if __name__ == "__main__":
    main()
