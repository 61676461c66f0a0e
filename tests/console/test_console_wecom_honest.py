"""What the console and the filed record claim for a WeCom message: WeCom's message/send
answers errcode, msgid and the invalid or unlicensed users, and nothing later about arrival
or reading (no per-person receipt; get_statistics counts an application's sends per day).
So a WeCom message is 已发出（未收到回执）, never 已送达 or 已读, and the one honest signal,
a click on the card's button, is a confirmation: 企业微信按钮."""

from __future__ import annotations

import csv
import io

from console_kit import sign_in

from tests.engine.helpers import cap_alert
from warnbus.domain.models import AckVia, Severity
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept


async def test_a_wecom_message_is_sent_not_read_and_its_button_is_a_confirmation(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    alert = cap_alert(codes=("430623101000",), severity=Severity.MODERATE, level_zh="黄色")
    cid = (await accept(h.ctx, alert, ENGINE)).campaign_id
    await h.drain()
    wecom = [d for d in h.sent() if d.channel == "wecom"]
    assert wecom
    clicked = wecom[0]
    await h.app.engine.sink.confirm(cid, clicked.target_id, AckVia.WECOM, clicked.id)
    await sign_in(client, "alan")
    board = await (await client.get(f"/console/campaigns/{cid}")).text()
    # Nobody is counted as reached by a message no provider reported arriving.
    assert "已发出（人）" in board and "已送达（人）" not in board
    r = await client.get(f"/console/campaigns/{cid}/record.csv")
    rows = list(csv.DictReader(io.StringIO((await r.text()).lstrip("\ufeff"), newline="")))
    card = [row for row in rows if row["渠道"] == "企业微信"]
    who = h.ctx.registry.data.persons[clicked.target_id].name
    # Every other card: sent, no receipt; the clicked one: confirmed by its button.
    assert card
    assert {row["结果"] for row in card if row["责任人"] != who} == {"已发出（未收到回执）"}
    mine = [row for row in card if row["责任人"] == who]
    assert {(row["结果"], row["确认方式"]) for row in mine} == {("已确认", "企业微信按钮")}
    printed = await (await client.get(f"/console/campaigns/{cid}/print")).text()
    assert "已读" not in printed and "企业微信按钮" in printed
    # The grid's card says the same words as the record.
    grid = next(g for g, v in h.ctx.registry.data.grids.items()
                if clicked.target_id in (v.primary, v.backup))
    page = await (await client.get(f"/console/campaigns/{cid}/grids/{grid}")).text()
    assert "已确认 · 企业微信按钮" in page and "已读" not in page
