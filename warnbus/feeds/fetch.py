"""HTTP GET for feeds: conditional, time-bounded, size-bounded; failures become FeedError."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp

from warnbus.feeds.errors import FeedError
from warnbus.ingest.safexml import html_page_title

USER_AGENT = "warnbus-feed-poller/0.1"
ACCEPT_INDEX = "application/atom+xml, application/rss+xml, application/xml;q=0.9, */*;q=0.1"
ACCEPT_CAP = "application/cap+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"


@dataclass(frozen=True)
class Fetched:
    """A 200 (body and validators) or a 304 (`not_modified`, empty body)."""

    body: bytes
    etag: str = ""
    last_modified: str = ""
    not_modified: bool = False


async def fetch(
    session: aiohttp.ClientSession,
    url: str,
    *,
    timeout_s: float,
    max_bytes: int,
    accept: str = ACCEPT_CAP,
    etag: str = "",
    last_modified: str = "",
) -> Fetched:
    """GET `url`; with validators, a 304 is `Fetched(not_modified=True)`.

    Anything but 200/304, a timeout, a body over `max_bytes` or an HTML page (a proxy's or
    portal's error page served with 200) raises FeedError: all of them may pass.
    """
    headers = {"User-Agent": USER_AGENT, "Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        async with asyncio.timeout(timeout_s), session.get(
            url, headers=headers, max_redirects=5,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
        ) as resp:
            if resp.status == 304:
                return Fetched(b"", etag, last_modified, not_modified=True)
            if resp.status != 200:
                raise FeedError(f"HTTP {resp.status} {resp.reason or ''}".strip())
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise FeedError(f"{resp.content_length} bytes is over the limit of {max_bytes}")
            body = bytearray()
            async for chunk in resp.content.iter_chunked(65536):
                body += chunk
                if len(body) > max_bytes:
                    raise FeedError(f"the body is over the limit of {max_bytes} bytes")
            validators = (resp.headers.get("ETag", ""), resp.headers.get("Last-Modified", ""))
    except TimeoutError:
        raise FeedError(f"no complete answer within {timeout_s:g} s") from None
    except aiohttp.ClientError as e:
        raise FeedError(f"{type(e).__name__}: {e}") from e
    title = html_page_title(bytes(body))
    if title is not None:
        raise FeedError(f"got an HTML page instead of XML: {title or '(no title)'}")
    return Fetched(bytes(body), *validators)
