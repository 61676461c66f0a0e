"""Sending through the WeCom channel against the simulator over real HTTP: tokens, the card,
and how every kind of WeCom failure becomes one of ours."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from typing import Any

import pytest
from wecom_kit import AGENT_ID, CAMPAIGN, CORP_SECRET, TEXT, channel_config, delivery

from channels.sim.wecom_sim import WeComSimulator
from channels.wecom import CARD_TEXT_MAX, WeCom
from channels.wecom_crypto import decode_task_id
from warnbus.domain.models import DeliveryKind, Level, Receipt
from warnbus.errors import ConfigError, PermanentChannelError, TransientChannelError
from warnbus.plugin import Channel, WebhookChannel

# --------------------------------------------------------------------------- tokens


async def test_one_gettoken_for_many_sends(channel: WeCom, sim: WeComSimulator) -> None:
    for step in range(5):
        await channel.send(delivery(step=step))
    assert sim.tokens_issued == 1
    assert len(sim.sent) == 5


async def test_concurrent_sends_share_one_gettoken(channel: WeCom, sim: WeComSimulator) -> None:
    await asyncio.gather(*(channel.send(delivery(step=i)) for i in range(20)))
    assert sim.tokens_issued == 1
    sim.revoke_tokens()
    await asyncio.gather(*(channel.send(delivery(step=100 + i)) for i in range(20)))
    assert sim.tokens_issued == 2  # twenty 40014s, one refresh
    assert len(sim.sent) == 40


@pytest.mark.parametrize("invalidate", ["expire_tokens", "revoke_tokens"])
async def test_refresh_once_on_expired_or_revoked_token(
    channel: WeCom, sim: WeComSimulator, invalidate: str
) -> None:
    await channel.send(delivery(step=0))
    getattr(sim, invalidate)()  # the next use gets 42001 / 40014
    receipt = await channel.send(delivery(step=1))
    assert receipt.provider_id == sim.sent[-1].msgid
    assert sim.tokens_issued == 2


@pytest.mark.parametrize("code", [40014, 42001, 40001])
async def test_rejected_fresh_token_is_transient(channel: WeCom, sim: WeComSimulator,
                                                 code: int) -> None:
    sim.queue_reply({"errcode": code, "errmsg": "invalid"})
    sim.queue_reply({"errcode": code, "errmsg": "invalid"})
    with pytest.raises(TransientChannelError) as info:
        await channel.send(delivery())
    assert info.value.provider_code == str(code)
    assert sim.tokens_issued == 2


async def test_wrong_corp_secret_is_permanent_and_not_leaked(
    make_channel: Callable[..., WeCom], sim: WeComSimulator
) -> None:
    channel = make_channel(corp_secret="not-the-secret")
    with pytest.raises(PermanentChannelError) as info:
        await channel.send(delivery())
    assert info.value.provider_code == "40001"
    assert "not-the-secret" not in str(info.value)
    assert sim.sent == []


# --------------------------------------------------------------------------- the message


async def test_warning_goes_as_a_button_card(channel: WeCom, sim: WeComSimulator) -> None:
    d = delivery()
    receipt = await channel.send(d)
    sent = sim.sent[-1]
    assert receipt == Receipt(provider_id=sent.msgid)
    body = sent.body
    assert (body["touser"], body["agentid"], body["msgtype"]) == (d.address, AGENT_ID,
                                                                  "template_card")
    card = body["template_card"]
    assert card["card_type"] == "button_interaction"
    assert card["source"] == {"desc": "预警叫应"}
    assert card["main_title"]["title"] == "红色预警"
    assert card["sub_title_text"] == TEXT
    assert card["button_list"] == [{"text": "确认收到", "style": 1, "key": "ack"},
                                   {"text": "确认并已到岗", "style": 2, "key": "fb:arrived"},
                                   {"text": "确认并零报告", "style": 2, "key": "fb:zero"}]
    ref = decode_task_id(card["task_id"])
    assert (ref.campaign_id, ref.delivery_id, ref.target_id) == (CAMPAIGN, d.id, d.target_id)


async def test_card_titles_and_long_text(channel: WeCom) -> None:
    drill = channel.build_message(delivery(drill=True, level=Level.ORANGE))
    assert drill["template_card"]["main_title"]["title"] == "【演练】橙色预警"
    redial = channel.build_message(delivery(kind=DeliveryKind.REDIAL, step=1))
    assert redial["template_card"]["main_title"]["title"] == "红色预警·再次提醒"
    escalation = channel.build_message(delivery(kind=DeliveryKind.ESCALATION))
    assert escalation["template_card"]["main_title"]["title"].endswith("叫应升级")
    long = channel.build_message(delivery(text="雨" * 500))["template_card"]["sub_title_text"]
    assert len(long) == CARD_TEXT_MAX and long.endswith("…")


@pytest.mark.parametrize("text", ["雨" * 682, "雨" * 683, "a" * 2048, "a" * 2049, "雨a" * 700,
                                  "é" * 1025, "暴" * 1_000_000])
async def test_long_text_messages_are_cut_to_2048_bytes_as_before(channel: WeCom,
                                                                  text: str) -> None:
    """Only the text's first 2,048 characters are encoded (a character is at least a byte):
    the same cut as encoding it all, at a cost that does not grow with outside text."""
    body = channel.build_message(delivery(kind=DeliveryKind.CANCEL, text=text))
    raw = text.encode()
    expected = text if len(raw) <= 2048 else raw[:2045].decode(errors="ignore") + "…"
    assert body["text"]["content"] == expected
    assert len(expected.encode()) <= 2048


@pytest.mark.parametrize(("kind", "confirm"), [(DeliveryKind.CANCEL, None),
                                               (DeliveryKind.NOTICE, None),
                                               (DeliveryKind.UPDATE, False),
                                               (DeliveryKind.WARNING, False)])
async def test_no_ack_wanted_goes_as_text(channel: WeCom, sim: WeComSimulator,
                                          kind: DeliveryKind, confirm: bool | None) -> None:
    """A message that asks nothing (a 解除, a notice, an Update to someone who confirmed
    already) has no button: text, whatever its kind."""
    await channel.send(delivery(kind=kind, text="【预警解除】暴雨红色预警解除。", confirm=confirm))
    body = sim.sent[-1].body
    assert body["msgtype"] == "text"
    assert body["text"] == {"content": "【预警解除】暴雨红色预警解除。"}
    assert "template_card" not in body and sim.sent[-1].task_id is None


@pytest.mark.parametrize(("kind", "confirm", "title"), [
    (DeliveryKind.UPDATE, None, "红色预警·更新"),  # to someone who has not confirmed yet
    (DeliveryKind.CANCEL, True, "预警解除"),  # a 解除 the policy wants confirmed
])
async def test_every_message_that_asks_is_a_card(channel: WeCom, sim: WeComSimulator,
                                                 kind: DeliveryKind, confirm: bool | None,
                                                 title: str) -> None:
    """An Update asked people to 确认收到 in a text without a button; a 解除 to confirm
    would have been text too."""
    await channel.send(delivery(kind=kind, confirm=confirm, step=7))
    card = sim.sent[-1].body["template_card"]
    assert card["main_title"]["title"] == title
    assert card["button_list"][0]["key"] == "ack"


async def test_a_card_links_to_the_full_text_it_cannot_carry(channel: WeCom) -> None:
    """A card carries 160 characters: its text keeps its headline and how to confirm, and
    links to the ack page, which shows the full text, rather than cutting it silently."""
    url = "https://warnbus.example/ack/tok"
    figures = "".join(f"第{i}站累计降雨量{100 + i}毫米。" for i in range(40))
    text = f"华容县气象台发布暴雨红色预警信号。{figures}请点击“确认收到”"
    card = channel.build_message(delivery(text=text, ack_url=url))["template_card"]
    sub = card["sub_title_text"]
    assert len(sub) <= CARD_TEXT_MAX
    assert sub.startswith("华容县气象台发布暴雨红色预警信号。第0站累计降雨量100毫米。")
    assert sub.endswith("请点击“确认收到”")
    assert card["horizontal_content_list"] == [
        {"type": 1, "keyname": "全文", "value": "查看预警全文", "url": url}]
    assert card["card_action"] == {"type": 1, "url": url}


async def test_text_is_cut_within_2048_bytes(channel: WeCom, sim: WeComSimulator) -> None:
    await channel.send(delivery(kind=DeliveryKind.CANCEL, text="解" * 1000))
    content = sim.sent[-1].body["text"]["content"]
    assert len(content.encode()) <= 2048 and content.endswith("…")


async def test_resend_of_a_card_is_not_shown_twice(channel: WeCom, sim: WeComSimulator) -> None:
    d = delivery()
    await channel.send(d)
    await channel.send(d)  # e.g. the first reply was lost and the worker retried
    assert [m.duplicate for m in sim.sent] == [False, True]


async def test_no_address_is_permanent(channel: WeCom) -> None:
    with pytest.raises(PermanentChannelError):
        await channel.send(delivery(address=""))


# --------------------------------------------------------------------------- failures


TRANSIENT: list[tuple[dict[str, Any], str, float | None]] = [
    ({"errcode": 45009, "errmsg": "api freq out of limit"}, "45009", 30.0),
    ({"errcode": 45033, "errmsg": "api concurrent out of limit"}, "45033", 1.0),
    ({"errcode": -1, "errmsg": "system busy"}, "-1", None),
]
PERMANENT = [81013, 60111, 40003, 60020, 40056, 301002, 43012, 40058, 99999]


@pytest.mark.parametrize(("reply", "code", "retry_after"), TRANSIENT)
async def test_transient_errcodes(channel: WeCom, sim: WeComSimulator, reply: dict[str, Any],
                                  code: str, retry_after: float | None) -> None:
    sim.queue_reply(reply)
    with pytest.raises(TransientChannelError) as info:
        await channel.send(delivery())
    assert (info.value.provider_code, info.value.retry_after) == (code, retry_after)


@pytest.mark.parametrize("code", PERMANENT)
async def test_permanent_errcodes(channel: WeCom, sim: WeComSimulator, code: int) -> None:
    sim.queue_reply({"errcode": code, "errmsg": "no", "invaliduser": ""})
    with pytest.raises(PermanentChannelError) as info:
        await channel.send(delivery())
    assert info.value.provider_code == str(code)
    assert str(code) in info.value.message


async def test_invaliduser_in_an_ok_reply_is_permanent(channel: WeCom, sim: WeComSimulator) -> None:
    sim.queue_reply({"errcode": 0, "errmsg": "ok", "invaliduser": "u43062300004", "msgid": "m"})
    with pytest.raises(PermanentChannelError) as info:
        await channel.send(delivery())
    assert info.value.provider_code == "invaliduser"


async def test_failing_user_of_the_simulator(channel: WeCom, sim: WeComSimulator) -> None:
    sim.failing_users["u_gone"] = 60111
    with pytest.raises(PermanentChannelError) as info:
        await channel.send(delivery(address="u_gone"))
    assert info.value.provider_code == "60111"


async def test_rate_limit_of_the_simulator(channel: WeCom, sim: WeComSimulator) -> None:
    sim.rate_limit = 2
    await channel.send(delivery(step=0))
    await channel.send(delivery(step=1))
    with pytest.raises(TransientChannelError) as info:
        await channel.send(delivery(step=2))
    assert info.value.provider_code == "45009" and info.value.retry_after


@pytest.mark.parametrize(("status", "body", "kind", "code"), [
    (502, None, TransientChannelError, "http-502"),
    (503, {"errcode": -1}, TransientChannelError, "http-503"),
    (429, None, TransientChannelError, "http-429"),
    (404, None, PermanentChannelError, "http-404"),
    (200, None, TransientChannelError, "bad-reply"),
])
async def test_http_failures(channel: WeCom, sim: WeComSimulator, status: int,
                             body: dict[str, Any] | None, kind: type[Exception], code: str) -> None:
    sim.queue_reply(body, status=status)
    with pytest.raises(kind) as info:
        await channel.send(delivery())
    assert getattr(info.value, "provider_code", None) == code


async def test_timeout_is_transient(make_channel: Callable[..., WeCom],
                                    sim: WeComSimulator) -> None:
    channel = make_channel(timeout_s=0.2)
    sim.queue_reply({"errcode": 0}, delay_s=1.0)
    with pytest.raises(TransientChannelError) as info:
        await channel.send(delivery())
    assert info.value.provider_code == "timeout"


async def test_unreachable_api_is_transient_and_secret_free() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    channel = WeCom.from_config("wecom", channel_config(f"http://127.0.0.1:{port}"))
    try:
        with pytest.raises(TransientChannelError) as info:
            await channel.send(delivery())
    finally:
        await channel.aclose()
    assert info.value.provider_code == "network"
    assert CORP_SECRET not in str(info.value)


# --------------------------------------------------------------------------- config


def test_config_is_strict_and_secrets_stay_hidden() -> None:
    channel = WeCom.from_config("wecom", channel_config("http://127.0.0.1:1"))
    assert isinstance(channel, Channel) and isinstance(channel, WebhookChannel)
    assert CORP_SECRET not in repr(channel.config)
    assert channel.callback_endpoint == "https://warnbus.example/hooks/wecom/callback"
    assert set(channel.info.secret_fields) == {"corp_secret", "token", "encoding_aes_key"}
    with pytest.raises(ConfigError, match="unknown field"):
        WeCom.from_config("wecom", channel_config("http://x", extra=1))
    with pytest.raises(ConfigError, match=r"channels\.wecom\.encoding_aes_key"):
        WeCom.from_config("wecom", channel_config("http://x", encoding_aes_key="short"))
    with pytest.raises(ConfigError, match="agent_id"):
        WeCom.from_config("wecom", channel_config("http://x", agent_id=0))
    with pytest.raises(ConfigError, match="corp_secret"):
        WeCom.from_config("wecom", {k: v for k, v in channel_config("http://x").items()
                                    if k != "corp_secret"})
