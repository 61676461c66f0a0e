"""Bad input over HTTP: XML attacks and semantic nonsense get the documented 4xx, nothing crashes.

The parsers' own tests (tests/ingest) cover the XML defences and fuzzing at the function level;
these go through the real HTTP stack, where a body is also bounded in size, and check what the
contract promises: the status and error code, a message naming the problem, no campaign
created, and the engine still healthy and accepting good alerts afterwards.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from seckit import auth, cap_xml

from warnbus.state import keys

GOOD = cap_xml("B-0", ("430623101000",)).decode()
DECL = '<?xml version="1.0" encoding="UTF-8"?>'
LAUGHS = ('<!DOCTYPE alert [<!ENTITY lol "lol">' + "".join(
    f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
    for i in range(1, 10)) + "]>")


def doctype(dt: str, entity: str = "") -> bytes:
    body = GOOD.replace(DECL, DECL + dt, 1)
    return body.replace("<event>暴雨", f"<event>暴雨{entity}").encode()


ATTACKS = [
    pytest.param(doctype(LAUGHS, "&lol9;"), 400, "malformed", id="billion-laughs"),
    pytest.param(doctype('<!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>', "&x;"),
                 400, "malformed", id="xxe-file"),
    pytest.param(doctype('<!DOCTYPE alert [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>', "&x;"),
                 400, "malformed", id="xxe-network"),
    pytest.param(doctype('<!DOCTYPE alert SYSTEM "http://127.0.0.1:9/cap.dtd">'), 400,
                 "malformed", id="external-dtd"),
    pytest.param(doctype("<!DOCTYPE alert []>"), 400, "malformed", id="internal-dtd"),
    pytest.param(GOOD.replace("<senderName>", '<xi:include xmlns:xi="http://www.w3.org/2001/'
                              'XInclude" href="/etc/passwd" parse="text"/><senderName>').encode(),
                 400, "malformed", id="xinclude"),
    pytest.param(b"<alert>" * 200_000, 400, "malformed", id="deeply-nested"),
    pytest.param(GOOD.replace("</alert>", "<x:a xmlns:x='urn:x'>" + "<b>" * 5000 + "</b>" * 5000
                              + "</x:a></alert>").encode(), 400, "malformed",
                 id="nested-extension"),
    pytest.param(b"\xff\xfe\x00<", 400, "malformed", id="binary"),
    pytest.param(GOOD.replace("<description>", "<description>" + "长" * 2_000_000).encode(), 413,
                 "too_large", id="oversized"),
]


async def _healthy(client: Any, h: Any) -> None:
    """Nothing was created, and a good alert is still accepted."""
    assert await h.ctx.redis.zcard(keys.CAMPAIGNS) == 0
    r = await client.post("/api/v1/alerts", data=cap_xml("B-ok", ("430623101000",)),
                          headers=auth())
    assert r.status == 202, await r.text()


@pytest.mark.parametrize(("body", "status", "code"), ATTACKS)
async def test_xml_attacks_over_http(api_client: Any, body: bytes, status: int, code: str) -> None:
    client, h = api_client
    t = time.perf_counter()
    r = await client.post("/api/v1/alerts", data=body, headers=auth())
    took = time.perf_counter() - t
    err = (await r.json())["error"]
    assert (r.status, err["code"]) == (status, code), err
    assert err["message"] and "root:" not in err["message"]
    assert took < 3.0, took
    await _healthy(client, h)


async def test_chunked_oversized_body_without_length_is_413(api_client: Any) -> None:
    client, h = api_client

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(80):
            yield b"<!-- " + b"x" * 65_536 + b" -->"

    r = await client.post("/api/v1/alerts", data=chunks(), headers=auth())
    assert r.status == 413 and (await r.json())["error"]["code"] == "too_large"
    await _healthy(client, h)


def _swap(old: str, new: str) -> bytes:
    assert old in GOOD
    return GOOD.replace(old, new).encode()


AREA = "<area><areaDesc>华容县</areaDesc>"
NONSENSE = [
    pytest.param(_swap("<expires>", "<expires>2001-01-01T00:00:00+00:00</expires><x>"),
                 None, id="expires-before-sent"),
    pytest.param(_swap(AREA, AREA + "<polygon>29.4,112.4 29.6,112.4 29.6,112.6 29.4,112.6"
                       "</polygon>"), "polygon", id="polygon-not-closed"),
    pytest.param(_swap(AREA, AREA + "<polygon>29.4,112.4 29.6,112.4 29.4,112.4</polygon>"),
                 "polygon", id="polygon-too-short"),
    pytest.param(_swap(AREA, AREA + "<circle>29.5,112.5 -3</circle>"), "circle",
                 id="negative-radius"),
    pytest.param(_swap(AREA, AREA + "<polygon>95.0,112.4 29.6,112.4 29.6,112.6 95.0,112.4"
                       "</polygon>"), "polygon", id="latitude-out-of-range"),
]


@pytest.mark.parametrize(("body", "field"), NONSENSE)
async def test_semantic_nonsense_is_422_naming_the_field(
    api_client: Any, body: bytes, field: str | None
) -> None:
    client, h = api_client
    if b"<x>" in body:  # expires before sent: drop the doubled tag the swap left
        body = body.replace(b"<x>", b"", 1)
        body = body.replace(b"</expires>", b"", 1)
    r = await client.post("/api/v1/alerts", data=body, headers=auth())
    err = (await r.json())["error"]
    assert r.status == 422 and err["code"] == "invalid", err
    if field:
        assert field in err["message"], err
    await _healthy(client, h)


async def test_unknown_reference_and_cancel_of_another_senders_alert(api_client: Any) -> None:
    client, h = api_client
    r = await client.post("/api/v1/alerts", data=cap_xml("B-1", ("430623101000",)),
                          headers=auth())
    assert r.status == 202
    await h.drain()
    ghost = cap_xml("B-2", ("430623101000",), msg_type="Update",
                    references="430623@qx.example.cn,NOPE,2026-01-01T00:00:00+00:00")
    r = await client.post("/api/v1/alerts", data=ghost, headers=auth())
    err = (await r.json())["error"]
    assert r.status == 422 and err["code"] == "unknown_reference" and "references" in err["message"]
    # Another sender tries to cancel it (a real reference to a real alert): a sender the
    # token does not speak for is refused before anything is looked up.
    intruder = cap_xml("B-3", ("430623101000",), msg_type="Cancel", sender="evil@x.example",
                       references="430623@qx.example.cn,B-1,2026-01-01T00:00:00+00:00")
    r = await client.post("/api/v1/alerts", data=intruder, headers=auth())
    err = (await r.json())["error"]
    assert r.status == 403 and err["message"].startswith("sender:"), err
    states = {getattr(await h.ctx.store.meta(c), "state", None)
              for c in [m.decode() for m in await h.ctx.redis.zrange(keys.CAMPAIGNS, 0, -1)]}
    assert states == {"active"}, "the campaign was not cancelled"


async def test_geocodes_outside_the_registry_are_422_naming_them(api_client: Any) -> None:
    """Decision: an Alert none of whose areas holds a grid of the registry is refused.

    Accepted with 0 targets (the earlier decision), a mistyped code was indistinguishable
    from an alert for another county, and nobody learnt of it. Refused with 422
    `outside_registry`, the sender learns at once; a feed poller records it as "not ours".
    """
    client, h = api_client
    r = await client.post("/api/v1/alerts", data=cap_xml("B-4", ("110101001000",)),
                          headers=auth())
    err = (await r.json())["error"]
    assert (r.status, err["code"]) == (422, "outside_registry"), err
    msg = err["message"]
    assert msg.startswith("info.area: no grid of the registry lies in any area of this alert")
    assert "info[0].area[0] geocode 110101001000 (华容县)" in msg, msg
    assert "This engine serves 430623000000 华容县" in msg, msg
    # An area with nothing to match at all.
    body = cap_xml("B-5", ()).replace(b"<areaDesc>", b"<areaDesc>nowhere ")
    r = await client.post("/api/v1/alerts", data=body, headers=auth())
    err = (await r.json())["error"]
    assert r.status == 422 and "no polygon, circle or geocode (nowhere 华容县)" in err["message"]
    await _healthy(client, h)


async def test_an_alert_partly_outside_the_registry_is_accepted_with_warnings(
    api_client: Any,
) -> None:
    """Decision: one mistyped area must not delay the warning to the others.

    Accepted, sent to the grids of the good areas; the 202 names the area that matched nothing.
    """
    client, h = api_client
    body = cap_xml("B-6", ("430623101000",)).replace(
        b"</area>", b"</area><area><areaDesc>typo</areaDesc><geocode><valueName>TOWNSHIP"
        b"</valueName><value>430699101000</value></geocode></area>"
        b"<area><areaDesc>sea</areaDesc><circle>10.0,120.0 5</circle></area>")
    r = await client.post("/api/v1/alerts", data=body, headers=auth())
    res = await r.json()
    assert r.status == 202 and res["targets"] > 0, res
    assert [(w["code"], w["field"]) for w in res["warnings"]] == [
        ("area_outside_registry", "info[0].area[1]"),
        ("area_outside_registry", "info[0].area[2]")]
    assert "geocode 430699101000 (typo)" in res["warnings"][0]["message"]
    assert "circle 10,120 5 km (sea)" in res["warnings"][1]["message"]
    # A fully matched alert says nothing more than the contract's three fields.
    r = await client.post("/api/v1/alerts", data=cap_xml("B-7", ("430623102000",)),
                          headers=auth())
    assert set(await r.json()) == {"alert_id", "campaign_id", "targets"}
    await h.drain()
    assert h.sent(), "the good area was warned"


async def test_an_update_moving_out_of_the_registry_is_refused_and_a_cancel_is_not(
    api_client: Any,
) -> None:
    client, h = api_client
    r = await client.post("/api/v1/alerts", data=cap_xml("B-8", ("430623101000",)),
                          headers=auth())
    assert r.status == 202
    cid = (await r.json())["campaign_id"]
    ref = "430623@qx.example.cn,B-8,2026-01-01T00:00:00+00:00"
    upd = cap_xml("B-9", ("440000",), msg_type="Update", references=ref)
    r = await client.post("/api/v1/alerts", data=upd, headers=auth())
    err = (await r.json())["error"]
    assert (r.status, err["code"]) == (422, "outside_registry"), err
    assert "carries on with its earlier areas" in err["message"]
    await h.drain()
    meta = await h.ctx.store.meta(cid)
    assert meta and meta.state == "active" and meta.latest == meta.root, meta
    cancel = cap_xml("B-10", ("440000",), msg_type="Cancel", references=ref)
    r = await client.post("/api/v1/alerts", data=cancel, headers=auth())
    assert r.status == 202, await r.text()
    await h.drain()
    meta = await h.ctx.store.meta(cid)
    assert meta and meta.state == "cancelled"


async def test_a_geohazard_alert_inside_the_registry_with_no_hazard_point_is_accepted(
    api_client: Any,
) -> None:
    """Inside the registry but no grid of the hazard's tag: accepted, 0 targets, no warning."""
    client, _h = api_client
    body = cap_xml("B-11", ("430623101000",)).replace(  # township 101 has no hazard point
        "<event>暴雨</event>".encode(), "<event>地质灾害</event>".encode())
    assert "地质灾害".encode() in body
    r = await client.post("/api/v1/alerts", data=body, headers=auth())
    res = await r.json()
    assert r.status == 202 and res["targets"] == 0 and "warnings" not in res, res


async def test_self_intersecting_polygon_is_422_naming_the_field(api_client: Any) -> None:
    """Decision: a polygon that crosses itself is refused, not repaired.

    Which side of a bow-tie is "inside" is a guess, and the guess decides who is called at
    night. Refused with the field and the point where it crosses, the sender redraws it.
    """
    client, h = api_client
    bowtie = _swap(AREA, "<area><areaDesc>bow</areaDesc><polygon>29.35,112.35 29.75,112.85 "
                   "29.75,112.35 29.35,112.85 29.35,112.35</polygon>")
    r = await client.post("/api/v1/alerts", data=bowtie, headers=auth())
    err = (await r.json())["error"]
    assert (r.status, err["code"]) == (422, "invalid"), err
    assert err["message"].startswith(
        "info[0].area[0].polygon[0]: the polygon crosses itself near (29.55, 112.6)"), err
    await _healthy(client, h)


async def test_a_100k_area_alert_is_413_at_once(api_client: Any) -> None:
    """100,000 <area> elements in 3.5 MB (under the size limit): refused before matching."""
    client, h = api_client
    many = GOOD.replace(AREA, "<area><areaDesc>a</areaDesc></area>" * 100_000 + AREA).encode()
    assert len(many) < h.app.settings.server.max_body_bytes
    t = time.perf_counter()
    r = await client.post("/api/v1/alerts", data=many, headers=auth())
    took = time.perf_counter() - t
    err = (await r.json())["error"]
    assert (r.status, err["code"]) == (413, "too_large"), err
    assert err["message"] == (
        "info[0].area: the alert has 100,001 areas; at most 1,000 are accepted in one alert "
        "(setting server.max_areas): split it, or send the areas this engine serves")
    assert took < 3.0, took
    await _healthy(client, h)
    print("FIGURES", {"test": "100k-areas", "status": r.status, "seconds": round(took, 2)})


async def test_json_with_invalid_utf8_is_400_not_500(api_client: Any) -> None:
    """Found by the fuzz run: msgspec raised UnicodeDecodeError for a non-UTF-8 JSON string."""
    client, h = api_client
    headers = {**auth(), "Content-Type": "application/json"}
    r = await client.post("/api/v1/alerts", data=b'{"identifier": "\x80"}', headers=headers)
    err = (await r.json())["error"]
    assert (r.status, err["code"]) == (400, "malformed"), err
    assert err["message"] == "not valid JSON: the body is not UTF-8: byte 0x80 at offset 16"
    await _healthy(client, h)
