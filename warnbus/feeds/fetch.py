"""HTTP GET for feeds: conditional, time-bounded, size-bounded; failures become FeedError.

Redirects are followed here, hop by hop, so that each hop's URL is judged by the feed's
HostPolicy like the first (the session's resolver judges the addresses). Error texts name
the status, the size or the cause in warnbus's words: nothing of an upstream body or reason
phrase is kept, as they end up in `/healthz`.
"""

from __future__ import annotations

import asyncio
import http
from dataclasses import dataclass
from urllib.parse import urljoin

import aiohttp

from warnbus.feeds.errors import FeedError
from warnbus.feeds.hosts import HostPolicy, refused_cause
from warnbus.ingest.safexml import html_page_title

USER_AGENT = "warnbus-feed-poller/0.1"
ACCEPT_INDEX = "application/atom+xml, application/rss+xml, application/xml;q=0.9, */*;q=0.1"
ACCEPT_CAP = "application/cap+xml, application/xml;q=0.9, text/xml;q=0.9, */*;q=0.1"
MAX_REDIRECTS = 5
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


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
    policy: HostPolicy,
    timeout_s: float,
    max_bytes: int,
    accept: str = ACCEPT_CAP,
    etag: str = "",
    last_modified: str = "",
) -> Fetched:
    """GET `url`; with validators, a 304 is `Fetched(not_modified=True)`.

    Every URL on the way (redirects included) must pass `policy`: FeedRefused otherwise.
    Anything but 200/304, a timeout, a body over `max_bytes` or an HTML page (a proxy's or
    portal's error page served with 200) raises FeedError: all of them may pass.
    """
    headers = {"User-Agent": USER_AGENT, "Accept": accept}
    if etag:
        headers["If-None-Match"] = etag
    if last_modified:
        headers["If-Modified-Since"] = last_modified
    try:
        async with asyncio.timeout(timeout_s):
            got = await _follow(session, url, policy, headers, timeout_s, max_bytes)
    except TimeoutError:
        raise FeedError(f"no complete answer within {timeout_s:g} s") from None
    except aiohttp.ClientError as e:
        if (refused := refused_cause(e)) is not None:
            raise refused from None
        raise FeedError(_client_error(e)) from e
    if got.not_modified:
        return Fetched(b"", etag, last_modified, not_modified=True)
    if html_page_title(got.body) is not None:
        # The page's title is the upstream's words: not kept (it would reach /healthz).
        raise FeedError("got an HTML page (an error or sign-in page?) instead of XML")
    return got


async def _follow(session: aiohttp.ClientSession, url: str, policy: HostPolicy,
                  headers: dict[str, str], timeout_s: float, max_bytes: int) -> Fetched:
    for _hop in range(MAX_REDIRECTS + 1):
        policy.check_url(url)
        async with session.get(url, headers=headers, allow_redirects=False,
                               timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            if resp.status in _REDIRECTS:
                location = resp.headers.get("Location", "")
                if not location:
                    raise FeedError(f"HTTP {resp.status} redirect without a Location")
                url = urljoin(url, location)
                continue
            if resp.status == 304:
                return Fetched(b"", not_modified=True)
            if resp.status != 200:
                raise FeedError(f"HTTP {resp.status} {_phrase(resp.status)}".strip())
            if resp.content_length is not None and resp.content_length > max_bytes:
                raise FeedError(f"{resp.content_length} bytes is over the limit of {max_bytes}")
            body = bytearray()
            async for chunk in resp.content.iter_chunked(65536):
                body += chunk
                if len(body) > max_bytes:
                    raise FeedError(f"the body is over the limit of {max_bytes} bytes")
            return Fetched(bytes(body), resp.headers.get("ETag", ""),
                           resp.headers.get("Last-Modified", ""))
    raise FeedError(f"more than {MAX_REDIRECTS} redirects")


def _phrase(status: int) -> str:
    """The standard reason phrase (the server's own is not repeated)."""
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


def _client_error(e: aiohttp.ClientError) -> str:
    """A client error in our words: its kind and, for a connection, the peer and OS error."""
    if isinstance(e, aiohttp.ClientConnectorError):
        reason = e.os_error.strerror or type(e.os_error).__name__
        return f"cannot connect to {e.host}:{e.port}: {reason}"
    return type(e).__name__
