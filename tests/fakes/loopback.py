"""An aiohttp application served on a free loopback port: what every fake server stands on."""

from __future__ import annotations

from aiohttp import web


async def serve(app: web.Application, host: str = "127.0.0.1") -> tuple[web.AppRunner, int]:
    """Start `app` on `host` at a port the OS picks; returns the runner (to clean up) and port."""
    runner = web.AppRunner(app, shutdown_timeout=0.5, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, host, 0)
    await site.start()
    port = int(runner.addresses[0][1])  # the site's sockname: (host, port, ...)
    return runner, port
