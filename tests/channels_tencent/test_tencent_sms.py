"""TencentSms against the simulator with the SDK's async client: send, TC3, limits, receipts."""

from __future__ import annotations

import time

import pytest
from tencent_kit import (
    EVERYONE,
    PHONE,
    SECRET_KEY,
    SMS_CODE,
    SMS_TEMPLATES,
    TEXT,
    EnvFactory,
    delivery,
)

from channels.tencent_sms import TencentSms
from warnbus.domain.models import AckVia
from warnbus.errors import (
    ConfigError,
    LimitedChannelError,
    PermanentChannelError,
    TransientChannelError,
)
from warnbus.plugin import ProviderStatus

S = ProviderStatus


async def test_send_fills_the_positional_template(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    receipt = await env.channel.send(delivery())
    [msg] = env.sim.messages
    assert receipt.provider_id == msg.id and msg.number == PHONE and msg.template == SMS_CODE
    assert msg.params[0] == "红色" and "".join(msg.params[1:]) == TEXT
    assert all(1 <= len(p) <= 12 for p in msg.params) and msg.context == "dl_1"


def test_a_template_too_small_for_the_account_limit_is_a_start_up_error() -> None:
    raw = {"type": "tencent-sms", "secret_id": "id", "secret_key": SECRET_KEY,
           "sdk_app_id": "1400", "sign_name": "单位", "hook_secret": "h" * 16,
           "templates": SMS_TEMPLATES, "variable_max_chars": 2}
    with pytest.raises(ConfigError, match=r"templates.default .*16 characters"):
        TencentSms.from_config("sms", raw)
    with pytest.raises(ConfigError, match="numbered"):
        TencentSms.from_config("sms", {**raw, "variable_max_chars": 12, "templates": {
            "default": {"code": "1", "content": "预警{1}{3}", "params": {"1": "text",
                                                                      "3": "text"}}}})


async def test_wrong_secret_key_fails_the_signature(make_env: EnvFactory) -> None:
    env = await make_env("sms", channel_cfg={"secret_key": "not-the-key"})
    with pytest.raises(PermanentChannelError, match="secret_key") as info:
        await env.channel.send(delivery())
    assert info.value.provider_code == "AuthFailure.SignatureFailure"
    assert not env.sim.messages


async def test_a_clock_skewed_over_5_minutes_is_signature_expire(make_env: EnvFactory) -> None:
    env = await make_env("sms", auth_clock=lambda: time.time() + 301)
    with pytest.raises(PermanentChannelError, match="NTP") as info:
        await env.channel.send(delivery())
    assert info.value.provider_code == "AuthFailure.SignatureExpire"
    within = await make_env("sms", auth_clock=lambda: time.time() + 240)
    await within.channel.send(delivery())  # 4 minutes off is still accepted


async def test_unknown_template_is_permanent(make_env: EnvFactory) -> None:
    env = await make_env("sms", sms_templates={})
    with pytest.raises(PermanentChannelError) as info:
        await env.channel.send(delivery())
    assert info.value.provider_code == "FailedOperation.TemplateIncorrectOrUnapproved"


async def test_a_variable_over_the_account_limit_is_refused(make_env: EnvFactory) -> None:
    """A deployment that declares more than its account allows hears it from Tencent."""
    env = await make_env("sms", sms_var_max=6)
    with pytest.raises(PermanentChannelError) as info:
        await env.channel.send(delivery(TEXT + TEXT))  # 8 variables of 12 characters
    assert info.value.provider_code == "InvalidParameterValue.TemplateParameterLengthLimit"


@pytest.mark.parametrize(("advance", "code"), [
    (0, "LimitExceeded.PhoneNumberThirtySecondLimit"),
    (31, "LimitExceeded.PhoneNumberOneHourLimit"),
])
async def test_per_number_limits_come_per_number(make_env: EnvFactory, advance: float,
                                                 code: str) -> None:
    now = [1_720_000_000.0]
    env = await make_env("sms", clock=lambda: now[0])
    sent = 1 if advance == 0 else 5
    for i in range(sent):
        await env.channel.send(delivery(did=f"dl_{i}"))
        now[0] += advance
    with pytest.raises(LimitedChannelError) as info:
        await env.channel.send(delivery(did="dl_x"))
    assert info.value.provider_code == code and len(env.sim.messages) == sent


@pytest.mark.parametrize(("code", "kind"), [
    ("FailedOperation.InsufficientBalanceInSmsPackage", PermanentChannelError),
    ("FailedOperation.PhoneNumberInBlacklist", PermanentChannelError),
    ("InternalError.Timeout", TransientChannelError),
])
async def test_error_classes(make_env: EnvFactory, code: str, kind: type[Exception]) -> None:
    env = await make_env("sms", failures={PHONE: code})
    with pytest.raises(kind) as info:
        await env.channel.send(delivery())
    assert info.value.provider_code == code  # type: ignore[attr-defined]


async def test_status_callbacks_duplicated_and_late_give_one_status(make_env: EnvFactory
                                                                    ) -> None:
    env = await make_env("sms", duplicate=True, late_s=0.05)
    await env.channel.send(delivery())
    await env.sim.wait_idle()
    assert len(env.sim.pushes) == 2 and all(p[2] == 200 for p in env.sim.pushes)
    assert [s[:4] for s in env.sink.statuses] == [("cmp-1", "dl_1", "p-1", S.DELIVERED)]


async def test_reply_callback_confirms_and_answers_result_0(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    body = {"extend": "", "mobile": "13812345678", "nationcode": "86", "sign": "x",
            "text": "收到", "time": 1470724000}
    resp = await env.push("sms-reply", body)
    assert resp.status == 200 and await resp.json() == {"result": 0, "errmsg": "OK"}
    await env.push("sms-reply", body)  # pushed again
    assert env.sink.replies == [("sms", PHONE, AckVia.SMS)]
    assert env.sink.reply_ids == [f"up|{PHONE}|1470724000||收到"]


async def test_two_officers_answering_in_one_second_are_two_replies(make_env: EnvFactory
                                                                     ) -> None:
    """Tencent's reply carries its time to the second and the text, nothing unique: the
    reply's id the engine remembers names the sender too, or the second officer's 收到 in the
    same second was taken for the first's and dropped."""
    env = await make_env("sms")
    for mobile in ("13812345678", "13912345678"):
        await env.push("sms-reply", {"extend": "", "mobile": mobile, "nationcode": "86",
                                     "sign": "x", "text": "收到", "time": 1470724000})
    assert len(env.sink.replies) == 2 and len(set(env.sink.reply_ids)) == 2


async def test_simulated_officer_replies(make_env: EnvFactory) -> None:
    env = await make_env("sms", EVERYONE)
    await env.channel.send(delivery())
    await env.sim.wait_idle()
    assert env.sink.replies == [("sms", PHONE, AckVia.SMS)]


async def test_pull_mode_pulls_statuses_and_replies(make_env: EnvFactory) -> None:
    env = await make_env("sms", EVERYONE, pull=True,
                         channel_cfg={"receipts": "pull", "hook_secret": "",
                                      "pull_interval_s": 0.05})
    assert env.channel.webhooks(env.sink) == []
    await env.channel.send(delivery())
    await env.sink.wait_for(lambda: env.sink.statuses and env.sink.replies)
    assert [s[3] for s in env.sink.statuses] == [S.DELIVERED]
    assert env.sink.replies == [("sms", PHONE, AckVia.SMS)]


async def test_a_pulled_reply_the_engine_could_not_store_is_applied_later(
        make_env: EnvFactory) -> None:
    env = await make_env("sms", pull=True,
                         channel_cfg={"receipts": "pull", "hook_secret": ""})
    await env.channel.send(delivery())
    await env.sim.wait_idle()
    await env.channel.pull_once()  # the status
    await env.sim.reply(env.sim.messages[0], "1")
    env.sink.fail = 1
    with pytest.raises(ConnectionError):
        await env.channel.pull_once()
    assert not env.sim.held_replies and not env.sink.replies  # Tencent gave it once
    await env.channel.pull_once()
    assert env.sink.replies == [("sms", PHONE, AckVia.SMS)]


async def test_a_report_reply_goes_to_the_engine_as_a_report(make_env: EnvFactory) -> None:
    """"零报告" is a report after the ack: handed over parsed, once however often pushed."""
    from warnbus.plugin import FeedbackKind, Report

    env = await make_env("sms")
    body = {"extend": "", "mobile": "13812345678", "nationcode": "86", "sign": "x",
            "text": "零报告", "time": 1470724001}
    resp = await env.push("sms-reply", body)
    assert resp.status == 200 and await resp.json() == {"result": 0, "errmsg": "OK"}
    await env.push("sms-reply", body)
    assert env.sink.reports == [("", PHONE, AckVia.SMS, Report(FeedbackKind.ZERO))]
    assert env.sink.replies == []
