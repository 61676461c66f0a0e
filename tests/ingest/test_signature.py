"""XML-DSig verification of CAP alerts: the project's own alerts signed here with a throwaway
PKI."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from lxml import etree

from tests.ingest.helpers import FIXTURES
from tests.ingest.signing import C14N_10, DS, NOW, Identity, issue, resign, sign
from warnbus.errors import ConfigError, IngestError
from warnbus.ingest import parse_cap
from warnbus.ingest.signature import verify_signature

RAINSTORM = (FIXTURES / "rainstorm-red.xml").read_bytes()
PLACEHOLDER = FIXTURES / "signed-rainstorm.xml"
CAP_NS = "{urn:oasis:names:tc:emergency:cap:1.2}"


def rejects(
    body: bytes, *needles: str, policy: str = "verify", trust: tuple[bytes, ...] = ()
) -> str:
    """Assert the signature is refused as invalid, with a message containing every needle."""
    with pytest.raises(IngestError) as info:
        verify_signature(body, policy, trust)
    err = info.value
    assert (err.code, err.field, err.http_status) == ("invalid", "Signature", 422), str(err)
    assert "\n" not in str(err)
    for needle in needles:
        assert needle in err.reason, err.reason
    return err.reason


# ------------------------------------------------------------------------------- valid


@pytest.mark.parametrize(
    "name",
    [
        "rainstorm-red.xml",
        "cap10-heat.xml",
        "cap11-gale.xml",
        "geohazard-orange.xml",
        "flood-circle.xml",
        "rainstorm-red-cancel.xml",
    ],
)
def test_own_alerts_signed_verify_and_still_parse(
    name: str, signer: Identity, ca: Identity
) -> None:
    body = sign((FIXTURES / name).read_bytes(), signer)
    without = verify_signature(body, "require")
    assert without.signed and not without.trusted
    assert without.subject is not None and "CN=430623 county met office" in without.subject
    assert without.issuer is not None and "CN=Test Met Root CA" in without.issuer
    assert without.fingerprint is not None and len(without.fingerprint) == 64
    assert verify_signature(body, "verify", [ca.pem]).trusted
    assert parse_cap(body) == parse_cap((FIXTURES / name).read_bytes())


def test_pinned_signing_certificate_is_a_trust_store(signed: bytes, signer: Identity) -> None:
    assert verify_signature(signed, "require", [signer.pem]).trusted


@pytest.mark.parametrize(
    ("method", "digest", "c14n"),
    [
        ("rsa-sha1", "sha1", C14N_10),
        ("rsa-sha256", "sha256", C14N_10),
        ("rsa-sha512", "sha512", "http://www.w3.org/2006/12/xml-c14n11"),
    ],
)
def test_other_algorithms_national_services_use(
    method: str, digest: str, c14n: str, signer: Identity, ca: Identity
) -> None:
    body = sign(RAINSTORM, signer, method=method, digest=digest, c14n=c14n)
    assert verify_signature(body, "require", [ca.pem]).signed


def test_chain_through_an_intermediate_carried_in_keyinfo(ca: Identity) -> None:
    intermediate = issue("Provincial Met CA", issuer=ca, ca=True)
    leaf = issue("county office", issuer=intermediate)
    body = sign(RAINSTORM, leaf, [intermediate.cert])
    assert verify_signature(body, "require", [ca.pem]).trusted
    # X509Data implies no order: the intermediate first must work as well.
    reordered = sign(RAINSTORM, leaf, [intermediate.cert], leaf_first=False)
    assert (
        verify_signature(reordered, "require", [ca.pem]).subject
        == leaf.cert.subject.rfc4514_string()
    )
    # A CA certificate may not sign alerts itself.
    rejects(sign(RAINSTORM, intermediate), "not for signing")
    # Without the intermediate the path to the root is broken.
    alone = sign(RAINSTORM, leaf)
    rejects(alone, "does not chain to the trust store", trust=(ca.pem,))


def test_reference_to_the_alert_id_is_whole_alert(signer: Identity) -> None:
    body = RAINSTORM.replace(b"<alert xmlns=", b'<alert Id="a1" xmlns=', 1)
    assert verify_signature(sign(body, signer, reference_uri="#a1"), "require").signed


def test_comments_do_not_change_what_is_read(signed: bytes) -> None:
    # c14n drops comments, so a comment added after signing keeps the signature valid; the CAP
    # reader must then read the same headline the signer signed, not a truncated one.
    body = signed.replace("暴雨红色".encode(), "暴雨<!-- x -->红色".encode(), 1)
    assert verify_signature(body, "require").signed
    headline = parse_cap(body).infos[0].headline
    assert headline == parse_cap(RAINSTORM).infos[0].headline


# ------------------------------------------------------------------------------- refused


def test_tampered_headline(signed: bytes) -> None:
    body = signed.replace("红色预警信号</headline>".encode(), "蓝色预警信号</headline>".encode())
    assert body != signed
    rejects(body, "digest does not match", "changed after it was signed")


def test_bad_digest_under_a_valid_signature_value(signed: bytes, signer: Identity) -> None:
    def wrong_digest(root: etree._Element) -> None:
        el = root.find(f"{DS}Signature/{DS}SignedInfo/{DS}Reference/{DS}DigestValue")
        assert el is not None
        el.text = base64.b64encode(b"\x00" * 32).decode()

    rejects(resign(signed, signer.key, wrong_digest), "digest does not match")


def test_bad_signature_value(signed: bytes) -> None:
    root = etree.fromstring(signed)
    el = root.find(f"{DS}Signature/{DS}SignatureValue")
    assert el is not None and el.text
    raw = bytearray(base64.b64decode(el.text))
    raw[10] ^= 0xFF
    el.text = base64.b64encode(bytes(raw)).decode()
    rejects(etree.tostring(root), "signature value does not verify")


def test_certificate_of_another_key(signed: bytes, ca: Identity) -> None:
    impostor = issue("430623 county met office", issuer=ca)  # same name, other key
    der = impostor.cert.public_bytes(Encoding.DER)
    root = etree.fromstring(signed)
    el = root.find(f"{DS}Signature/{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    assert el is not None
    el.text = base64.b64encode(der).decode()
    rejects(etree.tostring(root), "signature value does not verify", trust=(ca.pem,))


def test_wrong_trust_store(signed: bytes, other_ca: Identity) -> None:
    rejects(
        signed,
        "does not chain to the trust store",
        "no trusted certificate issued it",
        trust=(other_ca.pem,),
    )


def test_expired_and_not_yet_valid_certificates(ca: Identity) -> None:
    old = issue(
        "old", issuer=ca, not_before=NOW - timedelta(days=400), not_after=NOW - timedelta(days=1)
    )
    body = sign(RAINSTORM, old)
    rejects(body, "expired at")
    rejects(body, "expired at", trust=(ca.pem,))
    # At a time inside its validity the same signature is good (an archive check).
    assert verify_signature(body, "verify", [ca.pem], at=NOW - timedelta(days=30)).trusted
    future = issue("future", issuer=ca, not_before=NOW + timedelta(days=1))
    rejects(sign(RAINSTORM, future), "not valid before")


def test_expired_ca_breaks_the_chain() -> None:
    root = issue(
        "Old Root", ca=True, not_before=NOW - timedelta(days=900), not_after=NOW - timedelta(days=1)
    )
    leaf = issue("leaf", issuer=root)
    rejects(sign(RAINSTORM, leaf), "expired or not yet valid", trust=(root.pem,))


def test_certificate_not_for_signing(ca: Identity) -> None:
    leaf = issue("encryption only", issuer=ca, signing_usage=False)
    rejects(sign(RAINSTORM, leaf), "not for signing")


def test_unsigned_by_policy() -> None:
    rejects(RAINSTORM, "not signed", policy="require")
    assert not verify_signature(RAINSTORM, "verify").signed
    # ignore does not even parse.
    assert not verify_signature(b"not xml at all", "ignore").signed


def test_two_signatures(signed: bytes, signer: Identity) -> None:
    root = etree.fromstring(signed)
    sig = root.find(f"{DS}Signature")
    assert sig is not None
    root.append(etree.fromstring(etree.tostring(sig)))
    rejects(etree.tostring(root), "2 signatures")


def test_signature_that_does_not_envelop_the_alert(signed: bytes) -> None:
    root = etree.fromstring(signed)
    sig = root.find(f"{DS}Signature")
    info = root.find(f"{CAP_NS}info")
    assert sig is not None and info is not None
    info.append(sig)
    rejects(etree.tostring(root), "inside <info>", "child of <alert>")


def test_reference_to_part_of_the_alert(signer: Identity) -> None:
    body = RAINSTORM.replace(b"<info>", b'<info Id="i1">', 1)
    rejects(sign(body, signer, reference_uri="#i1"), "covers URI '#i1'", "not the whole alert")


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda si: si.find(f"{DS}Reference").set("URI", "http://example.org/other"), "covers URI"),
        (
            lambda si: si.append(etree.fromstring(etree.tostring(si.find(f"{DS}Reference")))),
            "2 references",
        ),
        (
            lambda si: si.find(f"{DS}SignatureMethod").set(
                "Algorithm", "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256"
            ),
            "not supported",
        ),
        (
            lambda si: si.find(f"{DS}Reference/{DS}DigestMethod").set(
                "Algorithm", "http://www.w3.org/2001/04/xmldsig-more#md5"
            ),
            "digest method",
        ),
        (
            lambda si: si.find(f"{DS}Reference/{DS}Transforms")[0].set(
                "Algorithm", "http://www.w3.org/TR/1999/REC-xpath-19991116"
            ),
            "lacks the enveloped-signature transform",
        ),
        (
            lambda si: si.find(f"{DS}Reference/{DS}Transforms").append(
                etree.Element(
                    f"{DS}Transform", Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116"
                )
            ),
            "transform 'http://www.w3.org/TR/1999/REC-xslt-19991116' is not supported",
        ),
    ],
    ids=["external-uri", "two-references", "hmac", "md5", "no-enveloped", "xslt"],
)
def test_signed_info_shapes_refused(
    signed: bytes, signer: Identity, edit: object, needle: str
) -> None:
    def apply(root: etree._Element) -> None:
        si = root.find(f"{DS}Signature/{DS}SignedInfo")
        edit(si)  # type: ignore[operator]

    rejects(resign(signed, signer.key, apply), needle)


def test_no_certificate(signed: bytes) -> None:
    root = etree.fromstring(signed)
    key_info = root.find(f"{DS}Signature/{DS}KeyInfo")
    assert key_info is not None
    key_info.clear()
    etree.SubElement(key_info, f"{DS}KeyName").text = "county-2026"
    rejects(etree.tostring(root), "no X.509 certificate", "'county-2026'")


def test_garbage_certificate(signed: bytes) -> None:
    root = etree.fromstring(signed)
    el = root.find(f"{DS}Signature/{DS}KeyInfo/{DS}X509Data/{DS}X509Certificate")
    assert el is not None
    el.text = base64.b64encode(b"not a certificate").decode()
    rejects(etree.tostring(root), "is not a certificate")


def test_placeholder_fixture_is_refused_but_parses() -> None:
    """signed-rainstorm.xml carries a placeholder: DigestValue 0xDEADBEEF…, a SignatureValue that
    spells "signature not verified by the parser", and only a KeyName. It is valid CAP."""
    body = PLACEHOLDER.read_bytes()
    parse_cap(body)
    assert not verify_signature(body, "ignore").signed
    rejects(body, "no X.509 certificate", "'430623-qx-2026'")
    rejects(body, "no X.509 certificate", policy="require")


def test_not_xml_and_bad_configuration(ca: Identity) -> None:
    with pytest.raises(IngestError) as info:
        verify_signature(b"<alert", "verify")
    assert info.value.code == "malformed"
    with pytest.raises(ConfigError, match="one of require, verify, ignore"):
        verify_signature(RAINSTORM, "strict")
    with pytest.raises(ConfigError, match="no PEM certificate"):
        verify_signature(RAINSTORM, "verify", [b"-----BEGIN NONSENSE-----"])
