"""What the console says can be trusted: no page says what the server did not say to this
session, and what goes wrong is said in Chinese.

The green banners were reflected from the address (`?msg=已发布`, escaped but shown): a link
anyone could craft made the board of any campaign say 已发布. A message now shows only when a
redirect of the same session put it there for the same page (signed with the session's
secret). Errors were aiohttp's English pages (`404: Not Found`, `500 Internal Server Error`).
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, quote, urlsplit

from console_kit import red_form, sign_in

from tests.engine.helpers import cap_alert
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.web.console.auth import Session
from warnbus.web.console.base import FLASH_TTL_S, flash_sig

HTML = {"Accept": "text/html"}


async def _page(client, path: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    r = await client.get(path, headers=HTML, allow_redirects=False)
    return r.status, await r.text()


async def test_a_crafted_message_in_the_address_is_not_shown(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    cid = (await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)).campaign_id
    await h.drain()
    await sign_in(client, "root")
    forged = quote("已发布，全部人员已确认")
    for path in (f"/console/campaigns/{cid}", "/console/admin", "/console/registry",
                 "/console/drafts/df_nothing"):
        for query in (f"msg={forged}", f"ms={'0' * 32}&msg={forged}"):
            _status, text = await _page(client, f"{path}?{query}")
            assert ">已发布，全部人员已确认<" not in text, path


async def test_a_message_shows_once_signed_for_its_session_and_page(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    s = await sign_in(client, "root")
    r = await client.post("/console/admin/users/dora/unlock", data={"_csrf": s.csrf},
                          allow_redirects=False)
    assert r.status == 303
    location = r.headers["Location"]
    _status, text = await _page(client, location)
    assert '<p class="ok">已解除 dora 的登录锁定</p>' in text
    # Signed for /console/admin: the same signature on another page says nothing there.
    _status, text = await _page(client, location.replace("/console/admin", "/console/registry"))
    assert "已解除 dora" not in text
    # Signed for the moment of its redirect: a kept or shared address says nothing later,
    # and the signature does not move to another moment (the page's script also drops it
    # from the address once shown: test_console_browser_live).
    q = parse_qs(urlsplit(location).query)
    said, path = q["msg"][0], urlsplit(location).path

    async def shown(at: int, sig: str) -> bool:
        return said in (await _page(client, f"{path}?mt={at}&ms={sig}&msg={quote(said)}"))[1]

    sess = Session("root", s.csrf, 0.0)
    old = int(time.time()) - FLASH_TTL_S - 5
    assert not await shown(old, flash_sig(sess, path, said, old))
    assert not await shown(int(q["mt"][0]) + 1, q["ms"][0])
    assert said not in (await _page(client, f"{path}?ms={q['ms'][0]}&msg={quote(said)}"))[1]
    now = int(time.time())
    assert await shown(now, flash_sig(sess, path, said, now))
    # Another session (even of the same user) does not see it: its secret differs.
    await sign_in(client, "root")
    _status, text = await _page(client, location)
    assert "已解除 dora" not in text


async def test_a_submitted_draft_says_so_and_only_to_its_drafter(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose", data=red_form(s.csrf), allow_redirects=False)
    assert r.status == 303 and "/console/drafts/df_" in r.headers["Location"]
    _status, text = await _page(client, r.headers["Location"])
    assert "已提交，等待审批人批准" in text
    await sign_in(client, "alan")
    _status, text = await _page(client, r.headers["Location"])
    assert "已提交，等待审批人批准" not in text


async def test_errors_are_pages_in_chinese(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    await sign_in(client, "dora")
    cases = {
        "/console/campaigns/cp_nosuch": (404, "找不到该预警"),
        "/console/campaigns/cp_nosuch/print": (404, "找不到该预警"),
        "/console/campaigns/cp_nosuch/record.csv": (404, "找不到该预警"),
        "/console/drafts/df_nosuch": (404, "找不到该草稿"),
        "/console/no/such/page": (404, "页面不存在"),
        "/console/admin": (403, "需要管理权限"),
    }
    for path, (status, words) in cases.items():
        got, text = await _page(client, path)
        assert got == status and words in text, (path, got, text[:300])
        assert "Not Found" not in text and "<h1>" in text and "返回" in text, path
    r = await client.put("/console/compose", headers=HTML)
    text = await r.text()
    assert r.status == 405 and "不支持该操作" in text and "Method Not Allowed" not in text
    # A script asking for JSON gets the API's error form, in Chinese.
    r = await client.get("/console/drafts/df_nosuch", headers={"Accept": "application/json"})
    assert r.status == 404 and (await r.json())["error"] == {
        "code": "not_found", "message": "找不到该草稿：链接有误，或草稿已不存在"}


async def test_a_failure_inside_a_page_is_a_chinese_500(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    cid = (await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)).campaign_id
    await h.drain()
    await sign_in(client, "dora")
    # A campaign whose stored meta no longer reads (a hand-edited Redis, a bad migration).
    await h.ctx.redis.hset(f"wb:{{c:{cid}}}:meta", "level", "purple")
    status, text = await _page(client, f"/console/campaigns/{cid}/print")
    assert status == 500 and "系统出错" in text and "Internal Server Error" not in text


async def test_settings_say_what_is_not_applied(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    s = await sign_in(client, "root")

    async def save(**form: str) -> str:
        data = [("_csrf", s.csrf), ("sms_price", "0.05"), ("voice_price", "0.12"),
                *form.items()]
        data += [("approval", lv) for lv in form.pop("levels", "").split(",") if lv]
        r = await client.post("/console/admin/settings", data=[
            (k, v) for k, v in data if k != "levels"], headers=HTML)
        return await r.text()

    # Levels ticked while the configuration's default is chosen: said, not silently dropped.
    text = await save(levels="yellow", approval_default="1")
    assert "所选的（黄色）未采用" in text and "审批级别按配置（红色、橙色）" in text
    text = await save(levels="red,orange,yellow")
    assert "审批级别对此后提交的草稿生效" in text
    text = await save(levels="red,orange,yellow", sms_price="nan")
    assert "未保存：单价必须在0到100元之间" in text
    text = await save(levels="red,orange,yellow", sender_name="华容县防汛抗旱指挥部")
    assert "用于此后发出的预警、更新和解除" in text
