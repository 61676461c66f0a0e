"""Logging: structlog, one event per line, personal data masked (DESIGN section 11).

Callers bind `alert_id`, `campaign_id` and `delivery_id` with
`structlog.contextvars.bind_contextvars` at their boundary; every line then carries them.
Standard-library records (aiohttp, redis, apscheduler) go through the same renderer and
the same masking, so nothing reaches the output unmasked.

Masking is by key and by content. Use `channel=`, `township=` and the like for names
that are not a person's: a value under `name` is always treated as a person's name.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from warnbus.errors import ConfigError

__all__ = [
    "configure_logging",
    "mask_name",
    "mask_personal_data",
    "mask_phone",
    "mask_phones_in",
    "mask_text",
    "redact",
]

SECRET_MASK = "***"
PHONE_KEYS = frozenset(
    {"phone", "phone_number", "mobile", "msisdn", "to", "from", "from_", "address", "caller"}
)
NAME_KEYS = frozenset({"name", "person_name", "officer_name", "full_name"})
_SECRET_WORDS = ("token", "secret", "password", "passwd", "auth", "credential", "cookie", "key")
# Identifiers and bookkeeping about secrets, not secrets: `token_id` names which feed token
# was used, `redis_key` is a key name, `auth_scope` is what a token may do. A bare `key` is
# masked (it may be an API key): log Redis key names as `redis_key=`.
_HARMLESS_SUFFIXES = ("_id", "_ids", "_name", "_count", "_scope", "_ttl", "_expires_at")
_HARMLESS_KEYS = frozenset(
    {"author", "redis_key", "stream_key", "cache_key", "idempotency_key",
     "dedup_key", "routing_key", "sort_key", "partition_key"}
)  # fmt: skip

# Phone numbers inside free text. The lookarounds keep longer digit runs (region codes,
# timestamps, ids) intact.
_PHONE_RE = re.compile(
    r"(?<![\w+])\+[1-9](?:[ -]?\d){6,14}(?!\d)"  # E.164
    r"|(?<!\d)(?:86)?1[3-9]\d{9}(?!\d)"  # Chinese mobile
)
_CN_MSISDN = re.compile(r"861[3-9]\d{9}")
_PHONE_LIKE = re.compile(r"\+?[\d][\d ()-]{4,}\d")
# ITU country codes of one and two digits; every other code has three.
_CC1 = frozenset({"1", "7"})
_CC2_TEXT = (
    "20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 "
    "60 61 62 63 64 65 66 81 82 84 86 90 91 92 93 94 95 98"
)
_CC2 = frozenset(_CC2_TEXT.split())


def mask_phone(value: str) -> str:
    """Mask a phone number, keeping country code, first 3 and last 4 national digits.

    `+8613812345678` → `+86138****5678`, `13812345678` → `138****5678`. Numbers too short
    for that keep only their last 2 digits. Not a phone number at all → `mask_text`.
    """
    digits = re.sub(r"\D", "", value)
    if not _PHONE_LIKE.fullmatch(value.strip()) or len(digits) < 5:
        return mask_text(value)
    prefix = ""
    if value.strip().startswith("+"):
        cc_len = 1 if digits[:1] in _CC1 else 2 if digits[:2] in _CC2 else 3
        prefix, digits = "+" + digits[:cc_len], digits[cc_len:]
    elif _CN_MSISDN.fullmatch(digits):  # 86 and a mobile, as MSISDNs are written
        prefix, digits = "86", digits[2:]
    if len(digits) >= 8:
        return prefix + digits[:3] + "*" * (len(digits) - 7) + digits[-4:]
    return prefix + "*" * (len(digits) - 2) + digits[-2:]


def mask_name(value: str) -> str:
    """Keep a person's first character: `张三` → `张*`, `张三丰` → `张**`."""
    value = value.strip()
    if len(value) <= 1:
        return "*" * len(value)
    return value[0] + "*" * (len(value) - 1)


def mask_text(value: str) -> str:
    """Mask an address that is not a phone number (a WeCom user id, an e-mail): keep the ends."""
    if len(value) <= 2:
        return "*" * len(value)
    return value[0] + "*" * (len(value) - 2) + value[-1]


def mask_phones_in(text: str) -> str:
    """Mask every phone number found inside free text."""
    return _PHONE_RE.sub(lambda m: mask_phone(m.group(0)), text)


def _is_secret_key(key: str) -> bool:
    k = key.lower().replace("-", "_")
    if k in _HARMLESS_KEYS or k.endswith(_HARMLESS_SUFFIXES):
        return False
    return any(word in k for word in _SECRET_WORDS)


def _mask_value(key: str, value: Any) -> Any:
    k = key.lower().replace("-", "_")
    if _is_secret_key(k):
        return SECRET_MASK if value not in (None, "") else value
    if k in PHONE_KEYS:
        return _map_strings(value, mask_phone)
    if k in NAME_KEYS:
        return _map_strings(value, mask_name)
    return _scan(value)


def _map_strings(value: Any, fn: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return fn(str(value))
    if isinstance(value, list | tuple | set | frozenset):
        return [_map_strings(v, fn) for v in value]
    return _scan(value)


def _scan(value: Any) -> Any:
    """Mask by content: phones in strings, and by key inside nested mappings."""
    if isinstance(value, str):
        return mask_phones_in(value)
    if isinstance(value, Mapping):
        return redact(value)
    if isinstance(value, list | tuple):
        return [_scan(v) for v in value]
    return value


def redact(data: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of `data` with personal data and secrets masked, recursively."""
    return {key: _mask_value(str(key), value) for key, value in data.items()}


def mask_personal_data(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Structlog processor: `redact` every event."""
    return redact(event_dict)


_HANDLER_MARK = "_warnbus_handler"
_LEVELS = {"debug": 10, "info": 20, "warning": 30, "warn": 30, "error": 40, "critical": 50}


def configure_logging(
    *, json: bool | None = None, level: str = "info", stream: TextIO | None = None
) -> None:
    """Send structlog and standard-library logs to `stream` (stderr), one masked event a line.

    JSON lines (UTF-8, Chinese unescaped) unless `stream` is a terminal or `json=False`.
    Safe to call again: it replaces what an earlier call installed.
    """
    stream = stream if stream is not None else sys.stderr
    if json is None:
        json = not (hasattr(stream, "isatty") and stream.isatty())
    try:
        numeric = _LEVELS[level.lower()]
    except KeyError:
        raise ConfigError(f"log level {level!r} is not one of {', '.join(_LEVELS)}") from None

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.StackInfoRenderer(),
    ]
    renderer: Processor = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if json
        else structlog.dev.ConsoleRenderer()
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Tracebacks become text before masking: exception messages quote numbers too,
            # so the console loses its pretty tracebacks rather than show a phone number.
            structlog.processors.format_exc_info,
            mask_personal_data,
            renderer,
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(numeric)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        # Not cached: capture_logs in tests must reach loggers that modules created at import.
        cache_logger_on_first_use=False,
    )
