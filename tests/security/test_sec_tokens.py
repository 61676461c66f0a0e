"""Feed tokens: only inside their scope, revoked ones fail at once, stored only as sha256."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from seckit import FEED, OFFICER, REVOKED, WIDE, auth, cap_xml

from warnbus.errors import ConfigError
from warnbus.runtime.app import token_hash
from warnbus.runtime.config import load_settings


async def test_scope_region_and_category(api_client: Any) -> None:
    client, _h = api_client
    inside = cap_xml("T-1", ("430623101000",))
    r = await client.post("/api/v1/alerts", data=inside, headers=auth(FEED))
    assert r.status == 202, await r.text()
    outside = cap_xml("T-2", ("430623105000",))
    r = await client.post("/api/v1/alerts", data=outside, headers=auth(FEED))
    err = (await r.json())["error"]
    assert r.status == 403 and err["code"] == "forbidden" and "430623101" in err["message"]
    geo = cap_xml("T-3", ("430623101000",)).replace(b"<category>Met", b"<category>Geo")
    r = await client.post("/api/v1/alerts", data=geo, headers=auth(FEED))
    assert r.status == 403 and "category" in (await r.json())["error"]["message"]
    # An officer token may not publish; a feed token may not read campaigns.
    r = await client.post("/api/v1/alerts", data=cap_xml("T-4", ("430623101000",)),
                          headers=auth(OFFICER))
    assert r.status == 403
    r = await client.get("/api/v1/alerts/al_x", headers=auth(FEED))
    assert r.status == 403


async def test_revocation_takes_effect_on_the_next_request(api_client: Any) -> None:
    client, h = api_client
    r = await client.post("/api/v1/alerts", data=cap_xml("T-5", ("430623101000",)),
                          headers=auth(REVOKED))
    assert r.status == 401 and "revoked" in (await r.json())["error"]["message"]
    r = await client.post("/api/v1/alerts", data=cap_xml("T-6", ("430623101000",)),
                          headers=auth(WIDE))
    assert r.status == 202
    # Revoke the county token in the running app: the very next request fails.
    h.app.tokens = tuple(msgspec.structs.replace(t, revoked=True) if t.name == "county" else t
                         for t in h.app.tokens)
    r = await client.post("/api/v1/alerts", data=cap_xml("T-7", ("430623101000",)),
                          headers=auth(WIDE))
    assert r.status == 401
    r = await client.post("/api/v1/alerts", data=cap_xml("T-7", ("430623101000",)),
                          headers={"Content-Type": "application/cap+xml",
                                   "Authorization": "Bearer " + token_hash(WIDE)})
    assert r.status == 401, "the stored hash is not itself a credential"


async def test_tokens_are_stored_hashed_nowhere_in_clear(api_client: Any, tmp_path: Path) -> None:
    client, h = api_client
    for t in h.app.tokens:
        assert len(t.sha256) == 64 and all(c in "0123456789abcdef" for c in t.sha256)
        assert not hasattr(t, "token")
    for token in (FEED, WIDE, OFFICER):
        await client.post("/api/v1/alerts", data=cap_xml("T-8", ("430623101000",)),
                          headers=auth(token))
    await h.drain()
    dump = b""
    async for k in h.ctx.redis.scan_iter():
        dump += k
        kind = (await h.ctx.redis.type(k)).decode()
        if kind == "hash":
            dump += b"".join(x for kv in (await h.ctx.redis.hgetall(k)).items() for x in kv)
        elif kind == "string":
            dump += await h.ctx.redis.get(k) or b""
    for token in (FEED, WIDE, OFFICER):
        assert token.encode() not in dump, "no token in clear in Redis"
    # The configuration takes a hash only: a clear-text token is an unknown key, an error.
    cfg = tmp_path / "w.toml"
    cfg.write_text('[[tokens]]\nname = "met"\ntoken = "s3cret"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="token"):
        load_settings(cfg, env={})
