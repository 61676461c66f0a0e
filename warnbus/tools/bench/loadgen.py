"""A lean load generator: prepared POSTs over keep-alive HTTP/1.1 connections.

An aiohttp client spent about as much CPU per request as the server it measured, on the
same two cores. The providers sign and send their webhooks on their own machines, so the
requests are prepared (signed, encoded) before the clock starts and this client only writes
bytes and reads each answer: HTTP/1.1, one request at a time per connection, Content-Length
or chunked answers.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from channels.sim.prepared import PreparedRequest
from warnbus.tools.bench.env import BenchError


@dataclass
class LoadResult:
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)  # seconds, in completion order
    elapsed_s: float = 0.0


async def post_all(requests: Sequence[PreparedRequest], connections: int, timeout_s: float
                   ) -> LoadResult:
    """Send every request once, `connections` at a time; all must go to one host:port."""
    if not requests:
        return LoadResult()
    target = urlsplit(requests[0].url)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    wire = [_encode(r, f"{host}:{port}") for r in requests]
    queue = list(reversed(wire))
    result = LoadResult()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while queue:
                raw = queue.pop()
                t = time.perf_counter()
                writer.write(raw)
                status, close = await _read_response(reader)
                result.latencies.append(time.perf_counter() - t)
                result.statuses[status] += 1
                if close and queue:  # the server ended the connection: open another
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(connections))), timeout_s)
    result.elapsed_s = time.perf_counter() - t0
    return result


def _encode(req: PreparedRequest, host: str) -> bytes:
    """The request as bytes on the wire (the URL's path and query exactly as signed)."""
    parts = urlsplit(req.url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    lines = [f"POST {target} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(req.body)}"]
    lines += [f"{k}: {v}" for k, v in req.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + req.body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one whole response; return its status code and whether the server closes."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    try:
        status = int(status_line.split(" ", 2)[1])
    except (IndexError, ValueError) as e:
        raise BenchError(f"not an HTTP response: {status_line!r}") from e
    headers = {}
    for line in header_lines:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() == "close"
