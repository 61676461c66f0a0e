"""Verify the enveloped XML-DSig signature of a CAP alert, as national met services sign them.

What is accepted: exactly one `<ds:Signature>`, a child of `<alert>`, whose one `<Reference>`
covers the whole alert (URI "" or the alert's own id) under the enveloped-signature transform;
RSA (PKCS#1 v1.5, SHA-1/SHA-2) or ECDSA (SHA-2) signatures, SHA-1/SHA-2 digests, inclusive or
exclusive c14n; the signing certificate in `KeyInfo/X509Data/X509Certificate`. signxml does the
cryptography; this module decides beforehand what shape is acceptable, and whom to trust:

- with a trust store, the signing certificate must chain to one of its certificates (a CA, or
  the pinned signing certificate itself), every certificate on the path valid at the time;
- without one, the signature must verify against the certificate it carries, and that
  certificate must be valid (as the WMO CAP validator does: integrity, not identity). Anyone
  can sign with a certificate of their own, so a feed that *requires* signatures needs a
  trust store or an explicit `trust_carried_certificate` (FeedSettings).

Integrity is judged before identity: digests and the signature value are checked first, so a
changed alert is reported as changed even when its certificate has also expired. Validity is
judged at a chosen time: now for live feeds, the alert's `<sent>` for archives (`warnbus
validate --at sent`), so an alert signed in 2024 verifies as it did then.

The body is parsed by `safexml.parse_xml`, the very parse the CAP reader uses, so what is
verified is what is read. That parse drops comments (a URI "" reference excludes them anyway)
and processing instructions (a PI inside `<alert>` would make a genuine signature fail; no
feed is known to put one there).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509 import verification
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.exceptions import InvalidCertificate, InvalidDigest, InvalidSignature, SignXMLException
from signxml.verifier import SignatureConfiguration, VerifyResult, XMLVerifier

from warnbus.errors import ConfigError, IngestError
from warnbus.ingest.safexml import parse_xml

DS_NS = "http://www.w3.org/2000/09/xmldsig#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
FIELD = "Signature"
_Q = "{" + DS_NS + "}"
_ID_ATTRIBUTES = ("Id", "ID", "id", "{http://www.w3.org/XML/1998/namespace}id")

# SHA-1 stays accepted: national services still sign with RSA-SHA1 (signxml refuses it unless
# asked). DSA, HMAC (no certificate to trust) and SHA-3 (no CAP signer uses it) are not.
_SIGNATURE_METHODS = frozenset(
    {
        SignatureMethod.RSA_SHA1,
        SignatureMethod.RSA_SHA224,
        SignatureMethod.RSA_SHA256,
        SignatureMethod.RSA_SHA384,
        SignatureMethod.RSA_SHA512,
        SignatureMethod.ECDSA_SHA256,
        SignatureMethod.ECDSA_SHA384,
        SignatureMethod.ECDSA_SHA512,
    }
)
_DIGESTS = frozenset(
    {
        DigestAlgorithm.SHA1,
        DigestAlgorithm.SHA224,
        DigestAlgorithm.SHA256,
        DigestAlgorithm.SHA384,
        DigestAlgorithm.SHA512,
    }
)
_C14N = frozenset(m.value for m in CanonicalizationMethod)
_TRANSFORMS = _C14N | {ENVELOPED}


class SignaturePolicy(StrEnum):
    """What a source's alerts must show: a valid signature, a valid one if any, or nothing."""

    REQUIRE = "require"
    VERIFY = "verify"
    IGNORE = "ignore"


@dataclass(frozen=True, slots=True)
class SignatureResult:
    """The outcome of a check that passed. `signed` is True only for a verified signature."""

    signed: bool
    subject: str | None = None  # the signing certificate's subject, RFC 4514
    issuer: str | None = None
    fingerprint: str | None = None  # SHA-256 of the signing certificate (DER), lowercase hex
    trusted: bool = False  # chained to the trust store, not merely the certificate it carried


UNSIGNED = SignatureResult(signed=False)


def verify_signature(
    body: bytes, policy: str, trust: Sequence[bytes] = (), *, at: datetime | None = None
) -> SignatureResult:
    """Check the signature of a CAP XML body under `policy`; raise IngestError if it fails.

    `trust` holds PEM texts (CA or signing certificates); certificates are checked for
    validity `at` that time (timezone-aware; default now: an archive check passes the
    alert's `<sent>`, see `validity_time`). A digest or signature value that does not verify
    is reported before anything about the certificates. Failures are `IngestError("invalid", ...,
    field="Signature")`; a body that is not XML is `malformed` as for the CAP parser; a bad
    policy or trust store is a ConfigError (the caller's configuration, not the alert).
    """
    mode = parse_policy(policy)
    if mode is SignaturePolicy.IGNORE:
        return UNSIGNED
    anchors = load_trust(tuple(trust)) if trust else ()
    when = _utc(at)
    root = parse_xml(body)
    found = list(root.iter(_Q + "Signature"))
    if not found:
        if mode is SignaturePolicy.REQUIRE:
            raise _bad("the alert is not signed, and a valid XML signature is required")
        return UNSIGNED
    signature = _the_signature(root, found)
    _check_signed_info(root, signature)
    certs = _certificates(signature)
    leaf = _signing_certificate(certs)
    # Integrity first: digests and signature value, judged inside the certificate's own
    # validity, so that a tampered alert is never reported as "certificate expired".
    _verify_integrity(root, leaf)
    _check_leaf(leaf, when)
    if anchors:
        _check_chain(leaf, [c for c in certs if c is not leaf], anchors, when)
    return SignatureResult(
        signed=True,
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        fingerprint=hashlib.sha256(leaf.public_bytes(Encoding.DER)).hexdigest(),
        trusted=bool(anchors),
    )


#: `--at` words: judge certificates now, or at the alert's own `<sent>` (archives).
AT_NOW, AT_SENT = "now", "sent"


def parse_at(at: str) -> datetime | str:
    """`now`, `sent`, or an ISO-8601 time with an offset; ConfigError for anything else."""
    if at in (AT_NOW, AT_SENT):
        return at
    try:
        when = datetime.fromisoformat(at)
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ConfigError(
            f"--at must be now, sent, or an ISO-8601 time with its offset (e.g. "
            f"2024-07-15T08:00:00+08:00); got {at!r}"
        )
    return when


def validity_time(at: datetime | str, sent: datetime) -> datetime | None:
    """The time to judge certificates at for an alert sent at `sent` (None: now)."""
    if isinstance(at, datetime):
        return at
    return sent if at == AT_SENT else None


def parse_policy(policy: str) -> SignaturePolicy:
    """The policy named by a configuration or the CLI; ConfigError for any other word."""
    try:
        return SignaturePolicy(policy)
    except ValueError:
        choices = ", ".join(p.value for p in SignaturePolicy)
        raise ConfigError(f"signature policy must be one of {choices}; got {policy!r}") from None


@lru_cache(maxsize=32)
def load_trust(pems: tuple[bytes, ...]) -> tuple[x509.Certificate, ...]:
    """The certificates of a trust store given as PEM texts (cached: feeds reuse one store)."""
    certs: list[x509.Certificate] = []
    for n, pem in enumerate(pems, 1):
        try:
            certs.extend(x509.load_pem_x509_certificates(pem))
        except ValueError:
            raise ConfigError(f"trust store entry {n} holds no PEM certificate") from None
    return tuple(certs)


def read_trust_files(paths: Sequence[str]) -> tuple[bytes, ...]:
    """Read PEM trust store files, naming the file that cannot be read or holds no certificate."""
    pems = []
    for path in paths:
        try:
            with open(path, "rb") as fh:
                pem = fh.read()
        except OSError as exc:
            raise ConfigError(f"cannot read trust store {path}: {exc.strerror or exc}") from None
        try:
            load_trust((pem,))
        except ConfigError:
            raise ConfigError(f"trust store {path} holds no PEM certificate") from None
        pems.append(pem)
    return tuple(pems)


# ------------------------------------------------------------------------------- checks


def _bad(message: str) -> IngestError:
    return IngestError("invalid", message, FIELD)


def _utc(at: datetime | None) -> datetime:
    if at is None:
        return datetime.now(UTC)
    if at.tzinfo is None:
        raise ValueError("verification time must be timezone-aware")
    return at.astimezone(UTC)


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _the_signature(root: etree._Element, found: list[etree._Element]) -> etree._Element:
    """The one signature, a child of <alert>: a second one, or one deeper, signs something else."""
    if len(found) > 1:
        raise _bad(
            f"the alert carries {len(found)} signatures; exactly one enveloped signature over "
            "the whole alert is accepted"
        )
    signature = found[0]
    parent = signature.getparent()
    if parent is not root:
        where = _local(parent.tag) if parent is not None else "?"
        raise _bad(
            f"the signature is inside <{where}>; it must be a child of <alert> and sign the "
            "whole alert"
        )
    return signature


def _algorithm(parent: etree._Element, name: str) -> str:
    el = parent.find(_Q + name)
    if el is None:
        raise _bad(f"the signature has no <{name}>")
    return el.get("Algorithm") or ""


def _check_signed_info(root: etree._Element, signature: etree._Element) -> None:
    """Refuse, with a reason, any signature that does not cover exactly the whole alert."""
    signed_info = signature.find(_Q + "SignedInfo")
    if signed_info is None:
        raise _bad("the signature has no <SignedInfo>")
    c14n = _algorithm(signed_info, "CanonicalizationMethod")
    if c14n not in _C14N:
        raise _bad(f"canonicalization method {c14n!r} is not supported")
    method = _algorithm(signed_info, "SignatureMethod")
    if method not in {m.value for m in _SIGNATURE_METHODS}:
        raise _bad(
            f"signature method {method!r} is not supported (RSA with SHA-1/SHA-2, or ECDSA "
            "with SHA-2, are)"
        )
    refs = signed_info.findall(_Q + "Reference")
    if len(refs) != 1:
        raise _bad(
            f"the signature has {len(refs)} references; exactly one, covering the whole alert, "
            "is accepted"
        )
    ref = refs[0]
    uri = ref.get("URI")
    if not _covers_root(root, uri):
        raise _bad(
            f"the signature covers URI {uri!r}, not the whole alert: the reference URI must be "
            '"" or the id of <alert>'
        )
    transforms = [t.get("Algorithm") or "" for t in ref.iterfind(f"{_Q}Transforms/{_Q}Transform")]
    if ENVELOPED not in transforms:
        raise _bad("the reference lacks the enveloped-signature transform")
    unknown = [t for t in transforms if t not in _TRANSFORMS]
    if unknown:
        raise _bad(
            f"transform {unknown[0]!r} is not supported (only enveloped-signature and "
            "canonicalization are)"
        )
    digest = _algorithm(ref, "DigestMethod")
    if digest not in {d.value for d in _DIGESTS}:
        raise _bad(f"digest method {digest!r} is not supported (SHA-1 and SHA-2 are)")


def _covers_root(root: etree._Element, uri: str | None) -> bool:
    if uri == "":
        return True
    if uri is None or not uri.startswith("#") or len(uri) < 2:
        return False
    # The id must name <alert> and nothing else: signxml resolves ids document-wide.
    holders = [
        el
        for el in root.iter()
        if isinstance(el.tag, str) and any(el.get(a) == uri[1:] for a in _ID_ATTRIBUTES)
    ]
    return holders == [root]


def _certificates(signature: etree._Element) -> list[x509.Certificate]:
    texts = signature.findall(f"{_Q}KeyInfo/{_Q}X509Data/{_Q}X509Certificate")
    if not texts:
        names = [(n.text or "").strip() for n in signature.iterfind(f"{_Q}KeyInfo/{_Q}KeyName")]
        hint = f" (KeyInfo only names the key {names[0][:60]!r})" if names and names[0] else ""
        raise _bad(
            "the signature carries no X.509 certificate (KeyInfo/X509Data/X509Certificate), so "
            f"it cannot be verified{hint}"
        )
    certs = []
    for el in texts:
        try:
            der = base64.b64decode("".join((el.text or "").split()), validate=True)
            certs.append(x509.load_der_x509_certificate(der))
        except ValueError:
            raise _bad("an X509Certificate of the signature is not a certificate") from None
    return certs


def _signing_certificate(certs: list[x509.Certificate]) -> x509.Certificate:
    """The end of the chain X509Data carries (no order is implied by XML-DSig): the one
    certificate that issued none of the others; the first one when that is not clear-cut."""
    ends = [c for c in certs if not any(o is not c and o.issuer == c.subject for o in certs)]
    return ends[0] if len(ends) == 1 else certs[0]


def _describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def _check_leaf(leaf: x509.Certificate, when: datetime) -> None:
    """Validity and key usage of the signing certificate, with or without a trust store."""
    if when < leaf.not_valid_before_utc:
        raise _bad(
            f"the signing certificate ({_describe(leaf)}) is not valid before "
            f"{leaf.not_valid_before_utc:%Y-%m-%dT%H:%M:%SZ}"
        )
    if when > leaf.not_valid_after_utc:
        raise _bad(
            f"the signing certificate ({_describe(leaf)}) expired at "
            f"{leaf.not_valid_after_utc:%Y-%m-%dT%H:%M:%SZ}"
        )
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not (usage.digital_signature or usage.content_commitment):
        raise _bad(
            f"the signing certificate ({_describe(leaf)}) is not for signing: its key usage "
            "allows neither digitalSignature nor nonRepudiation"
        )


def _check_chain(
    leaf: x509.Certificate,
    intermediates: list[x509.Certificate],
    anchors: tuple[x509.Certificate, ...],
    when: datetime,
) -> None:
    # The leaf's own extensions were judged by _check_leaf (a signing certificate has no TLS
    # extended key usage to demand); CA certificates get cryptography's RFC 5280 profile.
    builder = (
        verification.PolicyBuilder()
        .store(verification.Store(list(anchors)))
        .time(when)
        .extension_policies(
            ee_policy=verification.ExtensionPolicy.permit_all(),
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
        )
    )
    try:
        builder.build_client_verifier().verify(leaf, intermediates)
    except verification.VerificationError as exc:
        raise _bad(
            f"the signing certificate ({_describe(leaf)}, issued by "
            f"{leaf.issuer.rfc4514_string()}) does not chain to the trust store: {_why(exc)}"
        ) from None


def _why(exc: Exception) -> str:
    text = " ".join(str(exc).split()).removeprefix("validation failed: ")
    if "not valid at validation time" in text:
        return "a certificate on its path is expired or not yet valid"
    if "candidates exhausted" in text:
        return "no trusted certificate issued it"
    return text[:200]


def _verify_integrity(root: etree._Element, leaf: x509.Certificate) -> None:
    """Check the digest and the signature value against the leaf's key, nothing else.

    signxml refuses a certificate outside its validity before it looks at the signature;
    asked at a moment inside that validity, it reports only integrity. Validity at the
    chosen time is judged afterwards (`_check_leaf`, `_check_chain`).
    """
    config = SignatureConfiguration(
        require_x509=True,
        location="./",  # a child of <alert>, as _the_signature made sure
        expect_references=1,
        signature_methods=_SIGNATURE_METHODS,
        digest_algorithms=_DIGESTS,
        verification_time=leaf.not_valid_before_utc,
        # XML-DSig turns a node-set into octets with Canonical XML 1.0 when no transform says.
        default_reference_c14n_method=CanonicalizationMethod.CANONICAL_XML_1_0,
    )
    try:
        result = XMLVerifier().verify(root, x509_cert=leaf, expect_config=config)
    except InvalidDigest:
        raise _bad("the digest does not match: the alert was changed after it was signed") from None
    except InvalidCertificate as exc:
        raise _bad(f"the signing certificate is not acceptable: {_short(exc)}") from None
    except InvalidSignature:
        raise _bad(
            "the signature value does not verify with the signing certificate's key: it was "
            "made by another key, or SignedInfo was altered"
        ) from None
    except etree.DocumentInvalid as exc:
        raise _bad(f"the signature is not valid XML-DSig: {_short(exc)}") from None
    except (SignXMLException, ValueError, etree.LxmlError) as exc:
        raise _bad(f"cannot verify the signature: {_short(exc)}") from None
    # Belt and braces: what was digested must be <alert> itself, not an element inside it.
    signed = result if isinstance(result, VerifyResult) else None
    if signed is None or signed.signed_xml is None or signed.signed_xml.tag != root.tag:
        raise _bad("the signature does not cover the whole alert")


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__
