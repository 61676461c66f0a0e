"""A local HTTP sink for the `peer` scenario: answers every POST 200 and counts it by path.

`python -m warnbus.tools.bench.sink PORT` serves on 127.0.0.1 in a process of its own, so neither
side of the comparison shares its event loop with the receiver. `GET /count` returns the
counts so far as JSON.
"""

from __future__ import annotations

import sys
from collections import Counter

from aiohttp import web

COUNTS: Counter[str] = Counter()  # the sink is a process of its own: module state is its state


async def take(request: web.Request) -> web.Response:
    await request.read()
    COUNTS[request.path] += 1
    return web.json_response({"ok": True})


async def count(request: web.Request) -> web.Response:
    return web.json_response(dict(COUNTS))


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/count", count)
    app.router.add_post("/{tail:.*}", take)
    return app


def main() -> None:
    port = int(sys.argv[1])
    web.run_app(make_app(), host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
