"""The WeCom callback endpoint over real HTTP: URL verification, the 确认收到 button, and
everything that must be refused without touching the sink."""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp
import pytest
from wecom_kit import (
    AGENT_ID,
    CORP_ID,
    OFFICIAL,
    TOKEN,
    RecordingSink,
    card_event,
    delivery,
    ref_decrypt,
    ref_encrypt,
    ref_sign,
    serve_hooks,
    signed_callback,
)
from yarl import URL

from channels.wecom import WeCom
from channels.wecom_crypto import parse_xml
from warnbus.domain.models import AckVia, Delivery
from warnbus.plugin import Confirmation

# --------------------------------------------------------------------------- URL verification


async def test_url_verification(hooks: str, http: aiohttp.ClientSession) -> None:
    ts = str(int(time.time()))
    echostr = ref_encrypt(b"7081469548930150215")
    params = {"msg_signature": ref_sign(TOKEN, ts, "42", echostr), "timestamp": ts, "nonce": "42",
              "echostr": echostr}
    async with http.get(f"{hooks}/callback", params=params) as resp:
        assert resp.status == 200
        assert await resp.text() == "7081469548930150215"


async def test_url_verification_with_wecoms_sample(
    make_channel: Callable[..., WeCom], sink: RecordingSink, http: aiohttp.ClientSession
) -> None:
    config = make_channel(corp_id=OFFICIAL["corp_id"], token=OFFICIAL["token"],
                          encoding_aes_key=OFFICIAL["key"]).config
    channel = WeCom("wecom", config, clock=lambda: 1409659589.0)  # the sample's own time
    echostr = ("P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+"
               "4RPcs8TgAE7OaBO+FZXvnaqQ==")
    query = ("msg_signature=5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3"
             "&timestamp=1409659589&nonce=263014780")
    async with serve_hooks(channel, sink) as base:
        for raw_echo in (echostr.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D"),
                         echostr):  # the second keeps "+" raw: it arrives as a space
            url = URL(f"{base}/callback?{query}&echostr={raw_echo}", encoded=True)
            async with http.get(url) as resp:
                assert (resp.status, await resp.text()) == (200, "1616140317555161061")


async def test_url_verification_with_bad_signature(hooks: str, http: aiohttp.ClientSession) -> None:
    ts = str(int(time.time()))
    echostr = ref_encrypt(b"123")
    params = {"msg_signature": ref_sign("otherToken", ts, "42", echostr), "timestamp": ts,
              "nonce": "42", "echostr": echostr}
    async with http.get(f"{hooks}/callback", params=params) as resp:
        assert resp.status == 403
    async with http.get(f"{hooks}/callback", params={"echostr": echostr}) as resp:
        assert resp.status == 400


# --------------------------------------------------------------------------- the button


def _task_id(channel: WeCom, d: Delivery) -> str:
    task_id: str = channel.build_message(d)["template_card"]["task_id"]
    return task_id


async def _post(http: aiohttp.ClientSession, hooks: str, params: dict[str, str],
                body: str | bytes) -> tuple[int, str]:
    async with http.post(f"{hooks}/callback", params=params, data=body,
                         headers={"Content-Type": "text/xml"}) as resp:
        return resp.status, await resp.text()


async def test_button_click_confirms(channel: WeCom, hooks: str, sink: RecordingSink,
                                     http: aiohttp.ClientSession) -> None:
    d = delivery()
    params, body = signed_callback(card_event(d.address, _task_id(channel, d)))
    status, text = await _post(http, hooks, params, body)
    assert status == 200
    assert sink.confirms == [(d.campaign_id, d.target_id, AckVia.WECOM, d.id)]
    # The passive reply greys the button out for that user: check it with the reference crypto.
    reply = parse_xml(text.encode())
    encrypted = reply.findtext("Encrypt") or ""
    assert reply.findtext("MsgSignature") == ref_sign(
        TOKEN, reply.findtext("TimeStamp") or "", reply.findtext("Nonce") or "", encrypted)
    message, receive_id = ref_decrypt(encrypted)
    assert receive_id == CORP_ID.encode()
    inner = parse_xml(message)
    assert inner.findtext("MsgType") == "update_button"
    assert inner.findtext("Button/ReplaceName") == "已确认收到"
    assert inner.findtext("ToUserName") == d.address


@pytest.mark.parametrize(("late", "label"), [(Confirmation.LIFTED, "预警已解除"),
                                             (Confirmation.ENDED, "预警已结束")])
async def test_a_late_click_is_not_told_it_confirmed(channel: WeCom, hooks: str,
                                                    sink: RecordingSink,
                                                    http: aiohttp.ClientSession,
                                                    late: Confirmation, label: str) -> None:
    """A click after the warning was lifted (or ended) is kept as late by the engine: the
    button says so, never 已确认收到."""
    sink.late = late
    d = delivery()
    params, body = signed_callback(card_event(d.address, _task_id(channel, d)))
    status, text = await _post(http, hooks, params, body)
    assert status == 200 and len(sink.confirms) == 1
    message, _ = ref_decrypt(parse_xml(text.encode()).findtext("Encrypt") or "")
    assert parse_xml(message).findtext("Button/ReplaceName") == label


async def test_userid_case_does_not_matter(channel: WeCom, hooks: str, sink: RecordingSink,
                                           http: aiohttp.ClientSession) -> None:
    d = delivery(address="ZhangSan")
    params, body = signed_callback(card_event("zhangsan", _task_id(channel, d)))
    assert (await _post(http, hooks, params, body))[0] == 200
    assert len(sink.confirms) == 1


async def test_resent_callback_confirms_once(channel: WeCom, hooks: str, sink: RecordingSink,
                                             http: aiohttp.ClientSession) -> None:
    d = delivery()
    params, body = signed_callback(card_event(d.address, _task_id(channel, d)))
    assert (await _post(http, hooks, params, body))[0] == 200
    # WeCom's own resend: answered as the first was (its button turns grey), confirms nothing
    status, text = await _post(http, hooks, params, body)
    assert status == 200 and "<Encrypt>" in text
    assert len(sink.confirms) == 1


async def test_other_events_and_buttons_are_ignored(channel: WeCom, hooks: str,
                                                    sink: RecordingSink,
                                                    http: aiohttp.ClientSession) -> None:
    d = delivery()
    for plain in (card_event(d.address, _task_id(channel, d), event="enter_agent"),
                  card_event(d.address, _task_id(channel, d), key="later")):
        params, body = signed_callback(plain, nonce=str(time.monotonic_ns()))
        assert (await _post(http, hooks, params, body)) == (200, "")
    assert sink.untouched


# --------------------------------------------------------------------------- refusals


async def _refused(http: aiohttp.ClientSession, hooks: str, sink: RecordingSink,
                   params: dict[str, str], body: str | bytes, status: int = 403) -> None:
    assert (await _post(http, hooks, params, body))[0] == status
    assert sink.untouched


async def test_card_clicked_by_someone_else(channel: WeCom, hooks: str, sink: RecordingSink,
                                            http: aiohttp.ClientSession) -> None:
    d = delivery(address="u43062300004")
    params, body = signed_callback(card_event("u43062300099", _task_id(channel, d)))
    await _refused(http, hooks, sink, params, body)


async def test_forged_task_ids(channel: WeCom, hooks: str, sink: RecordingSink,
                               http: aiohttp.ClientSession) -> None:
    d = delivery()
    genuine = _task_id(channel, d)
    forged_target = genuine.replace(d.target_id, "p43062300005")  # same user, other person
    for task_id in (forged_target, "wb1@cp_x@dl_y@p_z@AAAAAAAAAAAA", "someone-elses-task",
                    "wb1@cp_1@dl_2@张三@AAAAAAAAAAAA"):
        params, body = signed_callback(card_event(d.address, task_id),
                                       nonce=str(time.monotonic_ns()))
        await _refused(http, hooks, sink, params, body)


async def test_bad_signature(channel: WeCom, hooks: str, sink: RecordingSink,
                             http: aiohttp.ClientSession) -> None:
    d = delivery()
    params, body = signed_callback(card_event(d.address, _task_id(channel, d)), token="wrong")
    await _refused(http, hooks, sink, params, body)
    params, body = signed_callback(card_event(d.address, _task_id(channel, d)))
    params["nonce"] = "changed"
    await _refused(http, hooks, sink, params, body)


async def test_wrong_receive_id(channel: WeCom, hooks: str, sink: RecordingSink,
                                http: aiohttp.ClientSession) -> None:
    d = delivery()
    params, body = signed_callback(card_event(d.address, _task_id(channel, d)),
                                   receive_id="wwAnotherCorp0000")
    await _refused(http, hooks, sink, params, body)


async def test_stale_timestamp_is_a_replay(channel: WeCom, hooks: str, sink: RecordingSink,
                                           http: aiohttp.ClientSession) -> None:
    d = delivery()
    old = str(int(time.time()) - 3600)
    params, body = signed_callback(card_event(d.address, _task_id(channel, d)), timestamp=old)
    await _refused(http, hooks, sink, params, body)


async def test_event_for_another_agent(channel: WeCom, hooks: str, sink: RecordingSink,
                                       http: aiohttp.ClientSession) -> None:
    d = delivery()
    plain = card_event(d.address, _task_id(channel, d), agent_id=AGENT_ID + 1)
    params, body = signed_callback(plain)
    await _refused(http, hooks, sink, params, body)


async def test_garbage_bodies(hooks: str, sink: RecordingSink, http: aiohttp.ClientSession) -> None:
    ts = str(int(time.time()))
    params = {"msg_signature": "0" * 40, "timestamp": ts, "nonce": "1"}
    await _refused(http, hooks, sink, params, "this is not xml", 400)
    await _refused(http, hooks, sink, params, "<xml><ToUserName>x</ToUserName></xml>", 400)
    await _refused(http, hooks, sink, params,
                   '<!DOCTYPE xml [<!ENTITY e "x">]><xml><Encrypt>&e;</Encrypt></xml>', 400)
    await _refused(http, hooks, sink, params, "<xml><Encrypt>" + "A" * 70_000 + "</Encrypt></xml>",
                   400)
    await _refused(http, hooks, sink, {}, "<xml><Encrypt>abc</Encrypt></xml>", 400)


async def test_signed_but_undecryptable(hooks: str, sink: RecordingSink,
                                        http: aiohttp.ClientSession) -> None:
    ts = str(int(time.time()))
    for encrypted in ("bm90IGEgY2lwaGVydGV4dA==", "A" * 64):
        params = {"msg_signature": ref_sign(TOKEN, ts, "1", encrypted), "timestamp": ts,
                  "nonce": "1"}
        await _refused(http, hooks, sink, params, f"<xml><Encrypt>{encrypted}</Encrypt></xml>")


async def test_signed_inner_garbage(hooks: str, sink: RecordingSink,
                                    http: aiohttp.ClientSession) -> None:
    params, body = signed_callback(b"<xml><unclosed></xml>")
    await _refused(http, hooks, sink, params, body, 400)
