"""Composing without slips: every level is confirmed with its reach, nothing is published that
reaches nobody, the level is chosen, 全县 is one choice, and a rejected draft is edited and
resubmitted (or withdrawn) instead of drafted again.

On main: 提交发布 published a yellow or blue warning at once, the level select defaulted to
its first option (红色), a geological warning for a township without hazard points was
published to nobody, the whole county was 13 ticks, and a rejected draft was a dead end.
"""

from __future__ import annotations

import html
import re

from console_kit import campaigns, red_form, sign_in

from warnbus.domain.models import MsgType
from warnbus.state import keys

HTML = {"Accept": "text/html"}
TOWN = "430623101000"


def _unconfirmed(csrf: str, **extra: str) -> dict[str, str]:
    data = red_form(csrf, **extra)
    data.pop("confirmed")
    return data


async def _red_draft(client, **form: str) -> str:  # type: ignore[no-untyped-def]
    """A red draft of dora's, waiting for an approver (dora stays signed in)."""
    s = await sign_in(client, "dora")
    return _draft_of(await client.post("/console/compose", data=red_form(s.csrf, **form),
                                       allow_redirects=False))


def _draft_of(r) -> str:  # type: ignore[no-untyped-def]
    assert r.status == 303 and "/drafts/df_" in r.headers["Location"], r.status
    return str(r.headers["Location"].split("/drafts/")[1].split("?")[0])


async def test_every_level_is_confirmed_with_its_reach_before_anything_is_sent(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose", data=_unconfirmed(s.csrf, level="yellow"),
                          headers=HTML, allow_redirects=False)
    page = await r.text()
    assert r.status == 200 and 'id="confirm-publish"' in page, page[:500]
    reach = re.search(r'id="confirm-reach">(\d+)个网格、(\d+)名责任人、(\d+)个应急广播', page)
    assert reach and int(reach.group(1)) > 0 and int(reach.group(2)) > 0, page
    assert "即将发布<b>黄色</b>暴雨预警（正式）" in page and "确认发布：黄色预警" in page
    # Nothing was drafted, accepted or sent by the first step.
    assert not await h.ctx.redis.zcard(keys.CONSOLE_DRAFTS) and not await campaigns(h)
    # The confirmation posts the same form back (hidden fields), confirmed.
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">',
                           page.split('id="confirm-btn"')[0].split('id="confirm-publish"')[1]))
    form = {k: html.unescape(v) for k, v in form.items()}
    assert form["confirmed"] == "1" and form["level"] == "yellow" and form["area"] == TOWN
    r = await client.post("/console/compose", data=form, allow_redirects=False)
    assert r.status == 303 and "/console/campaigns/" in r.headers["Location"]
    assert len(await campaigns(h)) == 1
    # 返回修改: the compose form again, as it was filled.
    r = await client.post("/console/compose", data={**form, "confirmed": "", "edit": "1"},
                          headers=HTML)
    page = await r.text()
    assert r.status == 200 and 'id="compose"' in page and 'value="yellow" selected' in page


async def test_a_red_draft_is_confirmed_as_submitted_for_approval(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose", data=_unconfirmed(s.csrf), headers=HTML)
    page = await r.text()
    assert "请核对后提交审批" in page and "提交后须由另一位审批人批准才会发布" in page
    assert not await h.ctx.redis.zcard(keys.CONSOLE_DRAFTS)


async def test_an_alert_that_reaches_nobody_is_refused_with_the_reason(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    # Geological warnings go only to grids with a hazard point; 章华镇 has none.
    for confirmed in ("", "1"):
        r = await client.post("/console/compose", headers=HTML, data=red_form(
            s.csrf, hazard="geohazard", level="yellow", confirmed=confirmed))
        page = await r.text()
        assert r.status == 422 and "所选区域内没有需要通知的网格和责任人" in page, page[-800:]
        assert "地质灾害预警只发往该灾种涉及的网格" in page
    assert not await h.ctx.redis.zcard(keys.CONSOLE_DRAFTS) and not await campaigns(h)


async def test_the_level_has_no_default(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    page = await (await client.get("/console/compose", headers=HTML)).text()
    assert '<option value="" selected>请选择级别</option>' in page
    r = await client.post("/console/compose", data=red_form(s.csrf, level=""), headers=HTML)
    assert r.status == 422 and "请选择级别" in await r.text()
    assert not await h.ctx.redis.zcard(keys.CONSOLE_DRAFTS)


async def test_the_whole_county_is_one_choice(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    county = h.ctx.registry.county_code
    s = await sign_in(client, "dora")
    page = await (await client.get("/console/compose", headers=HTML)).text()
    assert f'value="{county}" id="whole-county"' in page and "全县（华容县全境）" in page
    # Ticked with a township, 全县 wins: the whole county.
    form = [*_unconfirmed(s.csrf, level="blue", area=county).items(), ("area", TOWN)]
    page = await (await client.post("/console/compose", data=form, headers=HTML)).text()
    grids = len(h.ctx.registry.data.grids)
    assert f'id="confirm-reach">{grids}个网格' in page, page[-2000:]
    r = await client.post("/console/compose", allow_redirects=False,
                          data=[*form, ("confirmed", "1")])
    assert r.status == 303 and "/console/campaigns/" in r.headers["Location"]
    await h.drain()
    (cid,) = await campaigns(h)
    tracked = await h.ctx.store.grids(cid)  # the grids, and the sites the hazard calls
    assert len([g for g in tracked if not h.ctx.registry.is_site(g)]) == grids


async def test_a_rejected_draft_is_edited_and_resubmitted_then_approved(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    draft = await _red_draft(client)
    a = await sign_in(client, "alan")
    r = await client.post(f"/console/drafts/{draft}/reject", allow_redirects=False,
                          data={"_csrf": a.csrf, "reason": "区域应为两个乡镇"})
    assert r.status == 303
    s = await sign_in(client, "dora")
    page = await (await client.get(f"/console/drafts/{draft}", headers=HTML)).text()
    assert "已被Alan退回：区域应为两个乡镇" in page and 'id="edit-btn"' in page
    page = await (await client.get(f"/console/drafts/{draft}/edit", headers=HTML)).text()
    assert f'name="draft" value="{draft}"' in page and 'value="red" selected' in page
    form = [*red_form(s.csrf, draft=draft, headline="暴雨红色预警（两镇）").items(),
            ("area", "430623102000")]
    r = await client.post("/console/compose", data=form, allow_redirects=False)
    assert _draft_of(r) == draft  # the same draft, not a new one
    d = await h.ctx.redis.hgetall(keys.console_draft(draft))
    assert d[b"state"] == b"pending" and d[b"rev"] == b"1" and d[b"reason"] == b""
    page = await (await client.get(f"/console/drafts/{draft}", headers=HTML)).text()
    hist = page.split('id="draft-history">')[1].split("</ol>")[0]
    assert re.findall(r"\d\d:\d\d:\d\d (\S+) (\S+?)(?:：|<)", hist) == [
        ("Dora", "起草"), ("Alan", "退回"), ("Dora", "修改后重新提交")], hist
    assert "区域应为两个乡镇" in hist
    a = await sign_in(client, "alan")
    # An approval of the revision before the edit publishes nothing.
    r = await client.post(f"/console/drafts/{draft}/approve", allow_redirects=False,
                          data={"_csrf": a.csrf, "rev": "0"})
    assert r.status == 303 and f"/drafts/{draft}" in r.headers["Location"]
    assert not await campaigns(h)
    page = await (await client.get(f"/console/drafts/{draft}", headers=HTML)).text()
    assert 'name="rev" value="1"' in page and "确认批准并立即发布红色预警，覆盖" in page
    r = await client.post(f"/console/drafts/{draft}/approve", allow_redirects=False,
                          data={"_csrf": a.csrf, "rev": "1"})
    assert r.status == 303 and "/console/campaigns/" in r.headers["Location"]
    (cid,) = await campaigns(h)
    await h.drain()
    alert = await h.ctx.alert(cid, (await h.ctx.store.meta(cid)).latest_alert_id)  # type: ignore[union-attr]
    assert alert is not None and alert.msg_type is MsgType.ALERT
    assert alert.infos[0].headline == "暴雨红色预警（两镇）"


async def test_a_draft_is_withdrawn_by_its_drafter_only(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    draft = await _red_draft(client)
    b = await sign_in(client, "both")
    r = await client.post(f"/console/drafts/{draft}/withdraw", data={"_csrf": b.csrf})
    assert "只有起草人可以撤回该草稿" in await r.text()
    r = await client.get(f"/console/drafts/{draft}/edit", headers=HTML)
    assert "只有起草人可以修改该草稿" in await r.text()
    s = await sign_in(client, "dora")
    r = await client.post(f"/console/drafts/{draft}/withdraw", data={"_csrf": s.csrf},
                          headers=HTML)
    page = await r.text()
    assert "已撤回，该草稿不会发布" in page and '<dd id="draft-state">已撤回</dd>' in page
    a = await sign_in(client, "alan")
    r = await client.post(f"/console/drafts/{draft}/approve", allow_redirects=False,
                          data={"_csrf": a.csrf})
    assert r.status == 303 and not await campaigns(h)


async def test_an_update_draft_is_titled_with_the_level_it_sets(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    draft = await _red_draft(client)
    a = await sign_in(client, "alan")
    await client.post(f"/console/drafts/{draft}/approve", data={"_csrf": a.csrf})
    (cid,) = await campaigns(h)
    await h.drain()
    # Red to yellow: approved as red (the more urgent), titled with the level it sets.
    s = await sign_in(client, "dora")
    draft = _draft_of(await client.post("/console/compose", allow_redirects=False,
                                        data=red_form(s.csrf, level="yellow", kind="update",
                                                      campaign=cid)))
    page = await (await client.get(f"/console/drafts/{draft}", headers=HTML)).text()
    assert "<title>黄色预警 · 更新" in page and "按更新前后较紧急的红色级别审批" in page
    listing = await (await client.get("/console/drafts", headers=HTML)).text()
    row = next(r for r in listing.split("<tr>") if draft in r)
    assert "lv-yellow" in row and "Dora" in row and ">dora<" not in row


async def test_an_update_shows_the_area_before_and_after(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    form = [*red_form(s.csrf).items(), ("area", "430623102000")]
    draft = _draft_of(await client.post("/console/compose", data=form, allow_redirects=False))
    a = await sign_in(client, "alan")
    await client.post(f"/console/drafts/{draft}/approve", data={"_csrf": a.csrf})
    (cid,) = await campaigns(h)
    await h.drain()
    grids = await h.ctx.store.grids(cid)
    town = [g for g in grids if g.startswith("430623101")]
    s = await sign_in(client, "dora")
    # Narrowed to 章华镇: 鲇鱼须镇's grids are dropped (they get their 解除).
    r = await client.post("/console/compose", headers=HTML, data=_unconfirmed(
        s.csrf, kind="update", campaign=cid))
    page = await r.text()
    change = page.split('id="update-change"')[1].split("</svg>")[0]
    assert (f"网格：<b>{len(grids)}</b> → <b>{len(town)}</b>（新增0个，"
            f"移出{len(grids) - len(town)}个，保留{len(town)}个）") in change
    assert change.count('class="s-dropped"') == len(grids) - len(town)
    assert change.count('class="s-kept"') == len(town)
    # The approver's page shows the same.
    draft = _draft_of(await client.post("/console/compose", allow_redirects=False, data=red_form(
        s.csrf, kind="update", campaign=cid)))
    await sign_in(client, "alan")
    page = await (await client.get(f"/console/drafts/{draft}", headers=HTML)).text()
    assert f"移出{len(grids) - len(town)}个" in page
