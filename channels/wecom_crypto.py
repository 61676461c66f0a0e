"""The WeCom callback protocol: WXBizMsgCrypt-compatible crypto, XML, card task ids.

- signature: sha1 over the sorted concatenation of (token, timestamp, nonce, encrypted), hex;
- body: AES-256-CBC with key = base64(EncodingAESKey + "="), IV = key[:16], PKCS#7 padding
  to a 32-byte block; plaintext = 16 random bytes + 4-byte big-endian length + message +
  receive id (the CorpID for an internal app), base64 on the wire.

Shared by the channel (which verifies and opens callbacks, and seals passive replies) and by
the simulator (which seals callbacks and opens replies), so both speak the same protocol.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import struct
import time
from collections.abc import Callable
from typing import NamedTuple

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from lxml import etree

from warnbus.plugin import AuthError, parse_xml_safely

BLOCK = 32  # WeCom pads to 32 bytes, not to the AES block size of 16
_AES_KEY_RE = re.compile(r"[A-Za-z0-9+/]{43}\Z")


def decode_aes_key(encoding_aes_key: str) -> bytes:
    """Return the 32-byte AES key of a 43-character EncodingAESKey; ValueError if malformed."""
    if not _AES_KEY_RE.match(encoding_aes_key):
        raise ValueError("must be 43 characters of [A-Za-z0-9+/]")
    key = base64.b64decode(encoding_aes_key + "=", validate=True)
    if len(key) != 32:  # cannot happen for 43 valid characters; kept as a guard
        raise ValueError("does not decode to a 32-byte key")
    return key


def cdata(text: str) -> str:
    """Wrap `text` in CDATA, splitting any `]]>` so the text cannot close the section."""
    return "<![CDATA[" + text.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def envelope(encrypted: str, signature: str, timestamp: str, nonce: str) -> str:
    """The XML a passive reply travels in (WeCom's reply format)."""
    return (f"<xml><Encrypt>{cdata(encrypted)}</Encrypt>"
            f"<MsgSignature>{cdata(signature)}</MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp><Nonce>{cdata(nonce)}</Nonce></xml>")


def callback_body(to_user: str, encrypted: str, agent_id: int | str) -> str:
    """The XML body of a callback POST from WeCom to the application."""
    return (f"<xml><ToUserName>{cdata(to_user)}</ToUserName>"
            f"<Encrypt>{cdata(encrypted)}</Encrypt><AgentID>{cdata(str(agent_id))}</AgentID></xml>")


class WeComCrypto:
    """Sign, verify, encrypt and decrypt WeCom callback messages for one app."""

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self._token = token
        self._key = decode_aes_key(encoding_aes_key)
        self._receive_id = receive_id.encode()

    def signature(self, timestamp: str, nonce: str, encrypted: str) -> str:
        parts = sorted([self._token, timestamp, nonce, encrypted])
        return hashlib.sha1("".join(parts).encode()).hexdigest()

    def verify(self, signature: str, timestamp: str, nonce: str, encrypted: str) -> None:
        """Raise AuthError unless `signature` signs (timestamp, nonce, encrypted)."""
        expected = self.signature(timestamp, nonce, encrypted)
        if not hmac.compare_digest(expected.encode(), signature.lower().encode()):
            raise AuthError("wecom: bad msg_signature", forbidden=True)

    def encrypt(self, message: bytes, *, random16: bytes | None = None) -> str:
        """Encrypt `message` for this app; `random16` fixes the random prefix (tests)."""
        prefix = os.urandom(16) if random16 is None else random16
        if len(prefix) != 16:
            raise ValueError("random16 must be 16 bytes")
        plain = prefix + struct.pack(">I", len(message)) + message + self._receive_id
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        enc = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).encryptor()
        return base64.b64encode(enc.update(plain) + enc.finalize()).decode("ascii")

    def decrypt(self, encrypted: str) -> bytes:
        """Decrypt a message and check its receive id; AuthError when anything is off.

        Call it only after `verify`: the signature is what authenticates the ciphertext, so
        no padding or format error here can be probed by someone without the token.
        """
        try:
            raw = base64.b64decode(encrypted, validate=True)
        except (binascii.Error, ValueError) as e:
            raise AuthError("wecom: Encrypt is not base64", forbidden=True) from e
        if not raw or len(raw) % BLOCK:
            raise AuthError("wecom: ciphertext length is not a multiple of 32", forbidden=True)
        dec = Cipher(algorithms.AES(self._key), modes.CBC(self._key[:16])).decryptor()
        plain = dec.update(raw) + dec.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise AuthError("wecom: bad padding (wrong EncodingAESKey?)", forbidden=True)
        body = plain[16:-pad]
        if len(body) < 4:
            raise AuthError("wecom: decrypted message is too short", forbidden=True)
        (length,) = struct.unpack(">I", body[:4])
        if 4 + length > len(body):
            raise AuthError("wecom: decrypted length field is out of range", forbidden=True)
        message, receive_id = body[4:4 + length], body[4 + length:]
        if not hmac.compare_digest(receive_id, self._receive_id):
            raise AuthError("wecom: message is for another receive id (CorpID)", forbidden=True)
        return message

    def open(self, signature: str, timestamp: str, nonce: str, encrypted: str) -> bytes:
        """Verify, then decrypt: the only way a callback should be read."""
        self.verify(signature, timestamp, nonce, encrypted)
        return self.decrypt(encrypted)

    def seal(self, message: bytes, timestamp: str, nonce: str) -> tuple[str, str]:
        """Encrypt and sign: (encrypted, msg_signature)."""
        encrypted = self.encrypt(message)
        return encrypted, self.signature(timestamp, nonce, encrypted)


def parse_xml(data: bytes) -> etree._Element:
    """Parse WeCom XML with DTDs, entities and external references refused; ValueError.

    The same hardened parser as the CAP reader (`plugin.parse_xml_safely`): one XML boundary
    for everything that comes from outside, and a third of defusedxml's time per callback."""
    try:
        root = parse_xml_safely(data)
    except ValueError as e:
        raise ValueError(f"unreadable XML: {e}") from e
    if root.tag != "xml":
        raise ValueError("root element is not <xml>")
    return root


def update_button_xml(user: str, corp_id: str, timestamp: str, replace_name: str) -> str:
    """Plaintext of the passive reply that replaces the clicked button's label for `user`."""
    return (f"<xml><ToUserName>{cdata(user)}</ToUserName>"
            f"<FromUserName>{cdata(corp_id)}</FromUserName><CreateTime>{timestamp}</CreateTime>"
            f"<MsgType>{cdata('update_button')}</MsgType>"
            f"<Button><ReplaceName>{cdata(replace_name)}</ReplaceName></Button></xml>")


class ReplayGuard:
    """Refuses callbacks signed outside a time window (resends of one inside it: the
    channel's `channels.once.Once`)."""

    def __init__(self, max_age_s: float, clock: Callable[[], float] = time.time) -> None:
        self.max_age_s = max_age_s
        self._clock = clock

    def check_time(self, timestamp: str) -> None:
        """AuthError unless `timestamp` (Unix seconds) is within the window of now."""
        try:
            at = int(timestamp)
        except ValueError as e:
            raise AuthError("wecom: timestamp is not a number", forbidden=True) from e
        if abs(self._clock() - at) > self.max_age_s:
            raise AuthError("wecom: timestamp outside the replay window", forbidden=True)


# --------------------------------------------------------------------------- card task ids

TASK_VERSION = "wb1"
TASK_ID_MAX = 128  # WeCom: task_id of [A-Za-z0-9_-@], at most 128 bytes, unique per app
_TASK_ID_RE = re.compile(r"[A-Za-z0-9_@-]{1,128}\Z")
_RAW_ID_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*\Z")


class TaskRef(NamedTuple):
    campaign_id: str
    delivery_id: str
    target_id: str
    tag: str


def _pack(value: str) -> str:
    # Ids of warnbus (cp_…, dl_…, p…) pass as they are; anything else goes base64url with a
    # leading "-", which a plain id cannot start with, so decoding is unambiguous.
    if _RAW_ID_RE.match(value):
        return value
    return "-" + base64.urlsafe_b64encode(value.encode()).decode().rstrip("=")


def _unpack(field: str) -> str:
    if field.startswith("-"):
        data = field[1:]
        try:
            return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode()
        except (binascii.Error, UnicodeDecodeError) as e:
            raise ValueError("bad base64 field") from e
    if not _RAW_ID_RE.match(field):
        raise ValueError("bad field")
    return field


def address_tag(corp_id: str, campaign_id: str, delivery_id: str, target_id: str,
                address: str) -> str:
    """12 characters binding the ids to the addressee's userid.

    Keyed with the corp id, not a secret: the callback crypto already proves WeCom sent the
    event; the tag only has to tell whether FromUserName is the person the card went to, and
    it must survive a rotation of the callback token while cards are outstanding. WeCom
    userids are case-insensitive, hence lower().
    """
    msg = "\x1f".join((TASK_VERSION, campaign_id, delivery_id, target_id, address.lower()))
    digest = hashlib.blake2b(msg.encode(), digest_size=9, key=corp_id.encode()[:64],
                             person=b"warnbus-wecom").digest()
    return base64.urlsafe_b64encode(digest).decode()


def encode_task_id(corp_id: str, campaign_id: str, delivery_id: str, target_id: str,
                   address: str) -> str:
    """`wb1@<campaign>@<delivery>@<target>@<tag>`; ValueError if over WeCom's 128 characters."""
    tag = address_tag(corp_id, campaign_id, delivery_id, target_id, address)
    task_id = "@".join((TASK_VERSION, _pack(campaign_id), _pack(delivery_id), _pack(target_id),
                        tag))
    if len(task_id) > TASK_ID_MAX:
        raise ValueError(f"the ids do not fit a {TASK_ID_MAX}-character task_id")
    return task_id


def decode_task_id(task_id: str) -> TaskRef:
    """Inverse of encode_task_id; ValueError for anything warnbus did not issue."""
    if not _TASK_ID_RE.match(task_id):
        raise ValueError("not a task_id")
    parts = task_id.split("@")
    if len(parts) != 5 or parts[0] != TASK_VERSION:
        raise ValueError("not a warnbus task_id")
    return TaskRef(_unpack(parts[1]), _unpack(parts[2]), _unpack(parts[3]), parts[4])


def sent_to(corp_id: str, ref: TaskRef, user: str) -> bool:
    """Whether the card of `ref` was sent to `user` (the FromUserName of its button event)."""
    tag = address_tag(corp_id, ref.campaign_id, ref.delivery_id, ref.target_id, user)
    return bool(user) and hmac.compare_digest(tag, ref.tag)
