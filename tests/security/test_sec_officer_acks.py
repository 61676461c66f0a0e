"""Officers' confirmations (`POST /api/v1/acks`): inside the token's regions, by the token.

A console confirmation closes a person's grids and stops their calls, so it is as strong as a
person's own: a township's officer token may confirm only for people serving in its township,
and who confirmed is the token (its name in the record), never what the body says.
"""

from __future__ import annotations

from typing import Any

from seckit import OFFICER, TOWN_OFFICER, WIDE, auth, cap_xml

from warnbus.domain.models import Role
from warnbus.state import keys

ACKS = "/api/v1/acks"


async def campaign(client: Any, h: Any) -> str:
    r = await client.post("/api/v1/alerts", data=cap_xml("K-1", ("430623101000", "430623102000")),
                          headers=auth(WIDE))
    assert r.status == 202, await r.text()
    await h.drain()
    return (await r.json())["campaign_id"]  # type: ignore[no-any-return]


def primary_in(h: Any, township: str) -> str:
    return next(g.primary for g in sorted(h.ctx.registry.data.grids.values(), key=lambda g: g.id)
                if g.village.startswith(township))


async def state(h: Any, cid: str) -> tuple[Any, ...]:
    ck = keys.campaign(cid)
    r = h.ctx.redis
    return (await r.hgetall(ck.acks), await r.hgetall(ck.grids), await r.hgetall(ck.tstate),
            await r.xlen(ck.audit))


async def test_an_officer_confirms_inside_its_regions_only(api_client: Any) -> None:
    client, h = api_client
    cid = await campaign(client, h)
    before = await state(h, cid)
    outside = primary_in(h, "430623102")
    body = {"campaign_id": cid, "person_id": outside, "reason": "电话回访确认"}
    r = await client.post(ACKS, json=body, headers=auth(TOWN_OFFICER))
    err = (await r.json())["error"]
    assert r.status == 403 and err["code"] == "forbidden", err
    assert err["message"].startswith(f"person_id: {outside} serves 430623102"), err
    # A county duty officer (no grid; serves the county) is outside a township's token too.
    duty = h.ctx.registry.persons_by_role(Role.COUNTY_DUTY)[0].id
    r = await client.post(ACKS, json={**body, "person_id": duty}, headers=auth(TOWN_OFFICER))
    assert r.status == 403
    assert await state(h, cid) == before
    # Inside its township: recorded, and recorded as by the token.
    inside = primary_in(h, "430623101")
    r = await client.post(ACKS, json={**body, "person_id": inside}, headers=auth(TOWN_OFFICER))
    assert r.status == 200 and (await r.json())["status"] == "recorded"
    # The county's officer token may confirm anyone of the county.
    r = await client.post(ACKS, json=body, headers=auth(OFFICER))
    assert r.status == 200 and (await r.json())["status"] == "recorded"
    acks = await h.ctx.store.acks(cid)
    assert (acks[inside].by, acks[outside].by) == ("town-duty", "duty")
    assert {acks[inside].reason, acks[outside].reason} == {"电话回访确认"}


async def test_who_confirmed_comes_from_the_token_never_the_body(api_client: Any) -> None:
    client, h = api_client
    cid = await campaign(client, h)
    before = await state(h, cid)
    pid = primary_in(h, "430623101")
    for by in ("县应急局局长", "", None):
        body = {"campaign_id": cid, "person_id": pid, "reason": "电话回访确认", "by": by}
        r = await client.post(ACKS, json=body, headers=auth(OFFICER))
        err = (await r.json())["error"]
        assert r.status == 422 and err["message"].startswith("by: "), err
    assert await state(h, cid) == before
    rows = await h.ctx.store.audit(cid)
    assert not [x for x in rows if x.get("ev") == "ack"]
