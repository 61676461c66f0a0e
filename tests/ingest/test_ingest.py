"""parse_alert: dispatch on content type, sniffing, size limit."""

from __future__ import annotations

import pytest

from tests.ingest.helpers import FIXTURES, rejects
from warnbus.ingest import DEFAULT_MAX_BODY, parse_alert

XML = (FIXTURES / "rainstorm-red.xml").read_bytes()
JSON = (FIXTURES / "rainstorm-red.json").read_bytes()


@pytest.mark.parametrize(
    "content_type",
    ["application/cap+xml", "application/xml", "text/xml", "Text/XML; charset=utf-8", None],
)
def test_cap_content_types(content_type: str | None) -> None:
    assert parse_alert(XML, content_type).cap_version == "1.2"


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json;charset=UTF-8", None]
)
def test_json_content_types(content_type: str | None) -> None:
    assert parse_alert(JSON, content_type).cap_version == "json"


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "", "json"]
)
def test_unsupported_content_types(content_type: str) -> None:
    rejects(lambda: parse_alert(XML, content_type), "unsupported_type", None)


@pytest.mark.parametrize(
    "body",
    [
        b"\xef\xbb\xbf" + XML,
        b" \r\n\t" + XML,
        b"\xef\xbb\xbf\n  " + JSON,
        XML.decode().replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"),
    ],
)
def test_sniffing(body: bytes) -> None:
    parse_alert(body)


@pytest.mark.parametrize("body", [b"", b"   ", b"\xef\xbb\xbf", b"hello", b"\x00\x00"])
def test_sniffing_rejects(body: bytes) -> None:
    rejects(lambda: parse_alert(body), "malformed", None)


def test_wrong_content_type_for_the_body() -> None:
    rejects(lambda: parse_alert(XML, "application/json"), "malformed", None)
    rejects(lambda: parse_alert(JSON, "application/cap+xml"), "malformed", None)


@pytest.mark.parametrize("content_type", ["application/cap+xml", "application/json", None])
def test_too_large(content_type: str | None) -> None:
    body = JSON if content_type == "application/json" else XML
    rejects(lambda: parse_alert(body, content_type, max_bytes=100), "too_large", None)
    padded = body + b" " * (DEFAULT_MAX_BODY - len(body) + 1)
    rejects(lambda: parse_alert(padded, content_type), "too_large", None)
    assert parse_alert(body[:-1] + b" " * (DEFAULT_MAX_BODY - len(body) + 1), content_type)
