"""TwilioSms against the simulator: sending, error classes, signed callbacks, replies."""

from __future__ import annotations

import socket
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from structlog.testing import capture_logs
from twilio_harness import EVERYONE, FROM, PHONE, SID, TOKEN, EnvFactory, delivery

from channels.twilio_sms import TwilioSms, fit_sms, is_confirmation, sms_segments
from warnbus.domain.models import AckVia
from warnbus.errors import ConfigError, PermanentChannelError, TransientChannelError
from warnbus.plugin import ProviderStatus

S = ProviderStatus


async def test_send_returns_receipt_and_posts_twilio_fields(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    receipt = await env.channel.send(delivery())
    assert receipt.provider_id is not None and receipt.provider_id.startswith("SM")
    [msg] = env.sim.messages
    assert msg.sid == receipt.provider_id
    assert (msg.get("To"), msg.get("From")) == (PHONE, FROM)
    assert msg.get("Body") == "【红色预警】暴雨红色预警。回复1确认收到"
    callback = urlsplit(msg.get("StatusCallback") or "")
    assert f"{callback.scheme}://{callback.netloc}{callback.path}" == f"{env.hooks}/status"
    assert parse_qs(callback.query) == {"c": ["cmp-1"], "d": ["dl_1"], "t": ["p-1"]}


async def test_signed_status_callbacks_reach_the_sink(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    await env.channel.send(delivery())
    await env.sim.wait_idle()
    assert [s[:4] for s in env.sink.statuses] == [
        ("cmp-1", "dl_1", "p-1", s) for s in (S.QUEUED, S.SENT, S.DELIVERED)]
    assert all(w.status == 200 for w in env.sim.webhooks)


async def test_out_of_order_callbacks_are_passed_on(make_env: EnvFactory) -> None:
    env = await make_env("sms", out_of_order=True)
    await env.channel.send(delivery())
    await env.sim.wait_idle()
    assert [s[3] for s in env.sink.statuses] == [S.QUEUED, S.DELIVERED, S.SENT]


async def test_unreachable_handset_is_undelivered_30003(make_env: EnvFactory) -> None:
    env = await make_env("sms", failures={PHONE: 30003})
    receipt = await env.channel.send(delivery())  # accepted: the failure comes later
    assert receipt.provider_id
    await env.sim.wait_idle()
    last = env.sink.statuses[-1]
    assert last[3] is S.UNDELIVERED and "30003" in last[4]


@pytest.mark.parametrize("code", [21211, 21614, 21612, 21408, 21610])
async def test_rejected_numbers_are_permanent(make_env: EnvFactory, code: int) -> None:
    env = await make_env("sms", failures={PHONE: code})
    with pytest.raises(PermanentChannelError) as info:
        await env.channel.send(delivery())
    assert info.value.provider_code == str(code)
    assert PHONE not in info.value.message  # masked: messages end up in logs
    assert not env.sim.messages


async def test_opt_out_says_what_to_do(make_env: EnvFactory) -> None:
    env = await make_env("sms", failures={PHONE: 21610})
    with pytest.raises(PermanentChannelError, match="STOP"):
        await env.channel.send(delivery())


async def test_wrong_auth_token_is_a_permanent_config_error(make_env: EnvFactory) -> None:
    env = await make_env("sms", channel_cfg={"auth_token": "wrong"})
    with pytest.raises(PermanentChannelError, match="auth_token") as info:
        await env.channel.send(delivery())
    assert info.value.provider_code == "20003"


async def test_rate_limit_is_transient_with_retry_after(make_env: EnvFactory) -> None:
    env = await make_env("sms", failures={PHONE: 20429}, retry_after_s=7)
    with pytest.raises(TransientChannelError) as info:
        await env.channel.send(delivery())
    assert (info.value.retry_after, info.value.provider_code) == (7.0, "20429")


@pytest.mark.parametrize("status", [500, 503])
async def test_server_errors_are_transient(make_env: EnvFactory, status: int) -> None:
    env = await make_env("sms", failures={PHONE: status})
    with pytest.raises(TransientChannelError) as info:
        await env.channel.send(delivery())
    assert info.value.retry_after is None


async def test_connection_refused_is_transient(make_env: EnvFactory) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"  # nobody listens once closed
    env = await make_env("sms", api_base=dead)
    with pytest.raises(TransientChannelError, match="network"):
        await env.channel.send(delivery())


async def test_timeout_is_transient(make_env: EnvFactory) -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        env = await make_env("sms", api_base=f"http://127.0.0.1:{silent.getsockname()[1]}",
                             channel_cfg={"timeout_s": 0.2})
        with pytest.raises(TransientChannelError, match="TimeoutError"):
            await env.channel.send(delivery())


STATUS = {"MessageSid": "SM1", "AccountSid": SID, "From": FROM, "To": PHONE,
          "MessageStatus": "delivered", "SmsStatus": "delivered"}
QUERY = "?c=cmp-1&d=dl_1&t=p-1"


async def test_status_with_a_good_signature_is_applied(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    resp = await env.post_signed("status" + QUERY, STATUS)
    assert resp.status == 200
    assert env.sink.statuses == [("cmp-1", "dl_1", "p-1", S.DELIVERED, "delivered")]


async def test_a_signature_over_the_url_without_its_port_is_accepted(make_env: EnvFactory
                                                                    ) -> None:
    """Twilio signs the URL with or without its port: the one as given is tried first,
    then the SDK's check of both."""
    env = await make_env("sms")
    url = f"{env.hooks}/status{QUERY}"
    no_port = url.replace(f":{env.hooks.split(':')[2].split('/')[0]}/", "/", 1)
    assert no_port != url and "127.0.0.1/hooks" in no_port
    resp = await env.post_signed("status" + QUERY, STATUS, signed_url=no_port)
    assert resp.status == 200
    assert env.sink.statuses == [("cmp-1", "dl_1", "p-1", S.DELIVERED, "delivered")]


async def test_a_signature_header_that_is_not_base64_is_refused(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    resp = await env.http.post(f"{env.hooks}/status{QUERY}", data=STATUS,
                               headers={"X-Twilio-Signature": "签名=="})
    assert resp.status == 403 and not env.sink.touched


async def test_a_file_upload_to_a_webhook_is_refused(make_env: EnvFactory) -> None:
    env = await make_env("sms")
    form = aiohttp.FormData({**STATUS})
    form.add_field("Body", b"\x00\x01", filename="x.bin",
                   content_type="application/octet-stream")
    resp = await env.http.post(f"{env.hooks}/status{QUERY}", data=form,
                               headers={"X-Twilio-Signature": "c2lnbmF0dXJl"})
    assert resp.status == 403 and not env.sink.touched


@pytest.mark.parametrize("forgery", ["missing", "wrong-token", "tampered-params",
                                     "tampered-query", "other-path"])
async def test_forged_callbacks_are_refused(make_env: EnvFactory, forgery: str) -> None:
    env = await make_env("sms")
    url = f"{env.hooks}/status{QUERY}"
    with capture_logs() as logs:
        if forgery == "missing":
            resp = await env.http.post(url, data=STATUS)
        elif forgery == "wrong-token":
            resp = await env.post_signed("status" + QUERY, STATUS, token="not-the-token")
        elif forgery == "tampered-params":  # signed "failed", sent "delivered"
            signed = {**STATUS, "MessageStatus": "failed", "SmsStatus": "failed"}
            resp = await env.post_signed("status" + QUERY, STATUS, signed_params=signed)
        elif forgery == "tampered-query":  # a genuine signature replayed on another delivery
            resp = await env.post_signed("status?c=cmp-1&d=dl_2&t=p-1", STATUS,
                                         signed_url=url)
        else:  # a genuine status signature replayed at the inbound hook
            resp = await env.post_signed(f"inbound{QUERY}", STATUS, signed_url=url)
    assert resp.status == 403
    assert not env.sink.touched
    [entry] = [e for e in logs if "signature" in e["event"]]
    assert entry["log_level"] == "warning" and PHONE not in str(entry)


@pytest.mark.parametrize("body", ["1", "收到", "１", "確認", "确认", " OK ", "收到了。", "好"])
async def test_confirming_replies(make_env: EnvFactory, body: str) -> None:
    env = await make_env("sms")
    resp = await env.post_signed("inbound", {"From": PHONE, "To": FROM, "Body": body,
                                             "MessageSid": "SM2", "AccountSid": SID})
    assert resp.status == 200 and resp.content_type == "application/xml"
    assert "<Response />" in await resp.text()
    assert env.sink.replies == [("sms", PHONE, AckVia.SMS)]
    assert env.sink.reply_ids == ["SM2"], "the engine deduplicates replies by this id"


@pytest.mark.parametrize("body", ["hello", "2", "", "不收到", "STOP"])
async def test_other_replies_do_not_confirm(make_env: EnvFactory, body: str) -> None:
    env = await make_env("sms")
    resp = await env.post_signed("inbound", {"From": PHONE, "To": FROM, "Body": body})
    assert resp.status == 200 and "<Response />" in await resp.text()
    assert not env.sink.touched


async def test_simulated_officer_replies_and_confirms(make_env: EnvFactory) -> None:
    env = await make_env("sms", EVERYONE)
    await env.channel.send(delivery())
    await env.sim.wait_idle()
    assert env.sink.replies == [("sms", PHONE, AckVia.SMS)]
    assert env.sim.webhooks[-1].params["Body"] in ("1", "收到")


def test_reply_normalisation() -> None:
    assert is_confirmation("１。") and is_confirmation("確認收到") and is_confirmation("Ok!")
    assert not is_confirmation("11") and not is_confirmation("收")


def test_segment_counting() -> None:
    assert [sms_segments("a" * n) for n in (160, 161, 306, 307)] == [1, 2, 2, 3]
    assert [sms_segments("警" * n) for n in (70, 71, 134, 135)] == [1, 2, 2, 3]
    assert sms_segments("a" * 69 + "警") == 1  # one Chinese character makes it all UCS-2
    assert sms_segments("€" * 80) == 1 and sms_segments("€" * 81) == 2  # GSM escapes


LINK = "https://warn.example.cn/ack/eyJjIjoiY21wLTEiLCJwIjoicC0xIn0.c2lnbmF0dXJl"
LONG = ("【红色预警】县气象台发布暴雨红色预警。影响区域：城关镇、金石桥镇。"
        + "".join(f"第{i}条防御指引：请立即转移危险区域群众，加强巡查。" for i in range(40))
        + f"回复1确认收到，或点击链接确认：{LINK}")


@pytest.mark.parametrize("max_segments", [1, 2, 3, 6])
def test_long_chinese_text_is_cut_at_sentences_keeping_the_link(max_segments: int) -> None:
    short = fit_sms(LONG, max_segments, LINK)
    assert short.startswith("【红色预警】县气象台发布暴雨红色预警。")
    assert short.endswith(f"回复1确认收到，或点击链接确认：{LINK}")
    if max_segments == 1:  # headline + ack + link need 2 parts: over the limit, never cut
        assert short == ("【红色预警】县气象台发布暴雨红色预警。"
                         f"回复1确认收到，或点击链接确认：{LINK}")
    else:
        assert sms_segments(short) <= max_segments
        assert "影响区域：城关镇、金石桥镇。" in short  # kept before the instructions
        assert short.split("回复1")[0].endswith("。")  # cut between sentences


def test_text_that_fits_is_untouched() -> None:
    text = "【红色预警】暴雨。回复1确认收到"
    assert fit_sms(text, 1, None) == text


def test_headline_is_cut_only_when_dropping_sentences_is_not_enough() -> None:
    text = "【红色预警】" + "暴雨" * 60 + "。回复1确认收到，或点击链接确认：" + LINK
    short = fit_sms(text, 2, LINK)
    assert sms_segments(short) == 2
    assert short.startswith("【红色预警】暴雨") and "…回复1确认收到" in short
    assert short.endswith(LINK)
    no_sentences = "没有句号的长句" * 30
    assert fit_sms(no_sentences, 1, None) == no_sentences[:69] + "…"


async def test_send_shortens_to_max_segments(make_env: EnvFactory) -> None:
    env = await make_env("sms", channel_cfg={"max_segments": 3})
    await env.channel.send(delivery(LONG, ack_url=LINK))
    body = env.sim.messages[0].get("Body") or ""
    assert sms_segments(body) <= 3 and LINK in body and len(body) < len(LONG)


def test_config_is_strict_and_the_token_secret() -> None:
    raw = {"type": "twilio-sms", "callback_url": "http://127.0.0.1:1/hooks/sms",
           "account_sid": SID, "auth_token": TOKEN, "from_number": FROM}
    channel = TwilioSms.from_config("sms", raw)
    assert TOKEN not in repr(channel.config) and TOKEN not in repr(channel)
    assert channel.info.secret_fields == ("auth_token",)
    assert (channel.info.rate_per_s, channel.info.max_length) == (1.0, 6 * 67)
    with pytest.raises(ConfigError, match="unknown field"):
        TwilioSms.from_config("sms", {**raw, "api_key": "x"})
    with pytest.raises(ConfigError, match="callback_url"):
        TwilioSms.from_config("sms", {k: v for k, v in raw.items() if k != "callback_url"})
    with pytest.raises(ConfigError, match="http"):
        TwilioSms.from_config("sms", {**raw, "api_base": "ftp://x"})
    with pytest.raises(ConfigError, match="max_segments"):
        TwilioSms.from_config("sms", {**raw, "max_segments": 0})
