"""Where a feed may fetch from: its allowed hosts, and never a private address unless allowed.

A feed's index names the links warnbus fetches next, and any hop may redirect: a hostile or
compromised feed could point the poller at the engine's own network (Redis on 127.0.0.1, a
cloud metadata service on 169.254.169.254, the county's intranet). So every URL (the feed's,
each entry link, each redirect hop) must have an allowed host (`FeedSettings.allowed_hosts`,
default the feed URL's host), and every address it resolves to must be public unless the
feed says `allow_private = true`. The address is checked where the connection is made (the
session's resolver), so a DNS name that resolves to 127.0.0.1 is refused like the literal.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

from warnbus.feeds.errors import FeedRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def host_of(url: str) -> str:
    """The lower-case host of an http(s) URL ('' when it has none)."""
    return (urlsplit(url).hostname or "").lower().rstrip(".")


def _address(host: str) -> IPAddress | None:
    try:
        ip = ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip


def not_public(address: str) -> str | None:
    """Why an IP address is not a public one (loopback, private, link-local ...), or None."""
    ip = _address(address)
    if ip is None:
        return "not an IP address"
    for what, flag in (("a loopback", ip.is_loopback), ("an unspecified", ip.is_unspecified),
                       ("a link-local", ip.is_link_local), ("a private", ip.is_private),
                       ("a multicast", ip.is_multicast), ("a reserved", ip.is_reserved)):
        if flag:
            return f"{what} address"
    return None if ip.is_global else "not a public address"


@dataclass(frozen=True)
class HostPolicy:
    """The hosts one feed may fetch from, and whether private addresses are allowed."""

    feed: str
    hosts: tuple[str, ...]  # exact names, or "*.example.cn" for any name under it
    allow_private: bool = False

    @classmethod
    def of(cls, feed: str, url: str, allowed_hosts: Sequence[str] = (),
           allow_private: bool = False) -> HostPolicy:
        hosts = tuple(h.lower().rstrip(".") for h in allowed_hosts) or (host_of(url),)
        return cls(feed, hosts, allow_private)

    def allows_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == h or (h.startswith("*.") and host.endswith(h[1:])) for h in self.hosts)

    def check_url(self, url: str) -> None:
        """Refuse (FeedRefused) a URL off the allowed hosts, or naming a non-public IP."""
        parts = urlsplit(url)
        host = host_of(url)
        if parts.scheme not in ("http", "https") or not host:
            raise FeedRefused(f"feed {self.feed}: only http(s) URLs with a host are fetched")
        if not self.allows_host(host):
            raise FeedRefused(
                f"feed {self.feed}: host {host[:100]} is not one the feed may fetch from "
                f"(allowed_hosts: {', '.join(self.hosts)})")
        if not self.allow_private and (why := _literal_not_public(host)):
            raise FeedRefused(f"feed {self.feed}: {host} is {why}; set allow_private = true "
                              "to fetch from it")


def _literal_not_public(host: str) -> str | None:
    # aiohttp connects to an IP literal without asking the resolver: judged here instead.
    return not_public(host) if _address(host) is not None else None


class PublicOnlyResolver(AbstractResolver):
    """Resolve as usual, then refuse a name any of whose addresses is not public.

    Every address is judged, not only the first: a name with one public and one private
    record would otherwise let the connector try the private one after the public failed.
    """

    def __init__(self, inner: AbstractResolver | None = None) -> None:
        self._inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        for entry in found:
            if why := not_public(entry["host"]):
                raise FeedRefused(f"{host[:100]} resolves to {entry['host']}, {why}; set "
                                  "allow_private = true to fetch from it")
        return found

    async def close(self) -> None:
        await self._inner.close()


def open_session(policy: HostPolicy, **kwargs: Any) -> aiohttp.ClientSession:
    """A client session whose connections obey the policy's address rule (call in a loop)."""
    resolver = None if policy.allow_private else PublicOnlyResolver()
    connector = aiohttp.TCPConnector(resolver=resolver, limit_per_host=8)
    # Proxies from the environment are not used: the address check is about the real peer.
    return aiohttp.ClientSession(connector=connector, trust_env=False, **kwargs)


def refused_cause(exc: BaseException) -> FeedRefused | None:
    """The FeedRefused a connector error wraps (the resolver refused the address), if any."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, FeedRefused):
            return seen
        if isinstance(seen, aiohttp.ClientConnectorError) and isinstance(
                seen.os_error, FeedRefused):
            return seen.os_error
        seen = seen.__cause__
    return None
