"""Parse untrusted XML safely, and recognise the HTML error pages that feeds send instead.

No DTD is accepted (XXE, billion laughs, external DTDs), no entity is expanded, nothing is
loaded from the network or the file system, XInclude is never processed, and libxml2's own
limits (depth 256, 10 MB per text node) stay on. A ~800 KB polygon is well inside them.
"""

from __future__ import annotations

import html
import re
from typing import Any

from lxml import etree

from warnbus.errors import IngestError
from warnbus.ingest.checks import malformed

_BOM = b"\xef\xbb\xbf"
_HEAD = 8192  # bytes looked at for an HTML page or a DOCTYPE before parsing
_HTML_START = re.compile(
    r"\A\s*(?:<\?xml[^>]*>\s*)?(?:<!--.*?-->\s*)*<(?:!doctype\s+html|html[\s>/])", re.I | re.S
)
_TITLE = re.compile(rb"<title[^>]*>(.*?)</title\s*>", re.I | re.S)
_ELEMENT_START = re.compile(r"<[^!?]")

XINCLUDE_NS = frozenset({"http://www.w3.org/2001/XInclude", "http://www.w3.org/2003/XInclude"})


class _NoExternal(etree.Resolver):
    """Answer every external DTD/entity request with nothing.

    libxml2 opens a DOCTYPE's SYSTEM file even with load_dtd=False (a FIFO or /dev/zero
    would hang the parser); the resolver keeps it from touching the file system at all.
    """

    def resolve(self, system_url: str, public_id: str, context: Any = None) -> Any:
        return self.resolve_string("", context, base_url=None)


def _parser() -> etree.XMLParser:
    # A parser per call (a few microseconds): one parser must not serve two threads at once.
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
        remove_pis=True,
        collect_ids=False,
    )
    parser.resolvers.add(_NoExternal())
    return parser


def _head_text(body: bytes) -> str:
    """The first bytes as text, enough to read markup (UTF-16 aware, else ASCII-compatible)."""
    head = body[:_HEAD]
    if head.startswith((b"\xff\xfe", b"<\x00")):
        return head.decode("utf-16-le", "ignore")
    if head.startswith((b"\xfe\xff", b"\x00<")):
        return head.decode("utf-16-be", "ignore")
    return head.removeprefix(_BOM).decode("latin-1")


def html_page_title(body: bytes) -> str | None:
    """If the body is an HTML page (e.g. a proxy's 502), return its title ("" if none)."""
    if not _HTML_START.match(_head_text(body)):
        return None
    m = _TITLE.search(body, 0, 65536)
    if m is None:
        return ""
    title = " ".join(html.unescape(m.group(1).decode("utf-8", "replace")).split())
    return title[:120]


def html_error(expected: str, title: str) -> IngestError:
    return malformed(f"expected {expected}, got an HTML page: {title or '(no title)'}")


def parse_xml(body: bytes) -> etree._Element:
    """Parse a body into its root element, or raise IngestError("malformed")."""
    title = html_page_title(body)
    if title is not None:
        raise html_error("CAP XML", title)
    head = _head_text(body)
    first = _ELEMENT_START.search(head)
    if "<!DOCTYPE" in (head[: first.start()] if first else head):
        raise malformed("DTDs are not allowed")
    if not head.strip() and not body.strip():
        raise malformed("empty body")
    # Feeds written by scripts often start with a newline; libxml2 refuses whitespace before
    # the XML declaration, but nothing is lost by dropping it.
    bom = _BOM if body.startswith(_BOM) else b""
    if body[len(bom) : len(bom) + 1].isspace():
        body = bom + body[len(bom) :].lstrip()
    try:
        root = etree.fromstring(body, _parser())
    except (etree.LxmlError, ValueError) as exc:
        detail = getattr(exc, "msg", None) or str(exc)  # .msg lacks the "(<string>, line 1)" tail
        raise malformed(f"not well-formed XML: {' '.join(str(detail).split())}") from None
    docinfo = root.getroottree().docinfo
    # Backstop for encodings the head scan cannot read (UTF-32, EBCDIC, long prologs).
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise malformed("DTDs are not allowed")
    return root
