"""The preview of an Update or a Cancel promises what is really sent (issue 17: a Cancel's
preview showed the warning's texts, 按1, and a 5-minute confirmation with redials)."""

from __future__ import annotations

import html
import re

from console_kit import red_form, sign_in

from tests.engine.helpers import Harness
from warnbus.domain.models import DeliveryKind, TargetKind

TOWNS = ("430623101000", "430623102000")  # 章华镇, 鲇鱼须镇
_TEXT = re.compile(r'<summary>([^<]*)（\d+字）</summary><p class="msg">([^<]*)</p>')
_STAT = re.compile(r'data-p="(\w+)">([^<]*)<')


def shown(page: str) -> tuple[dict[str, str], dict[str, str]]:
    """The preview's texts by label, and its figures."""
    texts = {html.unescape(label): html.unescape(text) for label, text in _TEXT.findall(page)}
    return texts, dict(_STAT.findall(page))


async def _published(client, h: Harness) -> str:  # type: ignore[no-untyped-def]
    """A red warning for both townships, drafted and approved; its campaign id."""
    s = await sign_in(client, "dora")
    form = [*red_form(s.csrf, area=TOWNS[0]).items(), ("area", TOWNS[1])]
    r = await client.post("/console/compose", data=form, allow_redirects=False)
    draft = r.headers["Location"].split("/drafts/")[1].split("?")[0]
    s = await sign_in(client, "anna")
    r = await client.post(f"/console/drafts/{draft}/approve", data={"_csrf": s.csrf},
                          allow_redirects=False)
    cid: str = r.headers["Location"].split("/campaigns/")[1].split("?")[0]
    await h.drain()
    return cid


async def _approve(client, h: Harness, draft: str) -> None:  # type: ignore[no-untyped-def]
    s = await sign_in(client, "alan")
    r = await client.post(f"/console/drafts/{draft}/approve", data={"_csrf": s.csrf},
                          allow_redirects=False)
    assert "/campaigns/" in r.headers["Location"], r.headers["Location"]
    await h.drain()


async def test_the_cancel_preview_promises_the_lifting_that_is_sent(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    cid = await _published(client, h)
    s = await sign_in(client, "dora")
    r = await client.post(f"/console/campaigns/{cid}/cancel",
                          data={"_csrf": s.csrf, "reason": "降雨减弱"}, allow_redirects=False)
    draft = r.headers["Location"].split("/drafts/")[1].split("?")[0]
    page = await (await client.get(f"/console/drafts/{draft}")).text()
    texts, stats = shown(page)
    assert "解除通知预览" in page and stats["deadline"] == "解除通知无需确认，不重拨、不升级"
    assert "5分钟" not in page and "3分钟" not in page and "重拨3次" not in page
    assert set(texts) == {"短信·解除", "企业微信·解除", "应急广播·解除"}, texts
    for text in texts.values():
        assert "解除" in text and "章华镇" in text and "降雨减弱" in text, text
        for never in ("按1", "回复1", "确认收到", "紧急通知", "转移", "【红色预警】"):
            assert never not in text, (never, text)
    await _approve(client, h, draft)
    lifts = [d for d in h.sent() if d.kind is DeliveryKind.CANCEL]
    assert lifts
    by_label = {"sms": "短信·解除", "wecom": "企业微信·解除", "loudspeaker": "应急广播·解除"}
    for d in lifts:
        assert d.text == texts[by_label[d.channel]], (d.channel, d.text)
    persons = {d.target_id for d in lifts if d.target_kind is TargetKind.PERSON}
    assert int(stats["persons"]) == len(persons)
    assert int(stats["speakers"]) == sum(
        len(h.ctx.registry.devices_of_village(d.address)) for d in lifts
        if d.channel == "loudspeaker")


async def test_a_narrowing_update_previews_its_change_and_the_dropped_areas_lifting(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    cid = await _published(client, h)
    s = await sign_in(client, "dora")
    form = red_form(s.csrf, kind="update", campaign=cid, area=TOWNS[0],
                    headline="华容县应急管理局更新暴雨红色预警", effective="2026-07-15T13:40")
    r = await client.post("/console/compose/preview", data=form)
    assert r.status == 200, await r.text()
    texts, stats = shown((await r.json())["html"])
    assert "短信·解除（移出预警范围的区域）" in texts and "短信·更新（须确认）" in texts, texts
    assert "鲇鱼须镇" in texts["短信·解除（移出预警范围的区域）"]
    assert "不再包括：鲇鱼须镇" in texts["短信·更新（须确认）"]
    r = await client.post("/console/compose", data=form, allow_redirects=False)
    draft = r.headers["Location"].split("/drafts/")[1].split("?")[0]
    page = await (await client.get(f"/console/drafts/{draft}")).text()
    assert "更新预览" in page and shown(page)[0] == texts
    await _approve(client, h, draft)
    meta = await h.ctx.store.meta(cid)
    assert meta is not None
    sent = [d for d in h.sent() if d.alert_id == meta.latest]
    lifted = {d.text for d in sent if d.kind is DeliveryKind.CANCEL and d.channel == "sms"}
    assert lifted == {texts["短信·解除（移出预警范围的区域）"]}
    updated = {d.text.split("，或点击链接确认")[0] for d in sent
               if d.kind is DeliveryKind.UPDATE and d.channel == "sms" and d.asks_confirmation}
    assert updated == {texts["短信·更新（须确认）"].split("，或点击链接确认")[0]}
    assert int(stats["persons"]) == len({d.target_id for d in sent
                                         if d.target_kind is TargetKind.PERSON})
