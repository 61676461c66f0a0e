"""The HTTP server and background tasks the mainland simulators share."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import aiohttp
from aiohttp import web


class SimServer:
    """Serves one handler at `/` and runs the provider's later pushes as tasks."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None

    def _handler(self) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        raise NotImplementedError

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on host:port; returns the `endpoint` (host:port) for the channels' config."""
        app = web.Application()
        app.router.add_route("*", "/", self._handler())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, host, port).start()
        self._http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return f"{host}:{self._runner.addresses[0][1]}"

    async def wait_idle(self, within_s: float = 5.0) -> None:
        """Wait until every scheduled push has been made (or `within_s` passed)."""
        deadline = time.monotonic() + within_s
        while self._tasks and time.monotonic() < deadline:
            await asyncio.wait(set(self._tasks), timeout=deadline - time.monotonic())

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
