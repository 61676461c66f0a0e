"""The feed of the `hostile` scenario: an Atom index whose entries are the largest signed CAP
a feed may serve, on 127.0.0.1 in the benchmark's process.

The engine polls it as one of its configured feeds (`signature = "require"`, the run's CA
as its trust store) every second; a load publishes entries and is over once the engine has
accepted them. The PKI is made for the run and thrown away with it: a CA and a signing
certificate under it (RSA 2048, valid for a day).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from lxml import etree
from redis.asyncio import Redis
from signxml.algorithms import CanonicalizationMethod
from signxml.signer import XMLSigner

from warnbus.ingest import parse_cap
from warnbus.runtime.services import free_port
from warnbus.state.store import Store
from warnbus.tools.bench.alerts import SENDER
from warnbus.tools.bench.env import BenchError

NAME = "hostile"
#: The most a feed serves per CAP file by default (FeedSettings.max_bytes).
FEED_MAX_BODY = 8 * 1024 * 1024


class HostileFeed:
    """An Atom feed of signed CAP entries, served while the scenario runs."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.ca_file = tmp / "hostile-feed-ca.pem"
        self._entries: list[tuple[str, bytes]] = []  # (entry id, signed CAP), oldest first
        self._ca_key, self._ca = _issue("warnbus bench feed CA", None)
        self._key, self._cert = _issue("warnbus bench met bureau", (self._ca_key, self._ca))
        self.ca_file.write_bytes(self._ca.public_bytes(serialization.Encoding.PEM))
        self._runner: web.AppRunner | None = None

    def settings(self) -> dict[str, Any]:
        """The engine's `[[feeds]]` table for this feed."""
        return {"name": NAME, "url": f"{self.base}/feed.atom", "interval_s": 1.0,
                "senders": [SENDER], "allow_private": True, "signature": "require",
                "trust": [str(self.ca_file)], "max_bytes": FEED_MAX_BODY}

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/feed.atom", self._index)
        app.router.add_get("/cap/{n}.xml", self._cap)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def sign(self, body: bytes) -> bytes:
        """`body` (CAP XML) with an enveloped XML signature by the run's signing key."""
        signer = XMLSigner(c14n_algorithm=CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0)
        signed = signer.sign(etree.fromstring(body), key=self._key, cert=[self._cert, self._ca])
        out: bytes = etree.tostring(signed, xml_declaration=True, encoding="UTF-8")
        return out

    def publish(self, bodies: list[bytes]) -> None:
        """Add signed CAP files to the index (the newest entries of the feed)."""
        for body in bodies:
            self._entries.append((f"urn:bench:{len(self._entries)}:{time.time_ns()}", body))

    async def accepted(self, redis: Redis, bodies: list[bytes], timeout_s: float) -> int:
        """Wait until the engine has accepted the alerts of `bodies`; return how many."""
        ids = [parse_cap(b, max_bytes=len(b)).alert_id for b in bodies]
        store = Store(redis)
        deadline = time.monotonic() + timeout_s
        while True:
            done = 0
            for aid in ids:
                done += 1 if await store.campaign_of(aid) else 0
            if done == len(ids):
                return done
            if time.monotonic() > deadline:
                raise BenchError(f"the engine accepted {done} of {len(ids)} feed entries "
                                 f"within {timeout_s:.0f}s (see its log)")
            await asyncio.sleep(0.1)

    async def _index(self, request: web.Request) -> web.Response:
        entries = "".join(
            f'<entry><id>{eid}</id><title>t</title><link rel="alternate" '
            f'type="application/cap+xml" href="{self.base}/cap/{n}.xml"/></entry>'
            for n, (eid, _) in reversed(list(enumerate(self._entries))))
        body = ('<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
                f"<id>urn:bench:hostile</id><title>hostile</title>{entries}</feed>")
        return web.Response(body=body.encode(), content_type="application/atom+xml")

    async def _cap(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        if not 0 <= n < len(self._entries):
            raise web.HTTPNotFound()
        return web.Response(body=self._entries[n][1], content_type="application/cap+xml")


def _issue(cn: str, issuer: tuple[rsa.RSAPrivateKey, x509.Certificate] | None
           ) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A key and its certificate: a CA's (self-signed) or one issued by `issuer`."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    ca = issuer is None
    issuer_key, issuer_name = (key, name) if issuer is None else (issuer[0], issuer[1].subject)
    usage = {k: False for k in ("digital_signature", "content_commitment", "key_encipherment",
                                "data_encipherment", "key_agreement", "key_cert_sign",
                                "crl_sign", "encipher_only", "decipher_only")}
    usage.update({"key_cert_sign": ca, "crl_sign": ca, "digital_signature": not ca})
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(**usage), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer_key.public_key()), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    return key, cert
