"""TwilioVoice against the simulator: the call script, press 1, how calls end, errors."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import defusedxml.ElementTree as SafeET
import msgspec
import pytest
from twilio_harness import EVERYONE, FROM, PHONE, SID, EnvFactory, delivery

from channels.twilio_voice import TWIML_MAX, TwilioVoice
from warnbus.domain.models import AckVia, Delivery, DeliveryKind
from warnbus.errors import ConfigError, PermanentChannelError, TransientChannelError
from warnbus.plugin import Confirmation, ProviderStatus

S = ProviderStatus
TEXT = ("县气象台发布暴雨红色预警。城关镇三小时内降雨将达100毫米以上。影响区域：城关镇。"
        "请立即转移危险区域群众。确认收到请按1。重复一遍：暴雨红色预警。确认收到请按1。")


def call(text: str = TEXT) -> Delivery:
    return delivery(text, channel="voice")


async def test_call_posts_script_and_callbacks(make_env: EnvFactory) -> None:
    env = await make_env("voice")
    receipt = await env.channel.send(call())
    assert receipt.provider_id is not None and receipt.provider_id.startswith("CA")
    [c] = env.sim.calls
    assert (c.get("To"), c.get("From"), c.get("Timeout")) == (PHONE, FROM, "30")
    assert c.form["StatusCallbackEvent"] == ["completed"]
    assert c.get("StatusCallback") == f"{env.hooks}/status?c=cmp-1&d=dl_1&t=p-1"
    script = SafeET.fromstring(c.get("Twiml") or "")
    gathers = script.findall("Gather")
    assert len(gathers) == 2
    for g in gathers:
        assert (g.get("input"), g.get("numDigits"), g.get("timeout"), g.get("method")) == (
            "dtmf", "1", "10", "POST")
        assert g.get("action") == f"{env.hooks}/gather?c=cmp-1&d=dl_1&t=p-1"
        [say] = g.findall("Say")
        assert say.get("language") == "zh-CN" and TEXT in (say.text or "")
    assert [e.tag for e in script] == ["Gather", "Gather", "Say"]
    assert "未收到确认" in (script[2].text or "")


async def test_press_1_confirms_with_dtmf(make_env: EnvFactory) -> None:
    env = await make_env("voice", EVERYONE)
    await env.channel.send(call())
    await env.sim.wait_idle()
    assert env.sink.confirms == [("cmp-1", "p-1", AckVia.DTMF, "dl_1")]
    assert env.sim.calls[0].digits == "1"
    gather = next(w for w in env.sim.webhooks if "/gather" in w.url)
    assert gather.status == 200 and "已确认，谢谢" in gather.body and "<Hangup" in gather.body
    # The key press is a confirmation through the delivery (the engine marks the call
    # delivered with it); the only call event asked for (CALL_EVENTS) is the final one.
    assert [(s[3], s[4]) for s in env.sink.statuses] == [(S.DELIVERED, "completed, pressed 1")]


@pytest.mark.parametrize(("late", "heard"), [(Confirmation.LIFTED, "该预警已解除"),
                                             (Confirmation.ENDED, "该预警已结束")])
async def test_a_late_key_press_is_not_told_it_confirmed(make_env: EnvFactory,
                                                        late: Confirmation, heard: str) -> None:
    """The engine keeps a key pressed after the end as late: the caller hears why nothing
    more is asked, never 已确认."""
    env = await make_env("voice", EVERYONE)
    env.sink.answer = late
    await env.channel.send(call())
    await env.sim.wait_idle()
    gather = next(w for w in env.sim.webhooks if "/gather" in w.url)
    assert heard in gather.body and "已确认" not in gather.body and "<Hangup" in gather.body


@pytest.mark.parametrize(("kind", "confirm"), [(DeliveryKind.CANCEL, None),
                                               (DeliveryKind.NOTICE, None),
                                               (DeliveryKind.UPDATE, False)])
async def test_a_call_that_asks_nothing_says_it_and_hangs_up(
        make_env: EnvFactory, kind: DeliveryKind, confirm: bool | None) -> None:
    """A 解除 was read inside a Gather, ended with 未收到确认，我们将再次呼叫 and was never
    counted delivered: it is said twice, the call hangs up, and answered is delivered."""
    env = await make_env("voice", EVERYONE)
    text = "预警解除通知。县应急管理局于7月15日14时30分解除暴雨红色预警，解除区域：城关镇。"
    await env.channel.send(delivery(text, channel="voice", kind=kind, confirm=confirm))
    await env.sim.wait_idle()
    [c] = env.sim.calls
    script = SafeET.fromstring(c.get("Twiml") or "")
    assert [e.tag for e in script] == ["Say", "Say", "Hangup"]
    assert text in (script[0].text or "") and text in (script[1].text or "")
    assert "未收到确认" not in (c.get("Twiml") or "")
    assert not env.sink.confirms
    assert [(s[3], s[4]) for s in env.sink.statuses] == [(S.DELIVERED, "completed (no key asked)")]


async def test_answered_without_key_is_no_answer(make_env: EnvFactory) -> None:
    env = await make_env("voice", unanswered=("answered",))
    await env.channel.send(call())
    await env.sim.wait_idle()
    assert not env.sink.confirms
    assert env.sim.calls[0].statuses == ["completed"]
    assert env.sink.statuses[-1][3:] == (S.NO_ANSWER, "answered without a key press")


@pytest.mark.parametrize("outcome", ["no-answer", "busy"])
async def test_unanswered_calls_are_no_answer(make_env: EnvFactory, outcome: str) -> None:
    env = await make_env("voice", unanswered=(outcome,))
    await env.channel.send(call())
    await env.sim.wait_idle()
    assert env.sink.statuses[-1][3:] == (S.NO_ANSWER, outcome)


async def test_failed_call_is_failed(make_env: EnvFactory) -> None:
    env = await make_env("voice", failures={PHONE: 30003})
    await env.channel.send(call())
    await env.sim.wait_idle()
    assert env.sink.statuses[-1][3] is S.FAILED and "30003" in env.sink.statuses[-1][4]


@pytest.mark.parametrize("code", [21215, 21216, 13224, 13223, 21211])
async def test_blocked_or_invalid_numbers_are_permanent(make_env: EnvFactory, code: int) -> None:
    env = await make_env("voice", failures={PHONE: code})
    with pytest.raises(PermanentChannelError) as info:
        await env.channel.send(call())
    assert info.value.provider_code == str(code) and PHONE not in info.value.message


@pytest.mark.parametrize(("code", "retry_after"), [(20429, 3.0), (500, None), (503, None)])
async def test_busy_twilio_is_transient(make_env: EnvFactory, code: int,
                                        retry_after: float | None) -> None:
    env = await make_env("voice", failures={PHONE: code}, retry_after_s=3)
    with pytest.raises(TransientChannelError) as info:
        await env.channel.send(call())
    assert info.value.retry_after == retry_after


GATHER = {"CallSid": "CA1", "AccountSid": SID, "From": FROM, "To": PHONE,
          "CallStatus": "in-progress", "Digits": "1"}
QUERY = "?c=cmp-1&d=dl_1&t=p-1"


async def test_other_keys_reprompt_a_bounded_number_of_times(make_env: EnvFactory) -> None:
    env = await make_env("voice")  # max_reprompts defaults to 2
    path = "gather" + QUERY
    for asked in range(3):
        resp = await env.post_signed(path, {**GATHER, "Digits": "7"})
        script = SafeET.fromstring(await resp.text())
        gather = script.find("Gather")
        if asked < 2:
            assert gather is not None and "请按1" in (gather.findtext("Say") or "")
            action = gather.get("action") or ""
            assert parse_qs(urlsplit(action).query)["r"] == [str(asked + 1)]
            path = action.removeprefix(env.hooks + "/")
        else:
            assert gather is None and script.find("Hangup") is not None
    assert not env.sink.touched


async def test_forged_key_press_changes_nothing(make_env: EnvFactory) -> None:
    env = await make_env("voice")
    bad = await env.post_signed("gather" + QUERY, GATHER, token="guessed")
    replayed = await env.post_signed("gather?c=cmp-1&d=dl_1&t=p-2", GATHER,
                                     signed_url=f"{env.hooks}/gather{QUERY}")
    assert (bad.status, replayed.status) == (403, 403)
    assert not env.sink.touched


async def test_completed_after_key_in_this_process_is_delivered(make_env: EnvFactory) -> None:
    env = await make_env("voice")
    await env.post_signed("gather" + QUERY, GATHER)
    await env.post_signed("status" + QUERY, {**GATHER, "CallStatus": "completed"})
    assert env.sink.statuses[-1][3] is S.DELIVERED


async def test_long_text_keeps_twiml_under_twilios_limit(make_env: EnvFactory) -> None:
    env = await make_env("voice")
    long = ("县气象台发布暴雨红色预警。" + "请立即转移危险区域群众，加强巡查。" * 200
            + "确认收到请按1。")
    await env.channel.send(call(long))
    twiml = env.sim.calls[0].get("Twiml") or ""
    assert len(twiml) <= TWIML_MAX
    say = SafeET.fromstring(twiml).find("Gather/Say")
    assert say is not None and (say.text or "").startswith("县气象台发布暴雨红色预警。")
    assert (say.text or "").endswith("确认收到请按1。")


@pytest.mark.parametrize("text", [TEXT, "a < b & c > \"d\" 'e'\n\tf\r", "wb-action-8d1f3a 在文中"])
@pytest.mark.parametrize("voice_name", [None, "Polly.Zhiyu"])
def test_kept_call_script_is_what_the_sdk_writes(text: str, voice_name: str | None) -> None:
    raw = {"type": "twilio-voice", "callback_url": "https://warn.example.cn/hooks/voice",
           "account_sid": SID, "auth_token": "t", "from_number": FROM, "tts_voice": voice_name}
    voice = TwilioVoice.from_config("voice", raw)
    actions = ["https://warn.example.cn/hooks/voice/gather?c=cp_1&d=dl_2&t=p%3A3",
               'http://h/x?a="q"&b=<1>\n\t\r', "https://h/gather?c=1"]
    for _ in range(2):  # written, then kept
        for action in actions:
            assert voice.call_twiml(text, action) == voice._write_twiml(text, action)


def test_config_limits() -> None:
    raw = {"type": "twilio-voice", "callback_url": "https://warn.example.cn/hooks/voice",
           "account_sid": SID, "auth_token": "t", "from_number": FROM}
    voice = TwilioVoice.from_config("voice", raw)
    assert voice.info.secret_fields == ("auth_token",) and voice.info.rate_per_s == 1.0
    with pytest.raises(ConfigError, match="ring_timeout_s"):
        TwilioVoice.from_config("voice", {**raw, "ring_timeout_s": 1})
    with pytest.raises(ConfigError, match="unknown field"):
        TwilioVoice.from_config("voice", {**raw, "max_segments": 2})


async def test_ids_with_odd_characters_survive_signing(make_env: EnvFactory) -> None:
    env = await make_env("voice", EVERYONE)
    odd = msgspec.structs.replace(delivery(TEXT, channel="voice"),
                                  target_id="网格:430623/张 三+1", campaign_id="c&d=1")
    await env.channel.send(odd)
    await env.sim.wait_idle()
    assert all(w.status == 200 for w in env.sim.webhooks)
    assert env.sink.confirms == [("c&d=1", "网格:430623/张 三+1", AckVia.DTMF, "dl_1")]


async def test_each_confirmation_asks_for_its_own_report(make_env: EnvFactory) -> None:
    """The report prompt is written once per answer; each key press gets its own action."""
    env = await make_env("voice")
    actions = []
    for query in (QUERY, "?c=cmp-2&d=dl_9&t=p-1"):
        resp = await env.post_signed("gather" + query, GATHER)
        script = SafeET.fromstring(await resp.text())
        says = [s.text for s in script.iter("Say")]
        gather = script.find("Gather")
        assert gather is not None and gather.get("finishOnKey") == "#"
        assert says[0] == "已确认，谢谢。" and "井号" in (gather.findtext("Say") or "")
        assert script.find("Hangup") is not None
        actions.append(gather.get("action"))
    assert actions == [f"{env.hooks}/feedback{QUERY}",
                       f"{env.hooks}/feedback?c=cmp-2&d=dl_9&t=p-1"]
