"""Integrity before identity, validity at a chosen time, and `require` needs a trust store.

Issue 14, item 11: a tampered alert whose certificate has also expired is reported as
tampered; `warnbus validate --signature require --at sent` verifies an archive alert signed in
2024 whose certificate expired since; a feed that requires signatures without a trust store
is refused at start-up unless it says it trusts the carried certificate.
"""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from lxml import etree

from tests.fixtures.make_signed import OUT
from tests.ingest.signing import DS, NOW, Identity, issue, sign
from warnbus.errors import ConfigError, IngestError
from warnbus.ingest.signature import verify_signature
from warnbus.ingest.validate_cmd import validate_paths
from warnbus.runtime.cli import main as cli_main
from warnbus.runtime.config import FeedSettings, load_settings

ARCHIVE = OUT / "rainstorm-red-2024.signed.xml"
ARCHIVE_CA = OUT / "archive-ca.pem"
SENT = datetime(2024, 7, 15, 4, 0, tzinfo=UTC) + timedelta(hours=-8)


def reason(body: bytes, **kw: object) -> str:
    with pytest.raises(IngestError) as info:
        verify_signature(body, "require", **kw)  # type: ignore[arg-type]
    assert info.value.field == "Signature"
    return info.value.reason


def run(paths: list[Path], **kw: object) -> tuple[int, list[str]]:
    out = io.StringIO()
    code = validate_paths([str(p) for p in paths], out, **kw)  # type: ignore[arg-type]
    return code, out.getvalue().splitlines()


# ------------------------------------------------------------------------ integrity first


def test_tampered_alert_with_an_expired_certificate_is_reported_as_tampered() -> None:
    body = ARCHIVE.read_bytes()
    assert "expired at 2025-01-01" in reason(body)  # untouched: only the expiry is wrong
    tampered = body.replace("红色预警".encode(), "蓝色预警".encode())
    assert tampered != body
    for trust in ((), (ARCHIVE_CA.read_bytes(),)):
        why = reason(tampered, trust=trust)
        assert "digest does not match" in why and "expired" not in why, why


def test_bad_signature_value_with_an_expired_certificate_is_reported_as_such() -> None:
    root = etree.fromstring(ARCHIVE.read_bytes())
    el = root.find(f"{DS}Signature/{DS}SignatureValue")
    assert el is not None and el.text
    raw = bytearray(base64.b64decode(el.text))
    raw[7] ^= 0x5A
    el.text = base64.b64encode(bytes(raw)).decode()
    why = reason(etree.tostring(root))
    assert "signature value does not verify" in why and "expired" not in why, why


def test_tampered_alert_with_a_not_yet_valid_certificate(ca: Identity) -> None:
    future = issue("future", issuer=ca, not_before=NOW + timedelta(days=30))
    body = sign((OUT.parent / "rainstorm-red.xml").read_bytes(), future)
    assert "not valid before" in reason(body)
    tampered = body.replace("万庾镇".encode(), "章华镇".encode(), 1)
    assert "digest does not match" in reason(tampered)


# ------------------------------------------------------------------------ validity time


def test_archive_alert_verifies_at_its_sent_time() -> None:
    body = ARCHIVE.read_bytes()
    trust = [ARCHIVE_CA.read_bytes()]
    assert verify_signature(body, "require", trust, at=SENT).trusted
    assert "expired at" in reason(body, trust=tuple(trust))  # now: expired since


def test_validate_at_sent_now_and_a_time() -> None:
    ca = str(ARCHIVE_CA)
    code, lines = run([ARCHIVE], signature="require", trust=[ca])
    assert code == 1 and "expired at 2025-01-01" in lines[0]
    assert run([ARCHIVE], signature="require", trust=[ca], at="sent") == (0, [f"ok {ARCHIVE}"])
    assert run([ARCHIVE], signature="require", at="sent") == (0, [f"ok {ARCHIVE}"])
    assert run([ARCHIVE], signature="require", at="2024-12-31T23:00:00+08:00")[0] == 0
    assert run([ARCHIVE], signature="require", at="2025-01-02T00:00:00+00:00")[0] == 1
    # The live examples (certificates valid 2026-2126) are judged at their own <sent> too.
    live = OUT / "rainstorm-red.signed.xml"
    assert run([live], signature="require", trust=[str(OUT / "ca.pem")], at="sent")[0] == 0


def test_tampered_archive_fails_at_sent_too() -> None:
    tampered = ARCHIVE.read_bytes().replace("红色预警".encode(), "蓝色预警".encode())
    with pytest.raises(IngestError, match="digest does not match"):
        verify_signature(tampered, "require", [ARCHIVE_CA.read_bytes()], at=SENT)


def test_at_option_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigError, match="--at must be now, sent"):
        run([ARCHIVE], signature="require", at="yesterday")
    with pytest.raises(ConfigError, match="offset"):
        run([ARCHIVE], signature="require", at="2024-07-15T04:00:00")
    with pytest.raises(ConfigError, match="--at needs --signature"):
        run([ARCHIVE], at="sent")
    argv = ["validate", "--signature", "require", "--at", "sent", str(ARCHIVE)]
    assert cli_main(argv) == 0
    captured = capsys.readouterr()
    assert captured.out == f"ok {ARCHIVE}\n"
    assert "certificate it carries" in captured.err  # no --trust: what that means is said
    assert cli_main(["validate", "--signature", "require", str(ARCHIVE)]) == 1
    assert "expired at" in capsys.readouterr().out
    assert cli_main(["validate", "--signature", "require", "--at", "soon", str(ARCHIVE)]) == 2


# ------------------------------------------------------------------------ require needs trust


def test_require_without_trust_store_is_refused_naming_the_feed(tmp_path: Path) -> None:
    conf = tmp_path / "warnbus.toml"
    conf.write_text('[[feeds]]\nname = "hunan-met"\nurl = "https://cap.example.cn/feed.atom"\n'
                    'signature = "require"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(conf, env={})
    assert "hunan-met" in info.value.message and "trust store" in info.value.message
    assert "trust_carried_certificate" in info.value.message
    with pytest.raises(msgspec.ValidationError, match="hunan-met"):
        msgspec.convert({"name": "hunan-met", "url": "https://x/", "signature": "require"},
                        FeedSettings)


def test_require_with_trust_or_explicit_carried_certificate_is_accepted(tmp_path: Path) -> None:
    conf = tmp_path / "warnbus.toml"
    conf.write_text(
        '[[feeds]]\nname = "a"\nurl = "https://x/a"\nsignature = "require"\ntrust = ["ca.pem"]\n'
        '[[feeds]]\nname = "b"\nurl = "https://x/b"\nsignature = "require"\n'
        'trust_carried_certificate = true\n'
        '[[feeds]]\nname = "c"\nurl = "https://x/c"\nsignature = "verify"\n')
    feeds = load_settings(conf, env={}).feeds
    assert [f.trust_carried_certificate for f in feeds] == [False, True, False]
