"""A throwaway PKI and an XML-DSig signer for the signature tests. Every key here is test-only."""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.signer import XMLSigner

DS = "{http://www.w3.org/2000/09/xmldsig#}"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
C14N_10 = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315"
NOW = datetime.now(UTC)


@dataclass(frozen=True)
class Identity:
    """A private key and the certificate issued for it."""

    key: rsa.RSAPrivateKey
    cert: x509.Certificate

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return private_pem(self.key)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM: test keys only."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def new_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def issue(
    cn: str,
    *,
    issuer: Identity | None = None,
    ca: bool = False,
    key: rsa.RSAPrivateKey | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    serial: int | None = None,
    signing_usage: bool = True,
) -> Identity:
    """A certificate for `cn`, self-signed unless `issuer` is given (RFC 5280 extensions)."""
    key = key or new_key()
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "warnbus test PKI (test only)"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )
    issuer_key = issuer.key if issuer else key
    usage = dict.fromkeys(
        (
            "digital_signature",
            "content_commitment",
            "key_encipherment",
            "data_encipherment",
            "key_agreement",
            "key_cert_sign",
            "crl_sign",
            "encipher_only",
            "decipher_only",
        ),
        False,
    )
    if ca:
        usage.update(key_cert_sign=True, crl_sign=True)
    elif signing_usage:
        usage.update(digital_signature=True, content_commitment=True)
    else:
        usage.update(key_encipherment=True)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.cert.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(serial or x509.random_serial_number())
        .not_valid_before(not_before or NOW - timedelta(days=1))
        .not_valid_after(not_after or NOW + timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    return Identity(key, builder.sign(issuer_key, hashes.SHA256()))


class _Signer(XMLSigner):
    """signxml refuses SHA-1 for new signatures; met services still send them, so tests make
    some."""

    def check_deprecated_methods(self) -> None:
        return None


def sign(
    body: bytes,
    signer: Identity,
    chain: Sequence[x509.Certificate] = (),
    *,
    method: str = "rsa-sha256",
    digest: str = "sha256",
    c14n: str = EXC_C14N,
    reference_uri: str | None = None,
    leaf_first: bool = True,
) -> bytes:
    """`body` with an enveloped signature appended to its root, the certificates in KeyInfo
    (the signer's first, unless `leaf_first` is False: XML-DSig implies no order)."""
    root = etree.fromstring(body)
    certs = [signer.cert, *chain] if leaf_first else [*chain, signer.cert]
    signed = _Signer(signature_algorithm=method, digest_algorithm=digest, c14n_algorithm=c14n).sign(
        root, key=signer.key, cert=certs, reference_uri=reference_uri
    )
    return etree.tostring(signed, xml_declaration=True, encoding="UTF-8")


def resign(signed: bytes, key: rsa.RSAPrivateKey, edit: Callable[[etree._Element], None]) -> bytes:
    """Apply `edit` to a document signed with exclusive c14n and RSA-SHA256, then sign its
    SignedInfo again: the SignatureValue is good for whatever SignedInfo now says."""
    root = etree.fromstring(signed)
    edit(root)
    signed_info = root.find(f"{DS}Signature/{DS}SignedInfo")
    assert signed_info is not None
    octets = etree.tostring(signed_info, method="c14n", exclusive=True)
    value = key.sign(octets, padding.PKCS1v15(), hashes.SHA256())
    signature_value = root.find(f"{DS}Signature/{DS}SignatureValue")
    assert signature_value is not None
    signature_value.text = base64.b64encode(value).decode()
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")
