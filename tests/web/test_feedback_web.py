"""Reports after the ack over HTTP: the ack page's form, and the console's entry by token."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp.test_utils import TestClient

from tests.engine.helpers import Harness, make_harness, web_client
from warnbus.runtime.app import token_hash
from warnbus.runtime.config import TokenSettings

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"
FEED, OFFICER, NARROW = "feed-token-fb", "officer-token-fb", "officer-token-elsewhere"
CAP = {"Content-Type": "application/cap+xml"}
HTML = {"Accept": "text/html"}
SENDERS = ("430623@qx.example.cn", "430623@zrzy.example.cn")


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture
async def api(redis_url: str) -> AsyncIterator[tuple[TestClient, Harness]]:  # type: ignore[type-arg]
    h = await make_harness(redis_url)
    h.app.tokens = (
        TokenSettings("met", token_hash(FEED), roles=("feed",), senders=SENDERS,
                      regions=("430623",)),
        TokenSettings("duty-lee", token_hash(OFFICER), roles=("officer",)),
        TokenSettings("elsewhere", token_hash(NARROW), roles=("officer",),
                      regions=("430623113000",)),
    )
    async with web_client(h) as client:
        yield client, h


async def _started(client: TestClient, h: Harness) -> tuple[str, str, list]:  # type: ignore[type-arg]
    r = await client.post("/api/v1/alerts", data=(FIXTURES / "rainstorm-red.xml").read_bytes(),
                          headers={**CAP, **auth(FEED)})
    res = await r.json()
    await h.drain()
    sms = [d for d in h.sent("sms") if d.ack_url]
    return res["campaign_id"], res["alert_id"], sms


async def test_the_ack_page_offers_the_form_after_confirming(api) -> None:  # type: ignore[no-untyped-def]
    client, h = api
    cid, _aid, sms = await _started(client, h)
    path = sms[0].ack_url.replace("http://test", "")
    page = await (await client.get(path)).text()
    assert "报送反馈" not in page  # not before the confirmation
    r = await client.post(path + "/feedback", data={"kind": "arrived"}, headers=HTML)
    assert r.status == 409 and "请先确认" in await r.text()
    r = await client.post(path, headers=HTML)
    assert "已确认" in (text := await r.text()) and 'action="/ack/' in text and "报送反馈" in text
    assert "报送反馈" in await (await client.get(path)).text()
    r = await client.post(path + "/feedback", data={"kind": "evacuated", "count": "35"},
                          headers=HTML)
    assert r.status == 200 and "已转移 35 人" in await r.text()
    r = await client.post(path + "/feedback", data={"kind": "hazard", "text": "桥面漫水",
                                                    "photo": "https://img.example.cn/1.jpg"})
    assert r.status == 200 and (await r.json())["status"] == "recorded"
    latest = await h.ctx.store.feedback.latest_of(cid, sms[0].target_id)
    assert (latest.evacuated, latest.hazards, latest.hazard_text) == (35, 1, "桥面漫水")
    assert [f.via for f in await h.ctx.store.feedback.history(cid)] == ["link", "link"]


async def test_a_bad_report_names_its_field(api) -> None:  # type: ignore[no-untyped-def]
    client, h = api
    _cid, _aid, sms = await _started(client, h)
    path = sms[0].ack_url.replace("http://test", "")
    await client.post(path)
    for form, field in (({"kind": "evacuated", "count": "三十"}, "count"),
                        ({"kind": "evacuated"}, "count"), ({"kind": "moved"}, "kind"),
                        ({"kind": "arrived", "count": "3"}, "count"),
                        ({"kind": "hazard"}, "text"),
                        ({"kind": "hazard", "text": "x", "photo": "javascript:1"}, "photo"),
                        ({"kind": "zero", "by": "me"}, "by")):
        r = await client.post(path + "/feedback", data=form)
        assert r.status == 422, form
        assert (await r.json())["error"]["message"].startswith(field), (form, await r.text())
    r = await client.post(path.replace("/ack/", "/ack/x") + "/feedback", data={"kind": "zero"})
    assert r.status == 403


async def test_the_console_enters_a_report_as_the_token(api) -> None:  # type: ignore[no-untyped-def]
    client, h = api
    cid, aid, sms = await _started(client, h)
    pid = sms[0].target_id
    body = {"campaign_id": cid, "person_id": pid, "kind": "zero"}
    r = await client.post("/api/v1/feedback", json=body, headers=auth(OFFICER))
    assert r.status == 409  # not confirmed yet
    await client.post("/api/v1/acks", json={"campaign_id": cid, "person_id": pid,
                                            "reason": "电话回访"}, headers=auth(OFFICER))
    r = await client.post("/api/v1/feedback", json={**body, "by": "someone"},
                          headers=auth(OFFICER))
    assert r.status == 422 and "by" in (await r.json())["error"]["message"]
    assert (await client.post("/api/v1/feedback", json=body, headers=auth(FEED))).status == 403
    person = h.ctx.person(pid)
    assert person is not None
    if not h.ctx.registry.data.regions[person.region].code.startswith("430623113"):
        r = await client.post("/api/v1/feedback", json=body, headers=auth(NARROW))
        assert r.status == 403  # a person outside the token's regions
    r = await client.post("/api/v1/feedback", json={**body, "kind": "evacuated", "count": 12},
                          headers=auth(OFFICER))
    assert r.status == 200, await r.text()
    history = await h.ctx.store.feedback.history(cid)
    assert [(f.report.count, f.via, f.by) for f in history] == [(12, "console", "duty-lee")]
    _ = aid


async def test_the_api_record_has_the_feedback_section(api) -> None:  # type: ignore[no-untyped-def]
    """JSON and CSV, in Beijing time, with who entered it; a token bounded to other regions
    reads none of these people's reports."""
    client, h = api
    cid, aid, sms = await _started(client, h)
    pid = sms[0].target_id
    await client.post(sms[0].ack_url.replace("http://test", ""))
    await client.post("/api/v1/feedback", json={"campaign_id": cid, "person_id": pid,
                                                "kind": "hazard", "text": "=1+1 山体滑坡"},
                      headers=auth(OFFICER))
    r = await client.get(f"/api/v1/alerts/{aid}/record", headers=auth(OFFICER))
    fb = (await r.json())["feedback"]
    assert [(x["person_id"], x["kind"], x["text"], x["via"], x["entered_by"]) for x in fb] == [
        (pid, "险情", "=1+1 山体滑坡", "console", "duty-lee")]
    assert fb[0]["reported_at"] == "2026-07-15 13:30:00"  # Beijing time of 05:30 UTC
    r = await client.get(f"/api/v1/alerts/{aid}/record?format=csv&section=feedback",
                         headers=auth(OFFICER))
    text = await r.text()
    assert "录入人" in text and "'=1+1 山体滑坡" in text  # no formula in a spreadsheet
    person = h.ctx.person(pid)
    if person is not None and not person.region.startswith("430623113"):
        r = await client.get(f"/api/v1/alerts/{aid}/record", headers=auth(NARROW))
        assert r.status in (200, 403)
        if r.status == 200:
            assert (await r.json())["feedback"] == []


async def test_an_entry_resent_with_its_form_id_is_kept_once(  # type: ignore[no-untyped-def]
        api) -> None:
    """An officer's entry carrying a form token (a resent request, a double submit) is kept
    once and answered as the first was; without a token each entry is its own."""
    client, h = api
    cid, _aid, sms = await _started(client, h)
    pid = sms[0].target_id
    await client.post(sms[0].ack_url.replace("http://test", ""))
    body = {"campaign_id": cid, "person_id": pid, "kind": "evacuated", "count": 7,
            "form_id": "officer-entry-000000000001"}
    answers = [await client.post("/api/v1/feedback", json=body, headers=auth(OFFICER))
               for _ in range(3)]
    assert [(r.status, (await r.json())["status"]) for r in answers] == [(200, "recorded")] * 3
    history = await h.ctx.store.feedback.history(cid)
    assert [(f.report.count, f.via) for f in history] == [(7, "console")]
    r = await client.post("/api/v1/feedback", json={**body, "form_id": "short"},
                          headers=auth(OFFICER))
    assert r.status == 422 and "form_id" in (await r.json())["error"]["message"]
