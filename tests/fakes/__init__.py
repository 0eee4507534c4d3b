"""Fake servers the tests talk to, each on 127.0.0.1."""

from __future__ import annotations

import socket

from aiohttp import web


async def serve_app(
    app: web.Application, host: str = "127.0.0.1", port: int = 0
) -> tuple[web.AppRunner, str]:
    """Serve `app` on `host`:`port` (0: a free one); the runner to clean up, and the origin."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A fake started again on its old port (a restart test) must not wait for TIME_WAIT.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.SockSite(runner, sock).start()
    return runner, f"http://{host}:{sock.getsockname()[1]}"
