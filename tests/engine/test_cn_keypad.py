"""A report by the keypad on Aliyun and Tencent voice calls: the providers push the keys
pressed (Aliyun: VoiceCallReport status 300000 and the call record VoiceReport, their `dtmf`;
Tencent: the voicekey_callback `keypress`), the 1 confirms and the keys after it are the
report, read by the same `keypad_report` as Twilio's. The real channels on the official SDKs
place the calls at their simulators, which push to the engine's own web app (hook secret in
the path, as deployed); the report lands in the record and on the board, once per call."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import msgspec
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from structlog.testing import capture_logs

from channels.aliyun_voice import AliyunVoice
from channels.sim.aliyun_sim import AliyunSimulator
from channels.sim.tencent_sim import TencentSimulator
from channels.tencent_voice import TencentVoice
from tests.channels_aliyun import aliyun_kit as ak
from tests.channels_tencent import tencent_kit as tk
from tests.cn_kit import NOBODY
from tests.engine.helpers import Harness, cap_alert, make_harness
from warnbus.domain.feedback import FeedbackKind, Report
from warnbus.domain.models import AckVia, Delivery
from warnbus.flow.credentials import ENGINE
from warnbus.flow.events import EngineSink
from warnbus.flow.feedback_view import feedback_rows, feedback_tallies
from warnbus.flow.intake import accept
from warnbus.runtime.services import free_port
from warnbus.web.api import make_web_app

TOWNSHIP = "430623101000"


@dataclass
class Cn:
    h: Harness
    client: TestClient  # type: ignore[type-arg]
    aliyun: AliyunSimulator
    tencent: TencentSimulator
    channels: dict[str, Any]
    base: str


@pytest_asyncio.fixture
async def cn(redis_url: str) -> AsyncIterator[Cn]:
    port = free_port()
    base = f"http://127.0.0.1:{port}/hooks"
    aliyun = AliyunSimulator(
        ak.AK_ID, ak.AK_SECRET, NOBODY, sign_names=(ak.SIGN,), voice_templates={
            **ak.REGISTERED_VOICE, ak.CONFIRM_CODE: "已确认，谢谢。如需报送请按键，以井号键结束。"},
        show_numbers=(ak.SHOW,), duplicate=True,
        voice_report_url=f"{base}/aliyun-voice/{ak.HOOK_SECRET}/voice-report",
        voice_call_report_url=f"{base}/aliyun-voice/{ak.HOOK_SECRET}/voice-call-report")
    tencent = TencentSimulator(
        tk.SECRET_ID, tk.SECRET_KEY, NOBODY, sign_names=(tk.SIGN,), sdk_app_id=tk.APP_ID,
        voice_templates={tk.VOICE_CODE: tk.VOICE_CONTENT}, duplicate=True,
        voice_url=f"{base}/tencent-voice/{tk.HOOK_SECRET}/voice")
    channels = {
        "aliyun-voice": AliyunVoice.from_config("aliyun-voice", ak.voice_config(
            await aliyun.start(), f"{base}/aliyun-voice")),
        "tencent-voice": TencentVoice.from_config("tencent-voice", tk.config(
            "voice", await tencent.start(), f"{base}/tencent-voice")),
    }
    h = await make_harness(redis_url, hooks=channels)
    client = TestClient(TestServer(make_web_app(h.app), port=port))
    await client.start_server()
    yield Cn(h, client, aliyun, tencent, channels, base)
    await client.close()
    await h.app.close()
    await aliyun.stop()
    await tencent.stop()


async def _campaign(cn: Cn, ident: str) -> tuple[str, list[Delivery]]:
    res = await accept(cn.h.ctx, cap_alert(ident, codes=(TOWNSHIP,)), ENGINE)
    await cn.h.drain()
    calls = [d for d in cn.h.sent("voice") if d.asks_confirmation]
    by_person = {d.target_id: d for d in calls}
    return res.campaign_id, sorted(by_person.values(), key=lambda d: d.target_id)


async def _call(cn: Cn, provider: str, d: Delivery, ending: str) -> None:
    """`d`'s call placed by `provider`'s real channel; its person does `ending`."""
    national = (d.address or "").removeprefix("+86")
    if provider == "aliyun-voice":
        cn.aliyun.scripted[national] = ending
    else:
        cn.tencent.scripted["+86" + national] = ending
    await cn.channels[provider].send(msgspec.structs.replace(d, channel=provider))
    await (cn.aliyun if provider == "aliyun-voice" else cn.tencent).wait_idle()


async def test_a_keypad_report_on_aliyun_and_tencent_lands_in_the_record_and_board(
        cn: Cn) -> None:
    cid, calls = await _campaign(cn, "43062304100000_20260715053201_1")
    a, t, bad_a, bad_t, plain = calls[:5]
    with capture_logs() as logs:
        await _call(cn, "aliyun-voice", a, "confirm:435#")  # 1, then 4 35 #: 转移 35 人
        await _call(cn, "tencent-voice", t, "confirm:2#")  # 1, then 2 #: 到岗
        await _call(cn, "aliyun-voice", bad_a, "confirm:4x#")  # keys that say no report
        await _call(cn, "tencent-voice", bad_t, "confirm:9#")
        await _call(cn, "aliyun-voice", plain, "confirm")  # 1 only: confirmed, no report
    store = cn.h.ctx.store
    for d in (a, t, bad_a, bad_t, plain):
        assert await store.is_acked(cid, d.target_id), d.target_id
    history = await store.feedback.history(cid)
    assert sorted((f.person_id, f.report.kind, f.report.count, f.via) for f in history) == sorted([
        (a.target_id, FeedbackKind.EVACUATED, 35, "dtmf"),
        (t.target_id, FeedbackKind.ARRIVED, None, "dtmf")])
    # The malformed keys are logged (once per call, though each provider pushed them twice
    # and Aliyun in two reports); the confirmation stands.
    unread = [e for e in logs if e["event"] == "keypad report not understood"]
    assert sorted(e["channel"] for e in unread) == ["aliyun-voice", "tencent-voice"]
    # The record's feedback section, and the board's totals (the whole campaign, the
    # township) say it.
    rows = await feedback_rows(cn.h.ctx, cid)
    assert sorted((r["person_id"], r["report"]) for r in rows) == sorted([
        (a.target_id, "已转移 35 人"), (t.target_id, "已到岗")])
    tallies = await feedback_tallies(cn.h.ctx, cid)
    assert tallies[""].evacuated == 35 and tallies[TOWNSHIP].evacuated == 35
    assert tallies[""].reported == 2


async def test_a_replayed_keypad_report_is_kept_once(cn: Cn) -> None:
    cid, calls = await _campaign(cn, "43062304100000_20260715053202_1")
    d = calls[0]
    await _call(cn, "aliyun-voice", d, "confirm:412#")
    assert [f.report.count for f in await cn.h.ctx.store.feedback.history(cid)] == [12]
    # The signed push replayed (every report of the call, again), and the same call's
    # report handed to the engine by another process: nothing more is kept.
    call = cn.aliyun.calls[-1]
    async with aiohttp.ClientSession() as http:
        for push in list(cn.aliyun.pushes):
            if call.call_id in str(push.payload):
                async with http.post(push.url, json=push.payload) as r:
                    assert r.status == 200 and (await r.json())["code"] == 0
    other = EngineSink(cn.h.ctx)
    assert await other.report(cid, d.target_id, AckVia.DTMF,
                              Report(FeedbackKind.EVACUATED, count=12),
                              f"call|aliyun-voice|{call.call_id}")
    assert [f.report.count for f in await cn.h.ctx.store.feedback.history(cid)] == [12]
