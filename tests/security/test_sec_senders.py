"""A credential speaks for its own CAP senders only (issue 14, item 1).

What an attack run did with a feed token scoped to one township, and must no longer work: cancel
and rewrite the county's red warning by naming the bureau's sender, squat the identifier the
bureau would use next, learn another sender's campaign from a duplicate reply; and, with a
token of the bureau's own sender but one township's scope, end or rewrite a county-wide thread.
Every refusal is 403 and leaves the campaign exactly as it was.
"""

from __future__ import annotations

from typing import Any

from seckit import FEED, SENDER, TOWN, TOWN_SENDER, WIDE, auth, cap_xml

from warnbus.flow.credentials import console_sender
from warnbus.flow.intake import campaign_id_for
from warnbus.ingest import parse_cap
from warnbus.runtime.app import token_hash
from warnbus.runtime.config import ANY_SENDER, TokenSettings
from warnbus.state import keys

COUNTY = ("430623000000",)  # the whole county: 13 townships
TOWNSHIP = ("430623101000",)
API = "/api/v1/alerts"


def ref(identifier: str, sender: str = SENDER) -> str:
    return f"{sender},{identifier},2026-01-01T00:00:00+00:00"


async def snapshot(h: Any, cid: str) -> tuple[Any, ...]:
    """Everything a Cancel or Update would change in a campaign, and the engine's queues."""
    ck = keys.campaign(cid)
    r = h.ctx.redis
    return (await r.hgetall(ck.meta), await r.hlen(ck.targets), await r.hgetall(ck.dstate),
            await r.hgetall(ck.tstate), await r.hgetall(ck.grids), await r.xlen(ck.audit),
            await r.hkeys(ck.alerts), await r.zcard(keys.CAMPAIGNS),
            await r.zcard(keys.MESSAGES))


async def county_red(client: Any, h: Any, identifier: str = "Q-1") -> str:
    """The bureau's county-wide red warning, accepted and sent; its campaign id."""
    r = await client.post(API, data=cap_xml(identifier, COUNTY), headers=auth(WIDE))
    assert r.status == 202, await r.text()
    await h.drain()
    cid: str = (await r.json())["campaign_id"]
    meta = await h.ctx.store.meta(cid)
    assert meta and meta.state == "active"
    return cid


async def refused(client: Any, body: bytes, token: str) -> dict[str, str]:
    r = await client.post(API, data=body, headers=auth(token))
    got = await r.json()
    assert r.status == 403 and set(got) == {"error"}, got
    assert got["error"]["code"] == "forbidden"
    return got["error"]  # type: ignore[no-any-return]


async def test_another_senders_thread_cannot_be_cancelled_or_updated(api_client: Any) -> None:
    client, h = api_client
    cid = await county_red(client, h)
    before = await snapshot(h, cid)
    attempts = [
        # The attack as it was: the body names the bureau's sender.
        (cap_xml("X-1", TOWNSHIP, msg_type="Cancel", references=ref("Q-1")), "sender:"),
        (cap_xml("X-2", TOWNSHIP, msg_type="Update", references=ref("Q-1")), "sender:"),
        # Under its own sender, referencing the bureau's thread.
        (cap_xml("X-3", TOWNSHIP, msg_type="Cancel", sender=TOWN_SENDER,
                 references=ref("Q-1")), "references[0]:"),
        (cap_xml("X-4", TOWNSHIP, msg_type="Update", sender=TOWN_SENDER,
                 references=ref("Q-1")), "references[0]:"),
        # Its own alert listed first does not smuggle the bureau's in.
        (cap_xml("X-5", TOWNSHIP, msg_type="Cancel", sender=TOWN_SENDER,
                 references=ref("T-0", TOWN_SENDER) + " " + ref("Q-1")), "references[1]:"),
    ]
    for body, field in attempts:
        err = await refused(client, body, TOWN)
        assert err["message"].startswith(field), err
    await h.drain()
    assert await snapshot(h, cid) == before, "the campaign was not touched"


async def test_a_squatted_identifier_does_not_preempt_the_real_alert(api_client: Any) -> None:
    client, h = api_client
    nxt = "43062304100000_20260715060000_1"  # the identifier the bureau would use next
    squat = cap_xml(nxt, TOWNSHIP).replace(b"<severity>Extreme", b"<severity>Minor").replace(
        "红色".encode(), "蓝色".encode())
    await refused(client, squat, TOWN)
    assert await h.ctx.redis.zcard(keys.CAMPAIGNS) == 0
    # Under its own sender the same identifier is another alert: no collision with the bureau.
    r = await client.post(API, data=squat.replace(SENDER.encode(), TOWN_SENDER.encode()),
                          headers=auth(TOWN))
    own = await r.json()
    assert r.status == 202, own
    real = cap_xml(nxt, COUNTY)
    r = await client.post(API, data=real, headers=auth(WIDE))
    got = await r.json()
    assert r.status == 202, got
    assert got["campaign_id"] == campaign_id_for(parse_cap(real)) != own["campaign_id"]
    await h.drain()
    meta = await h.ctx.store.meta(got["campaign_id"])
    assert meta and meta.level == "red"


async def test_duplicates_and_references_reveal_nothing_of_another_sender(api_client: Any) -> None:
    client, h = api_client
    body = cap_xml("Q-2", COUNTY)
    r = await client.post(API, data=body, headers=auth(WIDE))
    assert r.status == 202
    # The same bytes from a token that does not speak for the bureau: no ids, no "duplicate".
    err = await refused(client, body, TOWN)
    assert "al_" not in err["message"] and "cp_" not in err["message"]
    # A reference to another sender's alert: the same reply whether or not that alert exists.
    replies = []
    for target in ("Q-2", "NEVER-SENT"):
        cancel = cap_xml("X-6", TOWNSHIP, msg_type="Cancel", sender=TOWN_SENDER,
                         references=ref(target))
        replies.append(await refused(client, cancel, TOWN))
    assert replies[0] == replies[1]
    assert await h.ctx.redis.zcard(keys.CAMPAIGNS) == 1


async def test_own_senders_county_thread_is_beyond_a_township_token(api_client: Any) -> None:
    """FEED speaks for the bureau but only for township 430623101: the bureau's county-wide
    thread is beyond it, whatever areas its own Update or Cancel names; its own township
    thread is not."""
    client, h = api_client
    cid = await county_red(client, h)
    before = await snapshot(h, cid)
    for kind in ("Cancel", "Update"):
        err = await refused(client, cap_xml(f"F-{kind}", TOWNSHIP, msg_type=kind,
                                            references=ref("Q-1")), FEED)
        assert err["message"].startswith("references: the thread this") and (
            "outside the regions of met (430623101)" in err["message"]), err
    # A thread accepted before reaches were kept is judged by what its messages reach.
    await h.ctx.redis.delete(keys.campaign(cid).reach)
    await refused(client, cap_xml("F-3", TOWNSHIP, msg_type="Cancel", references=ref("Q-1")),
                  FEED)
    await h.drain()
    assert await snapshot(h, cid) == before
    # Positive control: its own township thread it may update and cancel.
    r = await client.post(API, data=cap_xml("F-own", TOWNSHIP), headers=auth(FEED))
    assert r.status == 202, await r.text()
    for n, kind in enumerate(("Update", "Cancel")):
        r = await client.post(API, data=cap_xml(f"F-own-{n}", TOWNSHIP, msg_type=kind,
                                                references=ref("F-own")), headers=auth(FEED))
        assert r.status == 202, await r.text()


async def test_a_thread_of_another_category_is_beyond_a_met_token(api_client: Any) -> None:
    client, h = api_client
    r = await client.post(API, data=geohazard(cap_xml("G-1", TOWNSHIP)), headers=auth(WIDE))
    assert r.status == 202, await r.text()
    cid = (await r.json())["campaign_id"]
    await h.drain()
    before = await snapshot(h, cid)
    err = await refused(client, cap_xml("G-2", TOWNSHIP, msg_type="Cancel",
                                        references=ref("G-1")), FEED)
    assert "category Geo" in err["message"], err
    await h.drain()
    assert await snapshot(h, cid) == before


def geohazard(body: bytes) -> bytes:
    """The red rainstorm as a 地质灾害 warning that still declares <category>Met."""
    return body.replace("<event>暴雨".encode(), "<event>地质灾害".encode())


async def test_category_is_judged_by_the_hazard_that_is_sent(api_client: Any) -> None:
    client, h = api_client
    err = await refused(client, geohazard(cap_xml("C-1", TOWNSHIP)), FEED)
    assert err["message"].startswith("info[0].event: 地质灾害"), err
    assert "category Geo" in err["message"]
    # By event code: the text says 地质灾害 and declares Geo, the code says 暴雨 (11B03),
    # which is what the templates would send. A Geo-only token may not send it.
    h.app.tokens += (TokenSettings("geo", token_hash("geo-token"), senders=(SENDER,),
                                   categories=("Geo",)),)
    coded = geohazard(cap_xml("C-2", TOWNSHIP)).replace(b"<category>Met", b"<category>Geo")
    coded = coded.replace(b"</certainty>", b"</certainty><eventCode><valueName>GB/T 35561"
                          b"</valueName><value>11B03</value></eventCode>")
    err = await refused(client, coded, "geo-token")
    assert err["message"].startswith("info[0].event: 地质灾害 is a 暴雨 warning"), err
    assert await h.ctx.redis.zcard(keys.CAMPAIGNS) == 0
    # Positive control: the Met token's rainstorm goes out.
    r = await client.post(API, data=cap_xml("C-3", TOWNSHIP), headers=auth(FEED))
    assert r.status == 202, await r.text()


# Inside grid 430623101001-01 of township 430623101.
INSIDE = "<polygon>29.672,112.505 29.679,112.505 29.679,112.52 29.672,112.505</polygon>"


def with_areas(body: bytes, areas: str) -> bytes:
    return body.replace("<area><areaDesc>华容县</areaDesc></area>".encode(), areas.encode())


async def test_an_area_outside_the_regions_is_refused_by_its_geocode(api_client: Any) -> None:
    """Refused before any geometry or matching: the message is the geocode check's, naming
    the area, not one about a matched grid (which matching would have given)."""
    client, h = api_client
    areas = "".join(f"<area><areaDesc>p{k}</areaDesc>{INSIDE}</area>" for k in range(999))
    areas += ("<area><areaDesc>另一个乡镇</areaDesc><geocode><valueName>TOWNSHIP</valueName>"
              "<value>430623105000</value></geocode></area>")
    err = await refused(client, with_areas(cap_xml("A-1", ()), areas), FEED)
    assert err["message"] == ("info[0].area[999]: the geocode of region 430623105 is outside "
                              "the regions of met (430623101)"), err
    # A polygon's geocodes are context, often the issuing county: one that shares nothing
    # with the regions refuses it at once; the county's own code leaves it to its grids.
    for code, status in (("441900", 403), ("430623", 202)):
        area = (f"<area><areaDesc>p</areaDesc>{INSIDE}<geocode><valueName>GB/T 2260"
                f"</valueName><value>{code}</value></geocode></area>")
        r = await client.post(API, data=with_areas(cap_xml(f"A-{code}", ()), area),
                              headers=auth(FEED))
        got = await r.json()
        assert r.status == status, got
    assert got["targets"] > 0
    assert await h.ctx.redis.zcard(keys.CAMPAIGNS) == 1


async def test_the_local_token_speaks_for_anyone_but_the_console(api_client: Any) -> None:
    client, h = api_client
    h.app.tokens += (TokenSettings("local", token_hash("local-token"), roles=("feed",),
                                   senders=(ANY_SENDER,)),)
    console = console_sender(h.ctx.settings, h.ctx.registry)
    assert console == "43062300000000@console.warnbus"
    body = cap_xml("L-1", TOWNSHIP)
    err = await refused(client, body.replace(SENDER.encode(), console.encode()), "local-token")
    assert err["message"].startswith("sender:"), err
    r = await client.post(API, data=body.replace(SENDER.encode(), b"x@any.example"),
                          headers=auth("local-token"))
    assert r.status == 202, await r.text()
