"""The callback crypto against WeCom's published sample and an independent implementation,
and the card task_id codec."""

from __future__ import annotations

import base64

import pytest
from wecom_kit import AES_KEY, CORP_ID, OFFICIAL, TOKEN, ref_decrypt, ref_encrypt, ref_sign

from channels.wecom_crypto import (
    WeComCrypto,
    address_tag,
    decode_aes_key,
    decode_task_id,
    encode_task_id,
    parse_xml,
    sent_to,
)
from warnbus.errors import AuthError

# WeCom's sample: URL verification and a text message (document/path/90968)
OFFICIAL_ECHO = {"msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
                 "timestamp": "1409659589", "nonce": "263014780",
                 "echostr": "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+"
                            "4RPcs8TgAE7OaBO+FZXvnaqQ=="}
OFFICIAL_MSG = {"msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
                "timestamp": "1409659813", "nonce": "1372623149",
                "encrypted": ("RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X"
                              "/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W/sYYvuJTs3TUUkSUXxaccAS0qhxchrRY"
                              "t66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kD"
                              "Z+HMZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r"
                              "+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB3LAVGUcallcrw8V2t9EL4EhzJWrQU"
                              "ax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g"
                              "7m3fVKn28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7"
                              "Q==")}


@pytest.fixture
def official() -> WeComCrypto:
    return WeComCrypto(OFFICIAL["token"], OFFICIAL["key"], OFFICIAL["corp_id"])


@pytest.fixture
def crypto() -> WeComCrypto:
    return WeComCrypto(TOKEN, AES_KEY, CORP_ID)


def test_official_url_verification_vector(official: WeComCrypto) -> None:
    v = OFFICIAL_ECHO
    assert official.open(v["msg_signature"], v["timestamp"], v["nonce"], v["echostr"]) == (
        b"1616140317555161061")


def test_official_message_vector(official: WeComCrypto) -> None:
    v = OFFICIAL_MSG
    plain = official.open(v["msg_signature"], v["timestamp"], v["nonce"], v["encrypted"])
    event = parse_xml(plain)
    assert event.findtext("Content") == "hello"
    assert event.findtext("MsgId") == "4561255354251345929"
    assert event.findtext("FromUserName") == "mycreate"


def test_official_vector_for_another_corp_is_refused() -> None:
    other = WeComCrypto(OFFICIAL["token"], OFFICIAL["key"], "wwSomeOtherCorp")
    v = OFFICIAL_MSG
    with pytest.raises(AuthError, match="receive id"):
        other.open(v["msg_signature"], v["timestamp"], v["nonce"], v["encrypted"])


@pytest.mark.parametrize("message", [b"", b"x", b"success", "确认收到".encode() * 40,
                                     bytes(range(256))])
def test_known_answer_against_the_reference(crypto: WeComCrypto, message: bytes) -> None:
    random16 = bytes(range(16))
    expected = ref_encrypt(message, random16=random16)
    assert crypto.encrypt(message, random16=random16) == expected
    assert crypto.decrypt(expected) == message
    assert ref_decrypt(crypto.encrypt(message)) == (message, CORP_ID.encode())


def test_signature_is_sha1_of_the_sorted_parts(crypto: WeComCrypto) -> None:
    assert crypto.signature("1409659813", "n0nce", "ENC") == ref_sign(TOKEN, "1409659813",
                                                                      "n0nce", "ENC")
    crypto.verify(ref_sign(TOKEN, "1", "2", "3").upper(), "1", "2", "3")  # hex case does not matter
    with pytest.raises(AuthError, match="msg_signature"):
        crypto.verify(ref_sign(TOKEN, "1", "2", "3"), "1", "2", "4")
    with pytest.raises(AuthError):
        crypto.verify("签名", "1", "2", "3")  # non-ASCII must not raise TypeError


def test_seal_then_open(crypto: WeComCrypto) -> None:
    encrypted, signature = crypto.seal(b"<xml/>", "1700000000", "abc")
    assert crypto.open(signature, "1700000000", "abc", encrypted) == b"<xml/>"


@pytest.mark.parametrize("encrypted", [
    "not base64!",
    base64.b64encode(b"short").decode(),
    base64.b64encode(bytes(48)).decode(),  # not a multiple of 32
])
def test_malformed_ciphertexts_are_refused(crypto: WeComCrypto, encrypted: str) -> None:
    with pytest.raises(AuthError):
        crypto.decrypt(encrypted)


def test_wrong_key_is_refused(crypto: WeComCrypto) -> None:
    other_key = "A" * 43
    encrypted = ref_encrypt(b"hello", key43=other_key)
    with pytest.raises(AuthError):
        crypto.decrypt(encrypted)


def test_wrong_receive_id_is_refused(crypto: WeComCrypto) -> None:
    with pytest.raises(AuthError, match="receive id"):
        crypto.decrypt(ref_encrypt(b"hello", receive_id="wwAnotherCorp"))


@pytest.mark.parametrize("key", ["", "a" * 42, "a" * 44, "a" * 42 + "!", "a" * 42 + "="])
def test_bad_aes_keys(key: str) -> None:
    with pytest.raises(ValueError):
        decode_aes_key(key)


def test_aes_key_decodes_to_32_bytes() -> None:
    assert len(decode_aes_key(AES_KEY)) == 32


@pytest.mark.parametrize("xml", [
    b"not xml",
    b"<notxml/>",
    b'<!DOCTYPE xml [<!ENTITY x "boom">]><xml><Encrypt>&x;</Encrypt></xml>',
    b'<!DOCTYPE xml SYSTEM "http://example.invalid/x.dtd"><xml/>',
])
def test_parse_xml_refuses_junk_and_dtds(xml: bytes) -> None:
    with pytest.raises(ValueError):
        parse_xml(xml)


# --------------------------------------------------------------------------- task ids


def test_task_id_round_trip_and_limits() -> None:
    tid = encode_task_id(CORP_ID, "cp_0123456789abcdef0123", "dl_0123456789abcdef01234567",
                         "p43062300004", "u43062300004")
    assert len(tid) <= 128
    assert all(c.isascii() and (c.isalnum() or c in "_-@") for c in tid)
    ref = decode_task_id(tid)
    assert ref[:3] == ("cp_0123456789abcdef0123", "dl_0123456789abcdef01234567", "p43062300004")
    assert sent_to(CORP_ID, ref, "u43062300004")
    assert sent_to(CORP_ID, ref, "U43062300004")  # WeCom userids are case-insensitive
    assert not sent_to(CORP_ID, ref, "u43062300005")
    assert not sent_to(CORP_ID, ref, "")
    assert not sent_to("wwOtherCorp", ref, "u43062300004")


@pytest.mark.parametrize("target", ["person.with.dots", "-leading-dash", "张三", "a@b", "x" * 30])
def test_task_id_carries_any_id(target: str) -> None:
    tid = encode_task_id(CORP_ID, "cp_1", "dl_2", target, "zhangsan")
    ref = decode_task_id(tid)
    assert (ref.campaign_id, ref.delivery_id, ref.target_id) == ("cp_1", "dl_2", target)


def test_task_id_too_long() -> None:
    with pytest.raises(ValueError, match="128"):
        encode_task_id(CORP_ID, "cp_" + "a" * 60, "dl_" + "b" * 60, "p1", "u1")


@pytest.mark.parametrize("tid", ["", "wb1@a@b@c", "wb2@a@b@c@tag", "wb1@a@b@c@d@e", "wb1@a b@c@d@t",
                                 "wb1@-!!@b@c@t", "x" * 129])
def test_foreign_task_ids_are_refused(tid: str) -> None:
    with pytest.raises(ValueError):
        decode_task_id(tid)


def test_tag_binds_every_field() -> None:
    base = address_tag(CORP_ID, "cp", "dl", "p", "u")
    assert len(base) == 12
    assert {address_tag(CORP_ID, "cpX", "dl", "p", "u"),
            address_tag(CORP_ID, "cp", "dlX", "p", "u"),
            address_tag(CORP_ID, "cp", "dl", "pX", "u")}.isdisjoint({base})
