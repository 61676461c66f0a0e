"""Server-sent events of the console: the board's and the desk's, bounded the same way.

A stream sends its state whenever it changes (and a heartbeat), and ends (an `end` event,
then close) within about RECHECK_S of its session ending; a session may hold
`streams.per_session` of them, a user `streams.per_user`, a process `streams.total`
(`streams.StreamSlots`), whichever page opened them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from aiohttp import web

from warnbus.web.console.auth import session_digest
from warnbus.web.console.base import COOKIE, SECURITY_HEADERS, console, user_of

#: How often a live stream checks that its session has not ended (seconds, at most).
RECHECK_S = 1.0
ENDED = ("event: end\ndata: "
         + '{"message": "登录已失效（已退出、密码已重设或账户已停用），请重新登录"}\n\n')
#: Send a comment line after this long without data: proxies drop silent connections.
KEEP_ALIVE_S = 15.0


async def stream(request: web.Request, state: Callable[[], Awaitable[Any]],
                 event: str = "state") -> web.StreamResponse:
    """Serve `state()` as server-sent events named `event`, each time it changes."""
    con = console(request)
    sid = request.cookies.get(COOKIE, "")
    session = session_digest(sid)
    user = user_of(request).name
    refusal = con.streams.refusal(session, user)
    if refusal is not None:
        code = "too_many_streams" if refusal.status == 429 else "unavailable"
        return web.json_response({"error": {"code": code, "message": refusal.message}},
                                 status=refusal.status,
                                 headers={"Retry-After": str(refusal.retry_after_s)})
    interval = max(0.1, (await con.settings()).sse_interval_s)
    resp = web.StreamResponse(headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream",
                                       "X-Accel-Buffering": "no"})
    head = f"event: {event}\ndata: ".encode()
    with con.streams.hold(session, user), contextlib.suppress(ConnectionResetError):
        await resp.prepare(request)  # the browser may go away at any write
        last = b""
        now = written = time.monotonic()
        look, check = now, now + RECHECK_S
        while True:
            if now >= check:
                if await con.signed_in(sid) is None:
                    await resp.write(ENDED.encode())
                    break
                check = now + RECHECK_S
            if now >= look:
                blob = msgspec.json.encode(await state())
                if blob != last:
                    await resp.write(head + blob + b"\n\n")
                    last, written = blob, now
                elif now - written >= KEEP_ALIVE_S:
                    await resp.write(b": keep-alive\n\n")
                    written = now
                look = now + interval
            await asyncio.sleep(max(0.01, min(look, check) - time.monotonic()))
            now = time.monotonic()
    return resp
