"""The attack run's 100,000-character headline over HTTP: refused at once, nothing created.

On main it was accepted, and fitting it to SMS and voice held the event loop for 33 s (every
route stalled). Now the parser refuses it (422 naming the field and the limit) before
anything else, in both forms; the engine stays healthy.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from seckit import auth, cap_xml

from warnbus.ingest import alert_to_json, parse_cap
from warnbus.state import keys

HUGE = "暴" * 100_000


def _xml() -> bytes:
    body = cap_xml("T-0", ("430623101000",)).decode()
    start = body.index("<headline>") + len("<headline>")
    end = body.index("</headline>")
    return (body[:start] + HUGE + body[end:]).encode()


def _json() -> bytes:
    alert = json.loads(alert_to_json(parse_cap(cap_xml("T-1", ("430623101000",)))))
    alert["infos"][0]["headline"] = HUGE
    return json.dumps(alert, ensure_ascii=False).encode()


@pytest.mark.parametrize(("make", "ctype"), [(_xml, "application/cap+xml"),
                                             (_json, "application/json")], ids=["xml", "json"])
async def test_a_100k_character_headline_is_refused_at_once(api_client: Any, make: Any,
                                                            ctype: str) -> None:
    client, h = api_client
    body = make()
    start = time.perf_counter()
    r = await client.post("/api/v1/alerts", data=body,
                          headers={**auth(), "Content-Type": ctype})
    took = time.perf_counter() - start
    err = (await r.json())["error"]
    assert (r.status, err["code"]) == (422, "invalid"), err
    assert err["message"].startswith("info[0].headline: 100,000 characters; at most 1,000")
    assert took < 0.5, f"{took:.2f}s"  # the parse takes ~3 ms; the rest is HTTP on a busy box
    assert await h.ctx.redis.zcard(keys.CAMPAIGNS) == 0
    ok = await client.post("/api/v1/alerts", data=cap_xml("T-ok", ("430623101000",)),
                           headers=auth())
    assert ok.status == 202, await ok.text()
