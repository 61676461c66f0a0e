"""AliyunSms against the simulator with the real SDK: send, templates, receipts, replies, errors."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from alibabacloud_dysmsapi20170525 import models as sms_models
from aliyun_kit import (
    AK_SECRET,
    EVERYONE,
    HOOK_SECRET,
    NATIONAL,
    PHONE,
    SMS_CODE,
    SMS_TEMPLATES,
    TEXT,
    EnvFactory,
    delivery,
)

from channels.aliyun_common import call, params_json, runtime
from channels.aliyun_sms import AliyunSms
from channels.sim.cn_limits import NONE
from warnbus.domain.models import AckVia
from warnbus.errors import (
    ConfigError,
    LimitedChannelError,
    PermanentChannelError,
    TransientChannelError,
)
from warnbus.plugin import ProviderStatus

S = ProviderStatus
LINK = "https://warn.example.cn/ack/eyJjIjoiY21wLTEifQ.c2ln"


async def test_send_fills_the_approved_template(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    receipt = await env.channel.send(delivery())
    [msg] = env.sim.messages
    assert receipt.provider_id == msg.biz_id and msg.number == NATIONAL
    assert msg.template == SMS_CODE and msg.out_id == "dl_1"
    assert (msg.params["level"], msg.params["kind"]) == ("红色", "预警")
    assert "".join(msg.params[f"t{i}"] for i in range(1, 5)) == TEXT
    assert all(1 <= len(v) <= 35 for v in msg.params.values())
    assert msg.text.startswith("【华容县应急管理局】红色预警：【红色预警】县气象台")


async def test_the_ack_link_never_goes_into_a_variable(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    await env.channel.send(delivery(TEXT + "，或点击链接确认：" + LINK, ack_url=LINK))
    [msg] = env.sim.messages  # the simulator refuses URLs (isv.PARAM_NOT_SUPPORT_URL)
    assert "http" not in msg.text and msg.text.endswith("回复1确认收到。回复1确认收到。")


async def test_long_text_is_shortened_to_one_message_keeping_head_and_tail(
        make_env: EnvFactory) -> None:
    env = await make_env("sms")
    long = ("【红色预警】县气象台发布暴雨红色预警。"
            + "".join(f"第{i}条：请转移危险区域群众。" for i in range(30)) + "回复1确认收到")
    await env.channel.send(delivery(long))
    [msg] = env.sim.messages
    carried = "".join(msg.params[f"t{i}"] for i in range(1, 5))
    assert carried.startswith("【红色预警】县气象台发布暴雨红色预警。")
    assert carried.endswith("回复1确认收到") and len(carried) <= 140


async def test_long_text_goes_as_several_messages_when_allowed(make_env: EnvFactory) -> None:
    env = await make_env("sms", channel_cfg={"max_messages": 3}, sms_limits=NONE)
    long = "【红色预警】县气象台发布暴雨红色预警。" + "请立即转移危险区域群众。" * 30
    receipt = await env.channel.send(delivery(long))
    assert len(env.sim.messages) == 3 and receipt.provider_id.count(",") == 2
    parts = ["".join(m.params[f"t{i}"] for i in range(1, 5)) for m in env.sim.messages]
    assert [p[:5] for p in parts] == ["(1/3)", "(2/3)", "(3/3)"]
    await env.sim.wait_idle()
    assert [s[3] for s in env.sink.statuses] == [S.DELIVERED]  # one status per delivery


@pytest.mark.parametrize(("template", "match"), [
    ({"code": "SMS_1", "content": "${a}${b}", "params": {"a": "text", "b": "text"}},
     "only of variables"),
    ({"code": "SMS_1", "content": "预警：${a}。", "params": {}}, "no source"),
    ({"code": "SMS_1", "content": "预警：${a}。", "params": {"a": "level"}}, "message text"),
    ({"code": "SMS_1", "content": "预警：${a}${b}。", "params": {"a": "text", "b": "txt"}},
     "unknown source"),
    ({"code": "SMS_1", "content": "长" * 495 + "${a}${b}", "params": {"a": "text", "b": "text"}},
     "500"),
    ({"code": "", "content": "预警：${a}${b}。", "params": {"a": "text", "b": "text"}},
     "code"),
])
def test_a_template_that_cannot_carry_the_warning_is_a_start_up_error(
        template: dict[str, object], match: str) -> None:
    raw = {"type": "aliyun-sms", "access_key_id": "k", "access_key_secret": AK_SECRET,
           "sign_name": "单位", "hook_secret": HOOK_SECRET, "templates": {"default": template}}
    with pytest.raises(ConfigError, match=match) as info:
        AliyunSms.from_config("sms", raw)
    assert "channels.sms.templates.default" in info.value.message


def test_every_kind_needs_a_template() -> None:
    raw = {"type": "aliyun-sms", "access_key_id": "k", "access_key_secret": AK_SECRET,
           "sign_name": "单位", "hook_secret": HOOK_SECRET,
           "templates": {"warning": SMS_TEMPLATES["default"]}}
    with pytest.raises(ConfigError, match="no template for update"):
        AliyunSms.from_config("sms", raw)


def test_config_is_strict_and_secrets_hidden() -> None:
    raw = {"type": "aliyun-sms", "access_key_id": "k", "access_key_secret": AK_SECRET,
           "sign_name": "单位", "hook_secret": HOOK_SECRET, "templates": SMS_TEMPLATES}
    channel = AliyunSms.from_config("sms", raw)
    assert AK_SECRET not in repr(channel.config) and HOOK_SECRET not in repr(channel.config)
    assert set(channel.info.secret_fields) == {"access_key_secret", "hook_secret"}
    with pytest.raises(ConfigError, match="unknown field"):
        AliyunSms.from_config("sms", {**raw, "api_key": "x"})
    with pytest.raises(ConfigError, match="hook_secret"):
        AliyunSms.from_config("sms", {**raw, "hook_secret": "short"})
    AliyunSms.from_config("sms", {**raw, "hook_secret": "", "receipts": "pull"})


@pytest.mark.parametrize(("change", "code"), [
    ({"templates": {"default": {**SMS_TEMPLATES["default"], "code": "SMS_404"}}},
     "isv.SMS_TEMPLATE_ILLEGAL"),
    ({"sign_name": "别的单位"}, "isv.SMS_SIGNATURE_ILLEGAL"),
])
async def test_refused_templates_and_signatures_are_permanent(
        make_env: EnvFactory, change: dict[str, object], code: str) -> None:
    env = await make_env("sms", channel_cfg=change)
    with pytest.raises(PermanentChannelError) as info:
        await env.channel.send(delivery())
    assert info.value.provider_code == code and PHONE not in info.value.message


async def test_a_variable_missing_at_the_provider_is_refused(make_env: EnvFactory) -> None:
    """The channel's template lacks a variable the approved one has: the provider says so."""
    env = await make_env("sms", sms_templates={SMS_CODE: "${level}：${t1}${t2}${t3}${t4}${x}。"})
    with pytest.raises(PermanentChannelError) as info:
        await env.channel.send(delivery())
    assert info.value.provider_code == "isv.TEMPLATE_MISSING_PARAMETERS"


async def test_a_too_long_variable_is_refused_by_the_provider(make_env: EnvFactory) -> None:
    """What the channel never sends (it splits within 35), the provider refuses."""
    env = await make_env("sms")
    request = sms_models.SendSmsRequest(
        phone_numbers=NATIONAL, sign_name="华容县应急管理局", template_code=SMS_CODE,
        template_param=params_json({"level": "红色", "kind": "预警", "t1": "长" * 36,
                                    "t2": "a", "t3": "b", "t4": "c"}))
    with pytest.raises(PermanentChannelError) as info:
        await call(env.channel._client.send_sms_with_options_async(request, runtime()),
                   "sms", PHONE)
    assert info.value.provider_code == "isv.PARAM_LENGTH_LIMIT"
    message = env.channel.templates.messages(delivery(), 1)[0]
    assert all(1 <= len(v) <= 35 for v in message.as_dict().values())


async def test_wrong_secret_is_refused_by_the_signature_check(make_env: EnvFactory) -> None:
    env = await make_env("sms", channel_cfg={"access_key_secret": "not-the-secret"})
    with pytest.raises(PermanentChannelError, match="access_key_secret") as info:
        await env.channel.send(delivery())
    assert info.value.provider_code == "SignatureDoesNotMatch"
    assert env.sim.refusals[-1] == ("SendSms", "SignatureDoesNotMatch")
    assert not env.sim.messages


async def test_unknown_key_id(make_env: EnvFactory) -> None:
    env = await make_env("sms", channel_cfg={"access_key_id": "LTAIother"})
    with pytest.raises(PermanentChannelError) as info:
        await env.channel.send(delivery())
    assert info.value.provider_code == "InvalidAccessKeyId.NotFound"


async def test_a_skewed_clock_is_refused(make_env: EnvFactory) -> None:
    import time

    env = await make_env("sms", auth_clock=lambda: time.time() + 1800)
    with pytest.raises(PermanentChannelError, match="clock"):
        await env.channel.send(delivery())


async def test_per_number_limit_is_its_own_error_class(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    await env.channel.send(delivery())
    with pytest.raises(LimitedChannelError) as info:
        await env.channel.send(delivery(did="dl_2"))
    assert info.value.provider_code == "isv.BUSINESS_LIMIT_CONTROL"
    assert info.value.retry_after == 60.0
    assert isinstance(info.value, TransientChannelError)  # today's dispatcher retries it


@pytest.mark.parametrize(("code", "kind"), [
    ("isv.AMOUNT_NOT_ENOUGH", PermanentChannelError),
    ("isv.MOBILE_NUMBER_ILLEGAL", PermanentChannelError),
    ("Throttling.User", TransientChannelError),
    ("ServiceUnavailable", TransientChannelError),
])
async def test_error_classes(make_env: EnvFactory, code: str, kind: type[Exception]) -> None:
    env = await make_env("sms", failures={NATIONAL: code})
    with pytest.raises(kind) as info:
        await env.channel.send(delivery())
    assert not isinstance(info.value, LimitedChannelError)


async def test_a_number_outside_the_mainland_is_permanent(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    with pytest.raises(PermanentChannelError):
        await env.channel.send(delivery(address="+15005550006"))
    assert not env.sim.messages


async def test_duplicated_late_reports_give_one_status(make_env: EnvFactory) -> None:
    env = await make_env("sms", duplicate=True, late_s=0.05)
    await env.channel.send(delivery())
    await env.sim.wait_idle()
    assert len(env.sim.pushes) == 2 and all(p.status == 200 for p in env.sim.pushes)
    assert '"code": 0' in env.sim.pushes[0].body
    assert [s[:4] for s in env.sink.statuses] == [("cmp-1", "dl_1", "p-1", S.DELIVERED)]


async def test_a_delivery_sent_again_has_the_status_of_each_send(make_env: EnvFactory) -> None:
    """Sent again (a lease ran out mid-send): each send's receipt is its own, pushed twice
    or not; keyed by delivery and status, the second send's report was dropped and its
    attempt stood without an outcome in the record."""
    env = await make_env("sms", duplicate=True, late_s=0.05, sms_limits=NONE)
    await env.channel.send(delivery())
    await env.sim.wait_idle()
    await env.channel.send(delivery())
    await env.sim.wait_idle()
    assert len(env.sim.pushes) == 4
    assert [s[:4] for s in env.sink.statuses] == [("cmp-1", "dl_1", "p-1", S.DELIVERED)] * 2


async def test_undelivered_report(make_env: EnvFactory) -> None:
    env = await make_env("sms", scripted={NATIONAL: "off"})
    await env.channel.send(delivery())
    await env.sim.wait_idle()
    assert [s[3] for s in env.sink.statuses] == [S.UNDELIVERED]


@pytest.mark.parametrize("content", ["1", "收到", "確認", "１。"])
async def test_sms_replies_confirm_by_number(make_env: EnvFactory, content: str) -> None:
    env = await make_env("sms")
    resp = await env.push("sms-up", [{"phone_number": NATIONAL, "content": content,
                                      "send_time": "2024-07-01 12:00:00", "sequence_id": 7}])
    assert resp.status == 200 and (await resp.json()) == {"code": 0, "msg": "成功"}
    assert env.sink.replies == [("sms", PHONE, AckVia.SMS)]
    again = await env.push("sms-up", [{"phone_number": NATIONAL, "content": content,
                                       "send_time": "2024-07-01 12:00:00", "sequence_id": 7}])
    assert again.status == 200 and len(env.sink.replies) == 1  # a duplicate push
    # The reply's id goes with it: the engine confirms with it once, in every process.
    assert env.sink.reply_ids == [f"up|{PHONE}|7|2024-07-01 12:00:00"]


async def test_simulated_officer_replies(make_env: EnvFactory) -> None:
    env = await make_env("sms", EVERYONE)
    await env.channel.send(delivery())
    await env.sim.wait_idle()
    assert env.sink.replies == [("sms", PHONE, AckVia.SMS)]


async def test_other_replies_do_not_confirm(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    await env.push("sms-up", [{"phone_number": NATIONAL, "content": "不收到", "sequence_id": 1}])
    assert not env.sink.touched


async def test_a_reply_the_engine_could_not_store_is_taken_again(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    env.sink.fail = 1
    item = [{"phone_number": NATIONAL, "content": "1", "sequence_id": 9}]
    first = await env.push("sms-up", item)
    assert first.status == 500 and not env.sink.replies  # Aliyun pushes it again
    second = await env.push("sms-up", item)
    assert second.status == 200 and env.sink.replies == [("sms", PHONE, AckVia.SMS)]


async def test_a_repeat_during_the_first_push_waits_for_it_and_takes_over_its_failure(
    make_env: EnvFactory,
) -> None:
    """Aliyun pushes a reply again while the engine is still storing the first (a Redis
    stall): the repeat is not answered "done" before the first is stored; when the first
    fails, the repeat stores it. Nothing answered 200 is left unrecorded."""
    env = await make_env("sms")
    held, release = asyncio.Event(), asyncio.Event()
    store = env.sink.confirm_from

    async def stalled(*args: Any, **kwargs: Any) -> list[str]:
        held.set()
        await release.wait()
        return await store(*args, **kwargs)

    env.sink.confirm_from = stalled  # type: ignore[method-assign]
    item = [{"phone_number": NATIONAL, "content": "1", "sequence_id": 11}]
    first = asyncio.create_task(env.push("sms-up", item))
    await held.wait()
    repeat = asyncio.create_task(env.push("sms-up", item))
    done, _ = await asyncio.wait({repeat}, timeout=0.5)
    assert not done, "the repeat was answered while the first was not yet stored"
    env.sink.fail = 1  # the first store fails
    release.set()
    assert (await first).status == 500
    assert (await repeat).status == 200
    assert env.sink.replies == [("sms", PHONE, AckVia.SMS)]


async def test_a_push_without_the_secret_path_is_not_found(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    resp = await env.push("sms-up", [{"phone_number": NATIONAL, "content": "1"}],
                          secret="guessed-secret-000000")
    assert resp.status == 404 and not env.sink.touched


async def test_a_push_from_outside_the_allow_list_is_refused(make_env: EnvFactory) -> None:
    env = await make_env("sms", channel_cfg={"allow_from": ["10.1.0.0/16"]})
    resp = await env.push("sms-up", [{"phone_number": NATIONAL, "content": "1"}])
    assert resp.status == 403 and not env.sink.touched
    ok = await make_env("sms", channel_cfg={"allow_from": ["127.0.0.0/8"]})
    assert (await ok.push("sms-up", [{"phone_number": NATIONAL, "content": "1"}])).status == 200


async def test_a_push_that_is_not_json_is_refused(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    resp = await env.http.post(f"{env.hooks}/sms-report", data=b"<xml/>")
    assert resp.status == 400 and not env.sink.touched


async def test_pull_mode_reads_query_send_details(make_env: EnvFactory) -> None:
    env = await make_env("sms", channel_cfg={"receipts": "pull", "hook_secret": "",
                                              "pull_interval_s": 0.05},
                         sms_report_url=None)
    assert env.channel.webhooks(env.sink) == []
    await env.channel.send(delivery())
    await env.sink.wait_for(lambda: env.sink.statuses)
    assert [s[:4] for s in env.sink.statuses] == [("cmp-1", "dl_1", "p-1", S.DELIVERED)]
    await env.channel.pull_once()  # closed: asked no more, reported once
    assert len(env.sink.statuses) == 1


async def test_a_report_reply_goes_to_the_engine_once_as_a_report(make_env: EnvFactory) -> None:
    """"转移 ３５人" is a report after the ack: handed over parsed, with the reply's id, once."""
    from warnbus.plugin import FeedbackKind, Report

    env = await make_env("sms")
    up = [{"phone_number": NATIONAL, "content": "转移 ３５人", "send_time": "2024-07-01 12:00:00",
           "sequence_id": 8}]
    assert (await env.push("sms-up", up)).status == 200
    assert (await env.push("sms-up", up)).status == 200  # a duplicate push
    assert env.sink.reports == [("", PHONE, AckVia.SMS, Report(FeedbackKind.EVACUATED, count=35))]
    assert env.sink.reply_ids == [f"up|{PHONE}|8|2024-07-01 12:00:00"]
    assert env.sink.replies == []  # not a confirmation
