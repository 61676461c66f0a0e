"""Feeds stay on their hosts and off private addresses; upstream words stay out of /healthz.

Issue 14, item 10. The feed server runs on 127.0.0.1, so a feed that may reach it says
`allow_private = true` (feedkit's default); the tests here take that away, or point entries
and redirects elsewhere, and check that nothing is fetched from where it should not be.
"""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator

import aiohttp
import msgspec
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from feedkit import Kit, atom, feed_settings, fixture
from structlog.testing import capture_logs

from warnbus.feeds import feed_health
from warnbus.feeds.errors import FeedRefused, public_text
from warnbus.feeds.fetch import fetch
from warnbus.feeds.hosts import HostPolicy, PublicOnlyResolver, not_public
from warnbus.ingest import parse_cap
from warnbus.runtime.config import FeedSettings

RED = "rainstorm-red.xml"
pytestmark = pytest.mark.timeout(30)


class StaticResolver(AbstractResolver):
    """Names of the test's choosing, all pointing where the test says (a fake DNS)."""

    def __init__(self, names: dict[str, str]) -> None:
        self.names = names

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        if host not in self.names:
            raise OSError(f"no such test name {host}")
        return [{"hostname": host, "host": self.names[host], "port": port,
                 "family": socket.AF_INET, "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self) -> None:
        pass


# --------------------------------------------------------------------- private addresses


async def test_a_feed_on_127_0_0_1_is_refused_without_allow_private(kit: Kit) -> None:
    kit.server.put("/cap/red.xml", fixture(RED))
    kit.server.put("/f.atom", atom([{"id": "red", "href": kit.server.url("/cap/red.xml")}]))
    feed = feed_settings("local", kit.server.url("/f.atom"), allow_private=False)
    res = await kit.poller(feed).poll_once()
    assert res.outcome == "error" and res.error and "loopback" in res.error, res
    assert "allow_private" in res.error
    assert sum(kit.server.hits.values()) == 0  # refused before connecting
    health = (await feed_health(kit.h.ctx))["local"]
    assert health["status"] == "failing" and "loopback" in health["last_error"]
    # The same feed allowed to reach private addresses reads it.
    res = await kit.poller(msgspec.structs.replace(feed, allow_private=True)).poll_once()
    assert res.outcome == "ok" and res.counts["accepted"] == 1, res


async def test_a_name_that_resolves_to_loopback_is_refused_at_connect_time(kit: Kit) -> None:
    kit.server.put("/f.atom", atom([]))
    assert kit.server.server is not None
    url = f"http://localhost:{kit.server.server.port}/f.atom"  # a name, not a literal
    res = await kit.poller(feed_settings("byname", url, allow_private=False)).poll_once()
    assert res.outcome == "error" and res.error and "resolves to" in res.error, res
    assert sum(kit.server.hits.values()) == 0
    res = await kit.poller(feed_settings("byname2", url, allow_private=True)).poll_once()
    assert res.outcome == "ok", res


async def test_the_resolver_refuses_any_private_address_of_a_name(kit: Kit) -> None:
    assert kit.server.server is not None
    port = kit.server.server.port
    kit.server.put("/x", b"<feed/>")
    names = {"intranet.test": "127.0.0.1", "metadata.test": "169.254.169.254",
             "office.test": "10.1.2.3", "mapped.test": "::ffff:127.0.0.1"}
    connector = aiohttp.TCPConnector(resolver=PublicOnlyResolver(StaticResolver(names)))
    async with aiohttp.ClientSession(connector=connector) as session:
        for name in names:
            policy = HostPolicy.of("t", f"http://{name}:{port}/x")
            with pytest.raises(FeedRefused, match=f"{name} resolves to"):
                await fetch(session, f"http://{name}:{port}/x", policy=policy, timeout_s=5,
                            max_bytes=1000)
    assert kit.server.hits["/x"] == 0


@pytest.mark.parametrize(("address", "why"), [
    ("127.0.0.1", "loopback"), ("127.8.9.1", "loopback"), ("::1", "loopback"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("10.0.0.7", "private"),
    ("172.16.5.4", "private"), ("192.168.1.1", "private"), ("fd00::1", "private"),
    ("0.0.0.0", "unspecified"), ("::ffff:10.0.0.1", "private"), ("100.64.0.1", "public"),
    ("224.0.0.1", "multicast"),
])
def test_what_is_not_public(address: str, why: str) -> None:
    assert why in (not_public(address) or "")
    assert not_public("202.96.134.133") is None and not_public("2400:da00::6666") is None


# --------------------------------------------------------------------- hosts and redirects


async def test_an_entry_link_to_another_host_is_refused_and_not_tried_again(kit: Kit) -> None:
    assert kit.server.server is not None
    port = kit.server.server.port
    kit.server.put("/cap/red.xml", fixture(RED))
    kit.server.put("/cap/geo.xml", fixture("geohazard-orange.xml"))
    # The same server under another name: another host as far as the feed may know.
    kit.server.put("/f.atom", atom([
        {"id": "red", "href": f"http://localhost:{port}/cap/red.xml"},
        {"id": "geo", "href": kit.server.url("/cap/geo.xml")},
    ]))
    poller = kit.poller(feed_settings("hosts", kit.server.url("/f.atom"), senders=(
        "430623@qx.example.cn", "430623@zrzy.example.cn")))
    with capture_logs() as logs:
        res = await poller.poll_once()
    assert res.outcome == "ok" and res.counts["rejected"] == 1 and res.counts["accepted"] == 1
    refused = next(e for e in logs if e["event"] == "feed entry refused")
    assert "localhost is not one the feed may fetch from" in refused["error"]
    assert kit.server.hits["/cap/red.xml"] == 0 and kit.server.hits["/cap/geo.xml"] == 1
    assert not await kit.h.ctx.store.campaign_of(parse_cap(fixture(RED)).alert_id)
    kit.server.put("/f.atom", atom([{"id": "red", "href": f"http://localhost:{port}/cap/red.xml"},
                                    {"id": "geo", "href": kit.server.url("/cap/geo.xml")}]),
                   etag='"2"')
    res = await poller.poll_once()
    assert res.counts["seen"] == 0  # a refused link is a definite outcome

    # Named in allowed_hosts, the other host is fetched.
    feed = feed_settings("hosts2", kit.server.url("/f.atom"),
                         allowed_hosts=("127.0.0.1", "localhost"))
    res = await kit.poller(feed).poll_once()
    assert res.counts["accepted"] == 1 and kit.server.hits["/cap/red.xml"] == 1, res


def _redirect(to: str) -> web.Response:
    return web.Response(status=302, headers={"Location": to})


@pytest_asyncio.fixture
async def redirector() -> AsyncIterator[tuple[str, dict[str, str], list[str]]]:
    """A server on 127.0.0.1 whose /go/{name} redirects where the test says; logs paths."""
    targets: dict[str, str] = {}
    hits: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        hits.append(request.path)
        name = request.match_info["name"]
        if name in targets:
            return _redirect(targets[name])
        return web.Response(body=atom([]), content_type="application/atom+xml")

    app = web.Application()
    app.router.add_get("/go/{name}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", targets, hits
    await runner.cleanup()


@pytest.mark.parametrize("target", [
    "http://169.254.169.254/latest/meta-data/", "http://10.1.2.3/cap.xml",
    "http://127.0.0.2:6379/", "http://localhost/", "https://attacker.example.com/cap.xml",
    "file:///etc/passwd",
])
async def test_a_redirect_off_the_allowed_hosts_is_refused(
    redirector: tuple[str, dict[str, str], list[str]], target: str,
) -> None:
    base, targets, hits = redirector
    targets["a"] = target
    # The first hop is allowed (127.0.0.1, private allowed for the test server); the
    # redirect's host is not: refused before any connection to it.
    policy = HostPolicy.of("r", base, allow_private=True)
    async with aiohttp.ClientSession() as session:
        with pytest.raises(FeedRefused, match=r"only http|is not one the feed may fetch"):
            await fetch(session, f"{base}/go/a", policy=policy, timeout_s=5, max_bytes=10_000)
    assert hits == ["/go/a"]


async def test_each_redirect_hop_is_judged_like_the_first(
    redirector: tuple[str, dict[str, str], list[str]],
) -> None:
    base, targets, hits = redirector
    # Two allowed hops, then a private literal: the first two are followed, the third not.
    targets["a"] = f"{base}/go/b"
    targets["b"] = "http://192.168.0.1/admin"
    policy = HostPolicy.of("r", base, ("127.0.0.1", "192.168.0.1"), allow_private=True)
    async with aiohttp.ClientSession() as session:
        strict = HostPolicy(policy.feed, policy.hosts, allow_private=False)
        with pytest.raises(FeedRefused, match=r"192\.168\.0\.1 is a private address"):
            # The first hop (127.0.0.1) passes only because this session does not judge
            # addresses; the literal private hop is judged by the policy itself.
            await fetch(session, f"{base}/go/a", policy=_first_hop_free(strict, base),
                        timeout_s=5, max_bytes=10_000)
    assert hits == ["/go/a", "/go/b"]
    targets["b"] = f"{base}/go/c"
    async with aiohttp.ClientSession() as session:
        got = await fetch(session, f"{base}/go/a", policy=policy, timeout_s=5, max_bytes=10_000)
    assert b"<feed" in got.body and hits[-3:] == ["/go/a", "/go/b", "/go/c"]
    targets["c"] = f"{base}/go/a"  # a loop: bounded
    async with aiohttp.ClientSession() as session:
        with pytest.raises(Exception, match="more than 5 redirects"):
            await fetch(session, f"{base}/go/a", policy=policy, timeout_s=5, max_bytes=10_000)


def _first_hop_free(policy: HostPolicy, base: str) -> HostPolicy:
    """The policy, except that URLs under `base` (the test server) are let through."""

    class _P(HostPolicy):
        def check_url(self, url: str) -> None:
            if not url.startswith(base + "/"):
                super().check_url(url)

    return _P(policy.feed, policy.hosts, policy.allow_private)


def test_allowed_hosts_are_checked_at_start_up() -> None:
    with pytest.raises(msgspec.ValidationError, match="does not hold the feed URL's host"):
        msgspec.convert({"name": "x", "url": "https://cap.example.cn/f.atom",
                         "allowed_hosts": ["files.example.cn"]}, FeedSettings)
    ok = msgspec.convert({"name": "x", "url": "https://cap.example.cn/f.atom",
                          "allowed_hosts": ["*.example.cn"]}, FeedSettings)
    policy = HostPolicy.of(ok.name, ok.url, ok.allowed_hosts)
    assert policy.allows_host("files.example.cn") and not policy.allows_host("example.cn.evil")
    assert HostPolicy.of("d", "https://Cap.Example.cn:8443/f").hosts == ("cap.example.cn",)
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"name": "x", "url": "https://a/", "allowed_hosts": ["a/b"]},
                        FeedSettings)


# --------------------------------------------------------------------- upstream words


async def test_upstream_words_never_reach_healthz(kit: Kit) -> None:
    secret = "S3CRET-UPSTREAM-TEXT"

    kit.server.put("/teapot", f"<p>{secret}</p>".encode(), status=502, reason=f"Bad {secret}")
    cases = {
        "/teapot": "HTTP 502 Bad Gateway",
        "/html.atom": "HTML page",
        "/root.atom": "expected an Atom <feed>",
        "/broken.atom": "not readable XML",
    }
    kit.server.put("/html.atom", f"<html><title>{secret}</title></html>".encode())
    kit.server.put("/root.atom", f"<{secret}/>".encode())
    kit.server.put("/broken.atom", f"<feed><{secret}></x></feed>".encode())
    for n, (path, words) in enumerate(cases.items()):
        url = kit.server.url(path)
        res = await kit.poller(feed_settings(f"up{n}", url)).poll_once()
        assert res.outcome == "error" and res.error and words in res.error, res
        health = (await feed_health(kit.h.ctx))[f"up{n}"]
        assert secret not in str(health) and words in health["last_error"], health


def test_stored_error_texts_are_bounded_and_printable() -> None:
    text = public_text("a\x00b\x1b[31m\n" + "界" * 1000)
    assert len(text) == 300 and text.isprintable() and text.endswith("…")
    assert public_text("HTTP 500  Internal\tServer Error") == "HTTP 500 Internal Server Error"


async def test_trusting_the_carried_certificate_is_logged(kit: Kit) -> None:
    feed = feed_settings("carried", kit.server.url("/f.atom"), signature="require",
                         trust_carried_certificate=True)
    with capture_logs() as logs:
        kit.poller(feed)
    [warning] = [e for e in logs if e["log_level"] == "warning"]
    assert warning["feed"] == "carried" and "anyone can sign" in warning["event"]
