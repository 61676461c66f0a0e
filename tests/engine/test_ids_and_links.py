"""Delivery ids and ack links are computed from a hash kept per message / per secret: the
values must be exactly those of the plain formula, now and after any upgrade."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from warnbus.domain.models import delivery_id_for, delivery_ids
from warnbus.errors import AuthError
from warnbus.flow.acks import AckLinks

CASES = [
    ("cp_1", "alert-1", "p4306231010010001", "voice", 0),
    ("cp_1", "alert-1", "p4306231010010001", "sms", 10),
    ("cp_2", "2.49.0.1.156.0.2026", "area:430623101001", "loudspeaker", 3),
    ("cp_中文", "预警-1", "人员-1", "wecom", 41),
]


def plain_id(campaign_id: str, alert_id: str, target_id: str, channel: str, step: int) -> str:
    raw = f"{campaign_id}\x1f{alert_id}\x1f{target_id}\x1f{channel}\x1f{step}"
    return "dl_" + hashlib.blake2b(raw.encode(), digest_size=12).hexdigest()


@pytest.mark.parametrize("case", CASES)
def test_delivery_ids_are_the_plain_hash(case: tuple[str, str, str, str, int]) -> None:
    want = plain_id(*case)
    assert delivery_id_for(*case) == want
    make = delivery_ids(case[0], case[1])
    assert make(*case[2:]) == want
    assert make(*case[2:]) == want  # the kept hash is copied, never consumed


def test_a_known_delivery_id_never_changes() -> None:
    assert delivery_id_for("cp_1", "alert-1", "p1", "sms", 0) == plain_id(
        "cp_1", "alert-1", "p1", "sms", 0)
    assert len(delivery_id_for("cp_1", "alert-1", "p1", "sms", 0)) == 3 + 24


def test_ack_link_signature_is_hmac_sha256_of_the_body() -> None:
    secret = b"s" * 32
    links = AckLinks(secret, "http://h:8080/", 3600)
    tokens = [links.token("cp_1", pid, 1_000.0) for pid in ("p1", "p2", "p1")]
    assert tokens[0] == tokens[2] != tokens[1]
    for token, pid in zip(tokens, ("p1", "p2", "p1"), strict=True):
        body_s, sig_s = token.split(".")
        body = base64.urlsafe_b64decode(body_s + "=" * (-len(body_s) % 4))
        assert body == f"cp_1|{pid}|4600".encode()
        want = hmac.new(secret, body, hashlib.sha256).digest()[:16]
        assert base64.urlsafe_b64decode(sig_s + "=" * (-len(sig_s) % 4)) == want
        assert links.verify(token, 2_000.0) == ("cp_1", pid)
    with pytest.raises(AuthError):
        AckLinks(b"t" * 32, "http://h:8080", 3600).verify(tokens[0], 2_000.0)
