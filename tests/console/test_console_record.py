"""The record a county files agrees with what the providers did, in Chinese and Beijing time.

A red drill in one township on the engine harness: half the grid officers confirm by link,
the providers report on some calls (a busy line, a call rung out, an SMS delivered, one
undeliverable), nobody else answers, redials and escalations follow. Every row of the
console's CSV (and the API's) then agrees with the test channels' logs: who was called, on
which channel, how often (第几次 counts each person's calls per channel, 1..n, in time order),
the step in words, the outcome as the provider reported it, and the confirmation. On main the
CSV's headers were English, its times UTC without saying so, every outcome `accepted`, every
step a number and every 第几次 1.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone

import pytest
from console_kit import sign_in

from tests.engine.helpers import T0, cap_alert
from warnbus.domain.models import AckVia
from warnbus.domain.states import DeliveryReport
from warnbus.flow.acks import record_ack
from warnbus.flow.credentials import ENGINE
from warnbus.flow.events import EngineSink
from warnbus.flow.filed import Report, limited_zh, report_zh, reports_by_call, step_zh
from warnbus.flow.intake import accept
from warnbus.plugin import ProviderStatus

BJ = timezone(timedelta(hours=8))
SENT = "发送时间（北京时间（UTC+8））"
MEDIUM_ZH = {"voice": "语音电话", "sms": "短信", "wecom": "企业微信"}


async def _drill(h) -> str:  # type: ignore[no-untyped-def]
    """A red warning for 章华镇, its first wave sent: the campaign id."""
    res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    await h.drain()
    return res.campaign_id


def _rows(text: str) -> list[dict[str, str]]:
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline="")))


async def test_every_row_agrees_with_the_providers_and_says_it_in_chinese(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    ctx = h.ctx
    cid = await _drill(h)
    sink = EngineSink(ctx)
    voice = [d for d in h.sent("voice")]
    sms = [d for d in h.sent("sms")]
    busy, rang_out = voice[0], voice[1]
    await sink.delivery_status(cid, busy.id, busy.target_id, ProviderStatus.NO_ANSWER, "busy")
    await sink.delivery_status(cid, rang_out.id, rang_out.target_id, ProviderStatus.NO_ANSWER,
                               "no-answer")
    await sink.delivery_status(cid, sms[2].id, sms[2].target_id, ProviderStatus.DELIVERED,
                               "delivered")
    await sink.delivery_status(cid, sms[3].id, sms[3].target_id, ProviderStatus.UNDELIVERED,
                               "30003")
    targets = await ctx.store.targets(cid)
    primaries = sorted(t.id for t in targets.values() if t.role and t.role.value == "primary")
    confirmed = set(primaries[: len(primaries) // 2]) - {busy.target_id, rang_out.target_id}
    for pid in confirmed:
        await record_ack(ctx, cid, pid, AckVia.LINK)
    for step in (200, 200, 400):  # redials, then the backups
        h.clock.advance(step)
        await h.drain()
    await sign_in(client, "dora")
    r = await client.get(f"/console/campaigns/{cid}/record.csv")
    assert r.status == 200
    rows = _rows(await r.text())
    assert SENT in rows[0] and "结果" in rows[0] and "第几次" in rows[0] and "确认方式" in rows[0]

    # Who was called, on which channel, how often: exactly the test channels' sends.
    sent: Counter[tuple[str, str]] = Counter()
    for ch, medium in MEDIUM_ZH.items():
        for d in h.sent(ch):
            if d.target_kind.value == "person":
                sent[(ctx.person(d.target_id).name, medium)] += 1
    calls = [r for r in rows if r["第几次"] and r["渠道"] != "应急广播"]
    speakers = [r for r in rows if r["渠道"] == "应急广播"]
    assert speakers and all(r["责任人"].endswith("应急广播") for r in speakers)
    assert Counter((r["责任人"], r["渠道"]) for r in calls) == sent
    # 第几次 numbers each person's calls per channel in time order, 1..n.
    by_call: dict[tuple[str, str, str], list[dict[str, str]]] = {}
    for r in calls:  # names repeat in a county: the grid tells two people apart
        by_call.setdefault((r["责任人"], r["网格"], r["渠道"]), []).append(r)
    assert any(len(v) > 1 for v in by_call.values())
    for got in by_call.values():
        assert [r["第几次"] for r in got] == [f"第{i}次" for i in range(1, len(got) + 1)], got
        assert [r[SENT] for r in got] == sorted(r[SENT] for r in got)
    # Times in Beijing time: the first wave went out at T0 (05:30 UTC, 13:30 in Beijing).
    assert min(r[SENT] for r in calls) == T0.astimezone(BJ).strftime("%Y-%m-%d %H:%M:%S")
    # Steps in words, and as the channels' sends say.
    steps = {r["步骤"] for r in calls}
    assert {"首次", "第1次重拨", "升级至备岗网格员"} <= steps, steps
    want_steps = Counter(step_zh(str(d.step), d.kind.value) for ch in MEDIUM_ZH
                         for d in h.sent(ch) if d.target_kind.value == "person")
    assert Counter(r["步骤"] for r in calls) == want_steps

    def row_of(d) -> dict[str, str]:  # type: ignore[no-untyped-def]
        name = ctx.person(d.target_id).name
        medium = MEDIUM_ZH[ctx.channels[d.channel].medium.value]
        return next(r for r in calls if r["责任人"] == name and r["渠道"] == medium
                    and r["步骤"] == "首次")

    # Outcomes as the providers reported them, on the call they reported.
    assert row_of(busy)["结果"] == "忙" and row_of(rang_out)["结果"] == "未接"
    assert row_of(sms[2])["结果"] == "已送达" and row_of(sms[3])["结果"] == "发送失败（30003）"
    assert row_of(busy)["回执时间（北京时间（UTC+8））"].startswith("2026-07-15 13:30")
    # Confirmations: who, how, when.
    grids_of = {p: "、".join(ctx.registry.data.grids[g].name for g in targets[p].grids)
                for p in targets if p in confirmed}
    who_confirmed = {(ctx.person(p).name, grids_of[p]) for p in confirmed}
    for r in rows:
        pid_confirmed = (r["责任人"], r["网格"]) in who_confirmed
        assert (r["是否确认"] == "已确认") == pid_confirmed, r
        if pid_confirmed:
            assert r["确认方式"] == "确认链接" and r["确认时间（北京时间（UTC+8））"]
    # Nothing English or raw is left in what a person reads.
    for r in calls:
        assert r["结果"] not in ("accepted", "sent", "") and not r["步骤"].isdigit()


async def test_the_printed_record_is_in_chinese_and_beijing_time(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    ctx = h.ctx
    cid = await _drill(h)
    targets = await ctx.store.targets(cid)
    pid = next(t.id for t in targets.values() if t.role and t.role.value == "primary")
    await record_ack(ctx, cid, pid, AckVia.CONSOLE, by="dora", reason="电话回拨确认")
    h.clock.advance(900)
    await h.drain()
    await sign_in(client, "dora")
    page = await (await client.get(f"/console/campaigns/{cid}/print",
                                   headers={"Accept": "text/html"})).text()
    assert "本记录中的时间均为北京时间（UTC+8）" in page
    assert "值班员（签字）" in page and "带班领导（签字）" in page
    # The start in Beijing time, never in UTC.
    start = datetime.fromtimestamp(T0.timestamp(), UTC)
    assert start.astimezone(BJ).strftime("%Y-%m-%d %H:%M") in page
    # Manual confirmation: the user's display name and the reason.
    manual = page.split("人工确认（1）")[1].split("</table>")[0]
    assert "Dora" in manual and "电话回拨确认" in manual
    # Persons, grids and loudspeakers are counted apart.
    assert "叫应对象（人）" in page and "网格（个）" in page and "应急广播（个）" in page
    total = page.split("分乡镇统计")[1].split("</table>")[0].split("<td>合计</td>")[1]
    speakers = sum(len(ctx.registry.devices_of_village(v)) for v in ctx.registry.data.regions
                   if v.startswith("430623101") and v != "430623101000")
    assert speakers and f"<td>{speakers}</td></tr>" in total, total
    assert "升级至备岗网格员" in page and "超时未确认" in page
    assert "accepted" not in page.split("叫应记录（")[1]


@pytest.mark.parametrize(("what", "detail", "medium", "said"), [
    (DeliveryReport.NO_ANSWER, "busy", "voice", "忙"),  # Twilio CallStatus
    (DeliveryReport.NO_ANSWER, "no-answer", "voice", "未接"),
    (DeliveryReport.NO_ANSWER, "canceled", "voice", "未接"),
    (DeliveryReport.NO_ANSWER, "answered without a key press", "voice", "已接通（未按键确认）"),
    (DeliveryReport.NO_ANSWER, "200002 用户占线", "voice", "忙"),  # Aliyun's codes
    (DeliveryReport.NO_ANSWER, "200010 关机", "voice", "关机"),
    (DeliveryReport.NO_ANSWER, "200007 用户不在服务区", "voice", "不在服务区"),
    (DeliveryReport.NO_ANSWER, "VOICE_MAILBOX 语音信箱", "voice", "语音信箱/转接（未接通本人）"),
    (DeliveryReport.ANSWERED, "用户提前挂机未完整收听", "voice", "已接通（提前挂机，未按键）"),
    (DeliveryReport.ANSWERED, "接听未按键", "voice", "已接通（未按键确认）"),
    (DeliveryReport.DELIVERED, "completed, pressed 1", "voice", "已接通"),
    (DeliveryReport.DELIVERED, "DELIVRD", "sms", "已送达"),
    (DeliveryReport.DELIVERED, "confirmed by sms", "sms", "已确认"),
    (DeliveryReport.READ, "", "wecom", "已读"),
    (DeliveryReport.FAILED, "30003", "sms", "发送失败（30003）"),
    (DeliveryReport.DELIVERED, "done", "loudspeaker", "已播放"),
])
def test_a_providers_report_in_words(what: DeliveryReport, detail: str, medium: str,
                                     said: str) -> None:
    assert report_zh(Report(what.value, detail, "0"), medium) == said


def test_a_report_that_came_before_its_call_was_stored_belongs_to_that_call() -> None:
    """The provider's receipt can reach the engine before the dispatcher has stored the
    call's attempt (the simulators push 10 ms after accepting): it is that call's outcome."""
    audit = [{"ev": "status", "d": "dl_1", "s": "no-answer", "x": "retry: 关机 (200010)",
              "at": "1"},
             {"ev": "attempt", "d": "dl_1", "tg": "p1", "ch": "voice", "st": "0",
              "k": "warning", "n": "1"},
             {"ev": "attempt", "d": "dl_2", "tg": "p1", "ch": "voice", "st": "1",
              "k": "redial", "n": "1"},
             {"ev": "status", "d": "dl_2", "s": "no-answer", "x": "busy", "at": "2"}]
    got = reports_by_call(audit)
    assert [report_zh(r, "voice") for r in got[("p1", "voice", "0", "warning", "1")]] == ["关机"]
    assert [report_zh(r, "voice") for r in got[("p1", "voice", "1", "redial", "1")]] == ["忙"]


@pytest.mark.parametrize(("detail", "said"), [
    ("skipped voice-tencent: 2 calls in 10 min -> voice-aliyun",
     "voice-tencent对同一号码10分钟内限2次，改由voice-aliyun发送"),
    ("skipped sms: 1 message in 30 s -> voice-tencent",
     "sms对同一号码30秒内限1次，改由voice-tencent发送"),
    ("skipped voice-tencent: 1 call at night (22:00-08:00) -> voice-aliyun",
     "voice-tencent对同一号码夜间（22:00-08:00）限1次，改由voice-aliyun发送"),
    ("skipped voice-a: 3 calls a day -> no path left at this step",
     "voice-a对同一号码每天限3次，本步已无其他线路"),
    ("服务商持续故障", "服务商持续故障"),
])
def test_a_re_route_before_a_limit_in_words(detail: str, said: str) -> None:
    assert limited_zh(detail) == said
