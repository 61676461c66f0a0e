"""XML attacks are rejected cleanly: no entity expansion, no file or network access, bounded
depth."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from tests.ingest.helpers import FIXTURES, rejects
from warnbus.ingest import parse_alert, parse_cap
from warnbus.ingest.safexml import html_page_title

ALERT = (FIXTURES / "rainstorm-red.xml").read_text(encoding="utf-8")
DECL = '<?xml version="1.0" encoding="UTF-8"?>\n'

LAUGHS = (
    '<!DOCTYPE alert [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    + "]>\n"
)


def with_doctype(doctype: str, text: str = ALERT) -> bytes:
    return text.replace(DECL, DECL + doctype + "\n", 1).encode()


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            with_doctype(LAUGHS).replace(b"<event>", b"<event>&lol9;"), id="billion-laughs"
        ),
        pytest.param(
            with_doctype('<!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>').replace(
                b"<event>", b"<event>&x;"
            ),
            id="xxe-file",
        ),
        pytest.param(
            with_doctype('<!DOCTYPE alert [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>').replace(
                b"<event>", b"<event>&x;"
            ),
            id="xxe-network",
        ),
        pytest.param(
            with_doctype('<!DOCTYPE alert SYSTEM "http://127.0.0.1:9/cap.dtd">'), id="external-dtd"
        ),
        pytest.param(
            with_doctype('<!DOCTYPE alert [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]>'),
            id="parameter-entity",
        ),
        pytest.param(
            (DECL + '<!DOCTYPE alert SYSTEM "/etc/passwd">\n' + ALERT[len(DECL) :])
            .replace('encoding="UTF-8"', 'encoding="UTF-16"')
            .encode("utf-16"),
            id="doctype-utf16",
        ),
    ],
)
def test_dtds_are_rejected(body: bytes) -> None:
    err = rejects(lambda: parse_alert(body), "malformed", None)
    assert "DTD" in str(err)


def test_doctype_with_a_fifo_does_not_hang(tmp_path: Path) -> None:
    # libxml2 opens a DOCTYPE's SYSTEM file even with load_dtd=False; a FIFO would block it.
    fifo = tmp_path / "fifo.dtd"
    os.mkfifo(fifo)
    # The comment hides the DOCTYPE from the quick pre-scan, so this reaches libxml2.
    body = f'<!-- <a> --><!DOCTYPE alert SYSTEM "{fifo}">'.encode() + ALERT[len(DECL) :].encode()
    outcome: list[str] = []

    def run() -> None:
        try:
            parse_cap(body)
        except Exception as exc:  # recorded for the assertion below
            outcome.append(type(exc).__name__)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(5)
    if worker.is_alive():  # unblock the reader so the thread can end, then fail
        with open(fifo, "w"):
            pass
        pytest.fail("the parser blocked on a DOCTYPE's SYSTEM file")
    assert outcome == ["IngestError"]


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        pytest.param(
            ALERT.replace(
                "</alert>",
                '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd" '
                'parse="text"/></alert>',
            ).encode(),
            "malformed",
            None,
            id="xinclude-at-end",
        ),
        pytest.param(
            ALERT.replace(
                "<senderName>",
                '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd"/>'
                "<senderName>",
            ).encode(),
            "malformed",
            None,
            id="xinclude-in-info",
        ),
        pytest.param(
            ALERT.replace(
                "</alert>", "<x:a xmlns:x='urn:x'>" + "<b>" * 300 + "</b>" * 300 + "</x:a></alert>"
            ).encode(),
            "malformed",
            None,
            id="deeply-nested-extension",
        ),
        pytest.param(b"<alert>" * 100_000, "malformed", None, id="deeply-nested"),
        pytest.param(b"\x00\x01\x02<", "malformed", None, id="binary"),
        pytest.param(b"   \n\t ", "malformed", None, id="blank"),
    ],
)
def test_hostile_structures(body: bytes, code: str, field: str | None) -> None:
    rejects(lambda: parse_alert(body, "application/cap+xml"), code, field)


def test_rejections_are_fast() -> None:
    bodies = [
        with_doctype(LAUGHS).replace(b"<event>", b"<event>&lol9;"),
        b"<a>" * 1_000_000,
        b"<" + b"a" * 3_000_000 + b">",
    ]
    start = time.thread_time()  # CPU: a busy machine's wait for a CPU is not the parser's
    for body in bodies:
        rejects(lambda body=body: parse_alert(body, max_bytes=10_000_000), "malformed", None)
    assert time.thread_time() - start < 2.0


@pytest.mark.parametrize(
    ("body", "title"),
    [
        (
            b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head></html>",
            "502 Bad Gateway",
        ),
        (
            b"\n<html>\n<head>\n<title>\n  Service &amp; Unavailable </title>",
            "Service & Unavailable",
        ),
        (
            b'<?xml version="1.0"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN">'
            b'<html xmlns="http://www.w3.org/1999/xhtml"><body/></html>',
            "",
        ),
        (b"<HTML><TITLE>\xe7\xbd\x91\xe5\x85\xb3\xe9\x94\x99\xe8\xaf\xaf</TITLE>", "网关错误"),
        (ALERT.encode(), None),
        (b"<htmlish/>", None),
    ],
)
def test_html_pages_are_recognised(body: bytes, title: str | None) -> None:
    assert html_page_title(body) == title
    if title is not None:
        for content_type in ("text/xml", "application/json", None):
            err = rejects(lambda ct=content_type: parse_alert(body, ct), "malformed", None)
            assert "got an HTML page" in str(err)
