"""The bench's lean HTTP/1.1 client against a real aiohttp server: bodies, headers, statuses
and chunked answers arrive as sent, each request once."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from channels.sim.prepared import PreparedRequest
from warnbus.runtime.services import free_port
from warnbus.tools.bench.loadgen import post_all


@asynccontextmanager
async def serving(path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                  ) -> AsyncIterator[int]:
    """An aiohttp server on a free port taking POSTs on `path`; yields the port."""
    app = web.Application()
    app.router.add_post(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield port
    finally:
        await runner.cleanup()


async def test_every_prepared_request_is_sent_once_as_prepared() -> None:
    seen: list[tuple[str, bytes, str]] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append((request.path_qs, await request.read(), request.headers.get("X-Sig", "")))
        n = int(request.query["n"])
        if n % 3 == 0:  # a chunked answer
            resp = web.StreamResponse(status=200)
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await resp.write(b"part one, ")
            await resp.write(b"part two")
            await resp.write_eof()
            return resp
        return web.Response(status=200 if n % 3 == 1 else 409, text="x" * n)

    async with serving("/hook", handler) as port:
        reqs = [PreparedRequest(f"http://127.0.0.1:{port}/hook?n={i}&a=%2F%20",
                                f"body {i} 红色预警".encode(), {"X-Sig": f"s{i}"})
                for i in range(300)]
        result = await post_all(reqs, connections=8, timeout_s=30)
    assert sorted(seen) == sorted((f"/hook?n={i}&a=%2F%20", f"body {i} 红色预警".encode(),
                                   f"s{i}") for i in range(300))
    assert result.statuses == {200: 200, 409: 100}
    assert len(result.latencies) == 300 and result.elapsed_s > 0


async def test_a_server_closing_the_connection_gets_the_rest_on_a_new_one() -> None:
    """`Connection: close` (aiohttp answers so to some refusals): the worker reconnects."""
    seen: list[int] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        n = int(request.query["n"])
        seen.append(n)
        resp = web.Response(status=403 if n % 2 else 200, text="no")
        if n % 2:
            resp.force_close()
        return resp

    async with serving("/x", handler) as port:
        reqs = [PreparedRequest(f"http://127.0.0.1:{port}/x?n={i}", b"", {}) for i in range(40)]
        result = await post_all(reqs, connections=2, timeout_s=30)
    assert sorted(seen) == list(range(40))
    assert result.statuses == {200: 20, 403: 20}
