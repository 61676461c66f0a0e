"""The grid cards and a grid's page name console users by their display names (姓名), the
login only in a title: who confirmed a person by hand, who sent someone door to door, who
entered the visit's result, who stopped the calling (issue 17: display names everywhere;
the cards said 人工确认（alan：…）)."""

from __future__ import annotations

import re

from console_kit import sign_in

from tests.engine.helpers import cap_alert
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept

#: How a page shows the console user alan: his 姓名, the login in the title.
ALAN = '<span class="user" title="登录名：alan">Alan</span>'
#: The login where a person reads a name: "（alan" or "alan：" or "alan，" (the title aside).
LOGIN = re.compile(r"[（(]alan|alan[：，)）]")


def _without_titles(page: str) -> str:
    return re.sub(r' title="[^"]*"', "", page)


async def test_cards_and_the_grid_page_name_console_users_by_display_name(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    cid = (await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)).campaign_id
    await h.drain()
    s = await sign_in(client, "alan")
    door, acked = sorted(await h.ctx.store.grids(cid))[:2]
    base = f"/console/campaigns/{cid}"
    # Alan sends the village head door to door for one grid and confirms another's officer
    # by hand (a call back).
    r = await client.post(f"{base}/door", data={"_csrf": s.csrf, "grid": door},
                          allow_redirects=False)
    assert r.status == 303
    await h.drain()
    officer = h.ctx.registry.data.grids[acked].primary
    r = await client.post(f"{base}/ack", allow_redirects=False, data={
        "_csrf": s.csrf, "grid": acked, "person": officer, "reason": "电话回拨已确认"})
    assert r.status == 303
    # The pending list (page and live fragment): the order by Alan.
    for path in (base, f"{base}/chase"):
        page = await (await client.get(path)).text()
        card = page[page.index(f'data-grid="{door}"'):]
        assert f"（{ALAN}，" in card[:card.index("</div>")], path
        assert not LOGIN.search(_without_titles(page)), path
    # The confirmed grid's page: the manual confirmation by Alan, in the card and the history.
    page = await (await client.get(f"{base}/grids/{acked}")).text()
    assert f"人工确认（{ALAN}：电话回拨已确认）" in page
    assert f"已确认</b>（人工确认）（{ALAN}）" in page
    # Alan enters the visit's result; then stops the calling.
    r = await client.post(f"{base}/door/result", allow_redirects=False, data={
        "_csrf": s.csrf, "grid": door, "outcome": "told", "note": ""})
    assert r.status == 303
    r = await client.post(f"{base}/stop", data={"_csrf": s.csrf, "reason": "误报"},
                          allow_redirects=False)
    assert r.status == 303
    page = await (await client.get(f"{base}/grids/{door}")).text()
    assert f"入户结果：<b>已当面告知</b>（{ALAN}，" in page  # the card
    assert re.search(f"安排入户：[^<]*（{re.escape(ALAN)}）</li>", page)  # the history
    assert f"入户结果：已当面告知</b>（{ALAN}）" in page
    assert f"停止叫应（{ALAN}：误报）" in page
    # The village head sent door to door was not called for the grid, only told to go: the
    # card says so, never 尚未呼叫 and 已呼叫3次 at once.
    head = h.ctx.registry.data.persons[h.ctx.registry.chain(door, at=h.clock.now())[2] or ""]
    told = sum(1 for d in h.sent() if d.target_id == head.id)
    assert f"{head.name}</b>（村负责人）" in page and f"未叫应 · 已发入户通知{told}条" in page
    assert "尚未呼叫 · 已呼叫" not in page
    for path in (f"{base}/grids/{door}", f"{base}/grids/{acked}",
                 f"{base}/grids/{door}?part=panel"):
        assert not LOGIN.search(_without_titles(await (await client.get(path)).text())), path
