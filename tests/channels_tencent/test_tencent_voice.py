"""TencentVoice against the simulator: SendTtsVoice, key press, outcomes, default limits."""

from __future__ import annotations

import time
from datetime import datetime

import pytest
from tencent_kit import EVERYONE, PHONE, SECRET_KEY, VOICE_CODE, EnvFactory, delivery

from channels.sim.cn_limits import CHINA
from channels.tencent_voice import TencentVoice
from warnbus.domain.models import AckVia, DeliveryKind
from warnbus.errors import ConfigError, LimitedChannelError, PermanentChannelError
from warnbus.plugin import ProviderStatus

S = ProviderStatus
DAY = datetime(2024, 7, 1, 10, 0, tzinfo=CHINA).timestamp()
NIGHT = datetime(2024, 7, 1, 23, 0, tzinfo=CHINA).timestamp()


def call(did: str = "dl_1"):  # type: ignore[no-untyped-def]
    return delivery(channel="voice", did=did, kind=DeliveryKind.WARNING)


async def test_call_fills_the_template(make_env: EnvFactory) -> None:
    env = await make_env("voice")
    receipt = await env.channel.send(call())
    [c] = env.sim.calls
    assert receipt.provider_id == c.id and c.number == PHONE and c.template == VOICE_CODE
    assert c.params[0] == "红色" and c.context == "dl_1"


async def test_key_1_confirms_even_out_of_order_and_duplicated(make_env: EnvFactory) -> None:
    env = await make_env("voice", EVERYONE, out_of_order=True, duplicate=True)
    await env.channel.send(call())
    await env.sim.wait_idle()
    assert env.sink.confirms == [("cmp-1", "p-1", AckVia.DTMF, "dl_1")]
    assert all(p[2] == 200 for p in env.sim.pushes)


@pytest.mark.parametrize(("ending", "status"), [
    ("voicemail", S.ANSWERED), ("heard", S.ANSWERED), ("no-answer", S.NO_ANSWER),
    ("off", S.NO_ANSWER), ("empty", S.FAILED), ("stopped", S.FAILED),
])
async def test_how_a_call_ended(make_env: EnvFactory, ending: str, status: ProviderStatus
                                ) -> None:
    env = await make_env("voice", scripted={PHONE: ending})
    await env.channel.send(call())
    await env.sim.wait_idle()
    assert not env.sink.confirms  # voicemail does not confirm
    assert [s[3] for s in env.sink.statuses] == [status]


async def test_defaults_1_per_30s_2_per_10min_3_a_day(make_env: EnvFactory) -> None:
    now = [DAY]
    env = await make_env("voice", clock=lambda: now[0])
    await env.channel.send(call("dl_0"))
    with pytest.raises(LimitedChannelError) as info:
        await env.channel.send(call("dl_1"))  # within 30 s
    assert info.value.provider_code == "LimitExceeded.DeliveryFrequencyLimit"
    now[0] += 31
    await env.channel.send(call("dl_2"))
    now[0] += 31
    with pytest.raises(LimitedChannelError):
        await env.channel.send(call("dl_3"))  # a third within 10 minutes
    now[0] += 600
    await env.channel.send(call("dl_4"))
    now[0] += 3600
    with pytest.raises(LimitedChannelError):
        await env.channel.send(call("dl_5"))  # a fourth the same day
    assert len(env.sim.calls) == 3


async def test_one_call_at_night(make_env: EnvFactory) -> None:
    now = [NIGHT]
    env = await make_env("voice", clock=lambda: now[0])
    await env.channel.send(call("dl_0"))
    now[0] += 1800
    with pytest.raises(LimitedChannelError):
        await env.channel.send(call("dl_1"))
    assert len(env.sim.calls) == 1


async def test_wrong_key_and_skewed_clock(make_env: EnvFactory) -> None:
    env = await make_env("voice", channel_cfg={"secret_key": "wrong"})
    with pytest.raises(PermanentChannelError) as info:
        await env.channel.send(call())
    assert info.value.provider_code == "AuthFailure.SignatureFailure"
    skewed = await make_env("voice", auth_clock=lambda: time.time() - 400)
    with pytest.raises(PermanentChannelError) as info:
        await skewed.channel.send(call())
    assert info.value.provider_code == "AuthFailure.SignatureExpire"


async def test_a_key_for_an_unknown_call_confirms_by_number(make_env: EnvFactory) -> None:
    env = await make_env("voice")
    resp = await env.push("voice", {"voicekey_callback": {
        "call_from": "", "callid": "other", "keypress": "1", "mobile": "13812345678",
        "nationcode": "86"}})
    assert resp.status == 200 and await resp.json() == {"result": 0, "errmsg": "OK"}
    assert env.sink.replies == [("voice", PHONE, AckVia.DTMF)]
    assert env.sink.reply_ids == ["call|other"]


def test_pull_is_refused_at_start_up() -> None:
    raw = {"type": "tencent-voice", "secret_id": "id", "secret_key": SECRET_KEY,
           "sdk_app_id": "1400", "receipts": "pull",
           "templates": {"default": {"code": "1", "content": "预警{1}。",
                                     "params": {"1": "text"}}}}
    with pytest.raises(ConfigError, match="no pull API"):
        TencentVoice.from_config("voice", raw)


async def test_the_keys_after_1_in_one_push_are_a_report_keys_alone_are_not(
        make_env: EnvFactory) -> None:
    """One push with 1 and a report's keys reports; pushes of keys without the 1 (a key at a
    time, or after the call) confirm and report nothing; a report for a call placed
    elsewhere is matched by number, like its 1."""
    env = await make_env("voice")
    base = {"call_from": "", "mobile": "13812345678", "nationcode": "86"}
    for callid, keys in (("a", "4"), ("a", "3"), ("a", "#"), ("b", "1420#"), ("b", "1420#"),
                         ("c", "14x#")):
        resp = await env.push("voice", {"voicekey_callback": {**base, "callid": callid,
                                                              "keypress": keys}})
        assert resp.status == 200
    # b: its 1, then its report (named by the channel: another's call ids may clash)
    assert env.sink.reply_ids == ["call|b", "call|voice|b", "call|c"]
    assert [(r[1], r[3].count) for r in env.sink.reports] == [(PHONE, 20)]
