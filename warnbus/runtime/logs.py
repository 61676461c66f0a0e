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
import sys
from collections.abc import Callable, Mapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from warnbus.domain.models import mask_phone, mask_phones_in, mask_text
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


def mask_name(value: str) -> str:
    """Keep a person's first character: `张三` → `张*`, `张三丰` → `张**`."""
    value = value.strip()
    if len(value) <= 1:
        return "*" * len(value)
    return value[0] + "*" * (len(value) - 1)


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
