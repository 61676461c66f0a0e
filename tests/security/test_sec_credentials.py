"""Credentials are bound to senders by configuration: what may not start, and what a feed takes.

A token that may publish and names no sender, one that claims any sender ("*") or the
console's own, or a feed without senders, is refused at start-up with a message naming it;
a polled feed takes only its own senders' alerts, counting and logging the others.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from tests.engine.helpers import make_harness
from warnbus.errors import ConfigError
from warnbus.feeds import FeedPoller
from warnbus.ingest import parse_cap
from warnbus.runtime.app import build_app
from warnbus.runtime.config import load_settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "feeds"))
from feedkit import FeedServer, atom, feed_settings, fixture

SHA = "0" * 64
FEED = '[[feeds]]\nname = "qx"\nurl = "https://example.invalid/cap.atom"\n'


async def start(tmp_path: Path, text: str) -> None:
    """Start an engine on `text` as its configuration (nothing listens: it must fail first)."""
    cfg = tmp_path / "warnbus.toml"
    cfg.write_text('redis_url = "redis://127.0.0.1:9/0"\nmqtt_url = "mqtt://127.0.0.1:9"\n'
                   + text, encoding="utf-8")
    app = await build_app(load_settings(cfg, env={}))
    await app.close()
    raise AssertionError("the engine started")


@pytest.mark.parametrize(("text", "words"), [
    pytest.param(f'[[tokens]]\nname = "met"\nsha256 = "{SHA}"\n',
                 r"tokens\[0\] \(name 'met'\): list the CAP senders", id="feed-token-no-senders"),
    pytest.param(f'[[tokens]]\nname = "root"\nsha256 = "{SHA}"\nroles = ["admin"]\n',
                 r"tokens\[0\] \(name 'root'\): list the CAP senders", id="admin-no-senders"),
    pytest.param(f'[[tokens]]\nname = "all"\nsha256 = "{SHA}"\nsenders = ["*"]\n',
                 r"tokens\[0\] \(name 'all'\): senders = \[\"\*\"\] \(any sender\) is only",
                 id="any-sender"),
    pytest.param(f'[[tokens]]\nname = "x"\nsha256 = "{SHA}"\nsenders = ["a b"]\n',
                 r"'a b' is not a CAP sender", id="malformed-sender"),
    pytest.param(f'[[tokens]]\nname = "squat"\nsha256 = "{SHA}"\n'
                 'senders = ["430623@qx.example.cn", "43062300000000@console.warnbus"]\n',
                 r"tokens\[0\] \(name 'squat'\): '43062300000000@console.warnbus' is the "
                 r"console's own sender", id="console-default-sender"),
    pytest.param('[console]\nsender = "hry@yjj.example.cn"\n'
                 f'[[tokens]]\nname = "squat"\nsha256 = "{SHA}"\n'
                 'senders = ["hry@yjj.example.cn"]\n',
                 r"'hry@yjj.example.cn' is the console's own sender", id="console-sender"),
    pytest.param(FEED, r"feeds\[0\] \(name 'qx'\): list the CAP senders", id="feed-no-senders"),
    pytest.param(FEED + 'senders = ["43062300000000@console.warnbus"]\n',
                 r"feeds\[0\] \(name 'qx'\): .* console's own sender", id="feed-console-sender"),
])
async def test_credentials_that_could_speak_for_others_do_not_start(
        tmp_path: Path, text: str, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        await start(tmp_path, text)


async def test_officer_and_revoked_tokens_need_no_senders(tmp_path: Path, redis_url: str) -> None:
    cfg = tmp_path / "warnbus.toml"
    cfg.write_text(f'redis_url = "{redis_url}"\nmqtt_url = "mqtt://127.0.0.1:9"\n'
                   f'[[tokens]]\nname = "duty"\nsha256 = "{SHA}"\nroles = ["officer"]\n'
                   f'[[tokens]]\nname = "old"\nsha256 = "{"1" * 64}"\nrevoked = true\n'
                   f'[[tokens]]\nname = "met"\nsha256 = "{"2" * 64}"\n'
                   'senders = ["430623@qx.example.cn"]\n', encoding="utf-8")
    app = await build_app(load_settings(cfg, env={}), roles=(), channels={})
    await app.close()


async def test_a_feed_takes_only_its_own_senders_alerts(redis_url: str) -> None:
    """A feed of the bureau whose index (or server) carries another sender's alerts: a river
    bureau's, and a Cancel of the bureau's thread forged under another sender."""
    h = await make_harness(redis_url, start=None)
    server = FeedServer()
    await server.start()
    red = fixture("rainstorm-red.xml")
    forged = fixture("rainstorm-red-cancel.xml").replace(
        b"<sender>430623@qx.example.cn</sender>", b"<sender>430623@sl.example.cn</sender>")
    assert b"<references>430623@qx.example.cn," in forged
    server.put("/cap/red.xml", red)
    server.put("/cap/flood.xml", fixture("flood-circle.xml"))
    server.put("/cap/forged.xml", forged)
    server.put("/f.atom", atom([{"id": n, "href": server.url(f"/cap/{n}.xml")}
                                for n in ("red", "flood", "forged")]))
    feed = feed_settings("qx", server.url("/f.atom"), senders=("430623@qx.example.cn",))
    poller = FeedPoller(h.ctx, feed)
    try:
        with capture_logs() as logs:
            res = await poller.poll_once()
        assert (res.counts["accepted"], res.counts["rejected"]) == (1, 2), res
        rejected = [e for e in logs if e["event"] == "feed alert rejected"]
        assert [e["code"] for e in rejected] == ["forbidden", "forbidden"]
        assert all(e["error"].startswith("sender: feed qx may not publish as sender "
                                         "'430623@sl.example.cn'") for e in rejected), rejected
        cid = await h.ctx.store.campaign_of(parse_cap(red).alert_id)
        assert cid and not await h.ctx.store.campaign_of(parse_cap(forged).alert_id)
        assert not await h.ctx.store.campaign_of(parse_cap(fixture("flood-circle.xml")).alert_id)
        await h.drain()
        meta = await h.ctx.store.meta(cid)
        assert meta and meta.state == "active"
    finally:
        await poller.aclose()
        await server.close()
        await h.app.close()
