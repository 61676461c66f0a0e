"""Logging: masking of personal data and secrets, and the rendered JSON line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from warnbus.errors import ConfigError
from warnbus.runtime.logs import (
    configure_logging,
    mask_name,
    mask_personal_data,
    mask_phone,
    redact,
)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.contextvars.clear_contextvars()
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.mark.parametrize(
    ("raw", "masked"),
    [
        ("+8613812345678", "+86138****5678"),
        ("+86 138-1234-5678", "+86138****5678"),
        ("13812345678", "138****5678"),
        ("+14155550100", "+1415***0100"),
        ("+85291234567", "+852912*4567"),  # three-digit country code
        ("+8675512345678", "+86755****5678"),  # a landline
        ("+861234567", "+86*****67"),  # too short for 3 + 4: last 2 only
        ("8613812345678", "86138****5678"),  # an MSISDN: 86 without the +
        ("wecom_zhangsan", "w************n"),  # not a number: ends only
        ("", ""),
    ],
)
def test_mask_phone(raw: str, masked: str) -> None:
    assert mask_phone(raw) == masked


@pytest.mark.parametrize(
    ("raw", "masked"),
    [("张三", "张*"), ("张三丰", "张**"), ("欧阳娜娜", "欧***"), ("李", "*"), ("", "")],
)
def test_mask_name(raw: str, masked: str) -> None:
    assert mask_name(raw) == masked


@pytest.mark.parametrize(
    ("key", "value", "masked"),
    [
        ("phone", "+8613812345678", "+86138****5678"),
        ("to", ["13812345678", "+8613912345678"], ["138****5678", "+86139****5678"]),
        ("from_", 13812345678, "138****5678"),
        ("msisdn", "8613812345678", "86138****5678"),
        ("person_name", "王小明", "王**"),
        ("api_key", "sk-123", "***"),
        ("key", "sk-123", "***"),  # may be an API key: masked
        ("Authorization", "Bearer abc", "***"),
        ("encoding_aes_key", "x" * 43, "***"),
        ("webhook_secret", "s", "***"),
        ("password", None, None),  # nothing to hide, and saying so helps debugging
        ("token_id", "feed-cma", "feed-cma"),  # which token, not the token
        ("redis_key", "wb:{c1}:acks", "wb:{c1}:acks"),
        ("author", "值班员", "值班员"),
        ("area_code", "430623101000", "430623101000"),  # long digit runs are not phones
        ("identifier", "43062341600000_20240601120000", "43062341600000_20240601120000"),
        ("body", "回复1 from 13812345678.", "回复1 from 138****5678."),
        ("body", "MSISDN 8613812345678", "MSISDN 86138****5678"),
        (
            "officer",
            {"name": "赵六", "phone": "13812345678"},
            {"name": "赵*", "phone": "138****5678"},
        ),
    ],
)
def test_redact(key: str, value: Any, masked: Any) -> None:
    assert redact({key: value}) == {key: masked}


def test_capture_logs_sees_masked_events_with_context() -> None:
    log = structlog.get_logger("warnbus.test")
    structlog.contextvars.bind_contextvars(alert_id="a-1", delivery_id="d-9")
    with capture_logs(
        processors=[structlog.contextvars.merge_contextvars, mask_personal_data]
    ) as entries:
        log.info("attempt", to="+8613812345678", name="张三", outcome="accepted")
    assert entries == [
        {
            "event": "attempt",
            "log_level": "info",
            "alert_id": "a-1",
            "delivery_id": "d-9",
            "to": "+86138****5678",
            "name": "张*",
            "outcome": "accepted",
        }
    ]


def test_json_line_is_utf8_unescaped_masked_and_carries_context() -> None:
    buf = io.StringIO()
    configure_logging(json=True, level="info", stream=buf)
    structlog.contextvars.bind_contextvars(campaign_id="c-42")
    structlog.get_logger("warnbus.dispatch").info(
        "短信已发送给 13812345678", to="+8613812345678", name="张三丰", api_key="sk-1"
    )
    structlog.get_logger("warnbus.dispatch").debug("hidden at info level")
    logging.getLogger("aiohttp.access").info("POST /sms/inbound From=%s", "+8613912345678")

    lines = buf.getvalue().splitlines()
    assert len(lines) == 2
    assert "张**" in lines[0] and "短信已发送给" in lines[0]  # not \\u-escaped
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "短信已发送给 138****5678"
    assert first["to"] == "+86138****5678" and first["api_key"] == "***"
    assert first["campaign_id"] == "c-42" and first["level"] == "info"
    assert first["logger"] == "warnbus.dispatch" and first["timestamp"].endswith("Z")
    # a standard-library record gets the same treatment
    assert second["event"] == "POST /sms/inbound From=+86139****5678"
    assert second["campaign_id"] == "c-42" and second["logger"] == "aiohttp.access"


def test_json_exception_is_rendered_and_masked() -> None:
    buf = io.StringIO()
    configure_logging(json=True, stream=buf)
    try:
        raise RuntimeError("provider rejected 13812345678")
    except RuntimeError:
        structlog.get_logger().exception("send failed")
    event = json.loads(buf.getvalue())
    assert "RuntimeError: provider rejected 138****5678" in event["exception"]


def test_console_renderer_on_request() -> None:
    buf = io.StringIO()
    configure_logging(json=False, stream=buf)
    structlog.get_logger().warning("no ack", phone="13812345678")
    try:
        raise RuntimeError("13912345678 is busy")
    except RuntimeError:
        structlog.get_logger().exception("send failed")
    out = buf.getvalue()
    assert "138****5678" in out and "13812345678" not in out
    assert "RuntimeError: 139****5678 is busy" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_configure_twice_keeps_one_handler() -> None:
    before = len(logging.getLogger().handlers)
    configure_logging(stream=io.StringIO())
    configure_logging(stream=io.StringIO())
    assert len(logging.getLogger().handlers) == before + 1


def test_unknown_level_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="log level 'loud'"):
        configure_logging(level="loud")
