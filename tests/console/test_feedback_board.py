"""The console's feedback: the board's 已转移 totals, a report entered by a user (kept as
entered by them), the record's feedback section (print page, CSV, API) in Beijing time."""

from __future__ import annotations

from tests.console.console_kit import console_client, sign_in
from tests.engine.helpers import cap_alert
from warnbus.domain.feedback import FeedbackKind, Report
from warnbus.domain.models import AckVia
from warnbus.flow.acks import record_ack
from warnbus.flow.credentials import ENGINE
from warnbus.flow.feedback import record_feedback
from warnbus.flow.intake import accept


async def test_board_totals_entry_and_record(redis_url: str) -> None:
    async with console_client(redis_url) as (client, h):
        res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
        await h.drain()
        cid = res.campaign_id
        people = sorted({d.target_id for d in h.sent("sms") if d.campaign_id == cid})
        a, b, c = people[:3]
        for pid in (a, b, c):
            await record_ack(h.ctx, cid, pid, AckVia.LINK)
        await record_feedback(h.ctx, cid, a, Report(FeedbackKind.EVACUATED, count=35), AckVia.SMS)
        await record_feedback(h.ctx, cid, a, Report(FeedbackKind.EVACUATED, count=40), AckVia.SMS)
        await record_feedback(h.ctx, cid, b, Report(FeedbackKind.HAZARD, text="桥面漫水"),
                              AckVia.LINK)
        signed = await sign_in(client, "dora")
        r = await client.post(f"/console/campaigns/{cid}/feedback", allow_redirects=False,
                              data={"_csrf": signed.csrf, "person_id": c, "kind": "evacuated",
                                    "count": "7"})
        assert r.status == 303 and "%E5%B7%B2%E5%BD%95%E5%85%A5" in r.headers["Location"]
        r = await client.post(f"/console/campaigns/{cid}/feedback", allow_redirects=False,
                              data={"_csrf": signed.csrf, "person_id": c, "kind": "evacuated",
                                    "count": "x"})
        assert r.status == 303 and "count" in r.headers["Location"]
        board = await (await client.get(f"/console/campaigns/{cid}")).text()
        # a's latest count (40, not 35 + 40) and c's 7; the rest confirmed and due.
        assert '已转移 <b data-c="evacuated">47</b> 人' in board, board[-3000:]
        assert "已报送 3" in board and "险情 1" in board and "桥面漫水" in board
        printed = await (await client.get(f"/console/campaigns/{cid}/print")).text()
        assert "反馈（4条）" in printed and "已转移 7 人" in printed
        assert "<td>dora</td>" in printed  # who entered it
        csv = await (await client.get(f"/console/campaigns/{cid}/feedback.csv")).text()
        assert "录入人" in csv and '"dora"' in csv and "2026-07-15 13:30" in csv
        # Reading the board or record needs a sign-in.
        client.session.cookie_jar.clear()
        r = await client.get(f"/console/campaigns/{cid}/feedback.csv", allow_redirects=False)
        assert r.status in (303, 401)


async def test_the_entry_form_submitted_twice_is_kept_once(redis_url: str) -> None:
    """The board's entry form carries a one-time token: the same form sent again (a double
    click, a resend) keeps the report once; a fresh form is a new report."""
    async with console_client(redis_url) as (client, h):
        res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
        await h.drain()
        cid = res.campaign_id
        pid = sorted({d.target_id for d in h.sent("sms") if d.campaign_id == cid})[0]
        await record_ack(h.ctx, cid, pid, AckVia.LINK)
        signed = await sign_in(client, "dora")

        async def form_id() -> str:
            board = await (await client.get(f"/console/campaigns/{cid}")).text()
            return board.split('name="form_id" value="', 1)[1].split('"', 1)[0]

        first = await form_id()
        data = {"_csrf": signed.csrf, "person_id": pid, "kind": "arrived", "form_id": first}
        for _ in range(2):
            r = await client.post(f"/console/campaigns/{cid}/feedback", allow_redirects=False,
                                  data=data)
            assert r.status == 303 and "%E5%B7%B2%E5%BD%95%E5%85%A5" in r.headers["Location"]
        assert len(await h.ctx.store.feedback.history(cid)) == 1
        fresh = await form_id()
        assert fresh != first
        await client.post(f"/console/campaigns/{cid}/feedback", allow_redirects=False,
                          data={**data, "form_id": fresh})
        assert len(await h.ctx.store.feedback.history(cid)) == 2
