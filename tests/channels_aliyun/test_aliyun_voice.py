"""AliyunVoice against the simulator with the real SDK: IVR calls, keys, outcomes, limits."""

from __future__ import annotations

import pytest
from aliyun_kit import (
    CONFIRM_CODE,
    EVERYONE,
    NATIONAL,
    NOTICE_CODE,
    PHONE,
    VOICE_CODE,
    EnvFactory,
    delivery,
)

from channels.cn_outcomes import CallOutcome, aliyun_call_outcome
from warnbus.domain.models import AckVia, DeliveryKind
from warnbus.errors import LimitedChannelError, PermanentChannelError
from warnbus.plugin import ProviderStatus

S = ProviderStatus


def call(kind: DeliveryKind = DeliveryKind.WARNING, did: str = "dl_1"):  # type: ignore[no-untyped-def]
    return delivery(channel="voice", kind=kind, did=did)


async def test_warning_is_an_ivr_call_with_key_1(make_env: EnvFactory) -> None:
    env = await make_env("voice")
    receipt = await env.channel.send(call())
    [c] = env.sim.calls
    assert receipt.provider_id == c.call_id and c.api == "IvrCall" and c.number == NATIONAL
    assert c.template == VOICE_CODE and c.params["kind"] == "预警"
    assert "县气象台发布暴雨红色预警" in c.text and c.text.endswith("确认收到请按1。")
    assert len(c.out_id) <= 15


async def test_cancel_is_a_tts_call_of_its_own_template(make_env: EnvFactory) -> None:
    env = await make_env("voice")
    await env.channel.send(call(DeliveryKind.CANCEL))
    [c] = env.sim.calls
    assert (c.api, c.template) == ("SingleCallByTts", NOTICE_CODE)


@pytest.mark.parametrize(("kind", "confirm", "api"), [
    (DeliveryKind.UPDATE, False, "SingleCallByTts"),  # to someone who confirmed already
    (DeliveryKind.UPDATE, None, "IvrCall"),  # to someone who has not
    (DeliveryKind.CANCEL, True, "IvrCall"),  # a 解除 the policy wants confirmed
])
async def test_a_call_takes_the_key_when_its_message_asks(make_env: EnvFactory,
                                                          kind: DeliveryKind,
                                                          confirm: bool | None,
                                                          api: str) -> None:
    env = await make_env("voice")
    await env.channel.send(delivery(channel="voice", kind=kind, confirm=confirm))
    [c] = env.sim.calls
    assert c.api == api


async def test_key_1_confirms_through_the_delivery(make_env: EnvFactory) -> None:
    env = await make_env("voice", EVERYONE)
    await env.channel.send(call())
    await env.sim.wait_idle()
    assert env.sink.confirms == [("cmp-1", "p-1", AckVia.DTMF, "dl_1")]
    assert not env.sink.statuses  # the confirmation marks the call delivered


async def test_key_out_of_order_and_duplicated_confirms_once(make_env: EnvFactory) -> None:
    env = await make_env("voice", EVERYONE, out_of_order=True, duplicate=True)
    await env.channel.send(call())
    await env.sim.wait_idle()
    assert env.sink.confirms == [("cmp-1", "p-1", AckVia.DTMF, "dl_1")]
    assert all(p.status == 200 for p in env.sim.pushes)


@pytest.mark.parametrize(("ending", "status", "outcome"), [
    ("heard", S.ANSWERED, CallOutcome.HEARD),
    ("hangup", S.ANSWERED, CallOutcome.HUNG_UP_EARLY),
    ("voicemail", S.NO_ANSWER, CallOutcome.MACHINE),
    ("forwarded", S.NO_ANSWER, CallOutcome.MACHINE),
    ("busy", S.NO_ANSWER, CallOutcome.RETRY),
    ("no-answer", S.NO_ANSWER, CallOutcome.RETRY),
    ("off", S.NO_ANSWER, CallOutcome.RETRY),
    ("empty", S.FAILED, CallOutcome.PERMANENT),
    ("stopped", S.FAILED, CallOutcome.PERMANENT),
    ("carrier-limit", S.LIMITED, CallOutcome.LIMITED),
    ("carrier-night", S.LIMITED, CallOutcome.LIMITED),
])
async def test_how_a_call_ended(make_env: EnvFactory, ending: str, status: ProviderStatus,
                                outcome: CallOutcome) -> None:
    env = await make_env("voice", scripted={NATIONAL: ending})
    await env.channel.send(call())
    await env.sim.wait_idle()
    assert not env.sink.confirms  # voicemail "heard it in full" and confirms nothing
    [(cid, did, tid, got, detail)] = env.sink.statuses
    assert (cid, did, tid, got) == ("cmp-1", "dl_1", "p-1", status)
    assert detail.startswith(outcome.value)


async def test_voicemail_reported_after_the_final_record_is_still_a_machine(
        make_env: EnvFactory) -> None:
    """Out of order the final record comes first; it is then reported as heard. The
    outcome table itself says what the smart code means."""
    assert aliyun_call_outcome("200000", "INTELLIGENT_ANSWER")[0] is CallOutcome.MACHINE
    env = await make_env("voice", scripted={NATIONAL: "voicemail"})
    await env.channel.send(call())
    await env.sim.wait_idle()
    assert env.sink.statuses[0][3] is S.NO_ANSWER


async def test_a_key_for_a_call_of_another_process_confirms_by_number(
        make_env: EnvFactory) -> None:
    env = await make_env("voice")
    resp = await env.push("voice-report", [{"call_id": "999^1", "status_code": "200000",
                                            "callee": NATIONAL, "dtmf": "1"}])
    assert resp.status == 200 and (await resp.json())["code"] == 0
    assert env.sink.replies == [("voice", PHONE, AckVia.DTMF)]
    assert env.sink.reply_ids == ["call|999^1"], "once per call, in every process"


async def test_per_number_limit_one_call_a_minute(make_env: EnvFactory) -> None:
    env = await make_env("voice")
    await env.channel.send(call())
    with pytest.raises(LimitedChannelError) as info:
        await env.channel.send(call(DeliveryKind.REDIAL, "dl_2"))
    assert info.value.provider_code == "isv.BUSINESS_LIMIT_CONTROL"
    assert len(env.sim.calls) == 1


async def test_five_an_hour_then_twenty_a_day(make_env: EnvFactory) -> None:
    now = [1_720_000_000.0]
    env = await make_env("voice", clock=lambda: now[0])
    refused = []
    for i in range(25):
        try:
            await env.channel.send(call(did=f"dl_{i}"))
        except LimitedChannelError:
            refused.append(i)
        now[0] += 61 if i % 5 != 4 else 3600
    assert len(env.sim.calls) == 20 and refused and refused[0] == 20
    assert env.sim.refusals[-1] == ("IvrCall", "isv.BUSINESS_LIMIT_CONTROL")


async def test_unknown_tts_template_is_permanent(make_env: EnvFactory) -> None:
    env = await make_env("voice", voice_templates={CONFIRM_CODE: "已确认"})
    with pytest.raises(PermanentChannelError) as info:
        await env.channel.send(call())
    assert info.value.provider_code == "isv.TTS_TEMPLATE_ILLEGAL"


async def test_wrong_secret(make_env: EnvFactory) -> None:
    env = await make_env("voice", channel_cfg={"access_key_secret": "wrong-secret"})
    with pytest.raises(PermanentChannelError) as info:
        await env.channel.send(call())
    assert info.value.provider_code == "SignatureDoesNotMatch"


async def test_pull_mode_reports_how_the_call_ended(make_env: EnvFactory) -> None:
    env = await make_env("voice", channel_cfg={"receipts": "pull", "hook_secret": "",
                                                "pull_interval_s": 0.05},
                         scripted={NATIONAL: "busy"}, voice_report_url=None,
                         voice_call_report_url=None)
    await env.channel.send(call())
    await env.sink.wait_for(lambda: env.sink.statuses)
    assert env.sink.statuses[0][3] is S.NO_ANSWER and "200002" in env.sink.statuses[0][4]


async def test_keys_before_the_hash_report_nothing_until_the_record_has_them_all(
        make_env: EnvFactory) -> None:
    """A key report (300000) of "14" may be the first keys of "435#": it confirms; the call
    record at the end of the call has every key, and its report is kept once."""
    env = await make_env("voice")
    receipt = await env.channel.send(call())
    cid = receipt.provider_id
    for hook, payload in (
            ("voice-call-report", [{"call_id": cid, "status_code": "300000", "dtmf": "14"}]),
            ("voice-report", [{"call_id": cid, "status_code": "200000", "dtmf": "1435#",
                               "callee": NATIONAL}]),
            ("voice-report", [{"call_id": cid, "status_code": "200000", "dtmf": "1435#",
                               "callee": NATIONAL}])):
        assert (await env.push(hook, payload)).status == 200
    assert env.sink.confirms == [("cmp-1", "p-1", AckVia.DTMF, "dl_1")]
    assert [(r[0], r[1], r[3].count) for r in env.sink.reports] == [("cmp-1", "p-1", 35)]
    assert env.sink.event_ids == [f"call|voice|{cid}"]
