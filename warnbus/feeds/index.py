"""Read Atom and RSS 2.0 index feeds of CAP messages into entries. Pure, no I/O.

The XML goes through `ingest.safexml.parse_xml` (no DTD, no entities, no network, HTML error
pages recognised), so a hostile feed is as harmless here as a hostile CAP body.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime
from itertools import islice
from urllib.parse import urljoin, urlsplit

from lxml import etree

from warnbus.feeds.errors import FeedError
from warnbus.ingest.cap import NAMESPACES as CAP_NAMESPACES
from warnbus.ingest.safexml import parse_xml

ATOM = "http://www.w3.org/2005/Atom"
_A = "{" + ATOM + "}"
CAP_MEDIA = "application/cap+xml"
_XML_MEDIA = ("application/xml", "text/xml")
MAX_ENTRIES = 500  # entries read from one index; a larger feed is read newest-first


@dataclass(frozen=True)
class Entry:
    """One entry of an index: where its CAP is (a link) or the CAP itself (embedded)."""

    id: str
    link: str | None = None
    cap: bytes | None = None
    when: datetime | None = None

    @property
    def key(self) -> str:
        """What 'seen' means: the same entry id pointing at the same CAP (link or content).

        A feed that keeps an entry id but points it at a new message gets it fetched again;
        `updated` is left out on purpose, as some feeds restamp every entry on each build.
        """
        what = self.link or hashlib.sha256(self.cap or b"").hexdigest()
        return hashlib.blake2b(f"{self.id}\n{what}".encode(), digest_size=16).hexdigest()


def parse_index(body: bytes, base_url: str) -> list[Entry]:
    """Parse an Atom or RSS 2.0 index; entries come oldest first (the order to accept them in).

    Raises IngestError("malformed") for what is not XML (HTML error pages included) and
    FeedError for XML that is not a feed.
    """
    root = parse_xml(body)
    tag = root.tag if isinstance(root.tag, str) else ""
    # The first MAX_ENTRIES only: listing all of a hostile index's 100,000 entries (one C
    # call, in the thread that holds the GIL) cost ~20 ms.
    if tag == _A + "feed":
        items = list(islice(root.iterfind(_A + "entry"), MAX_ENTRIES))
        read = _atom_entry
    elif tag == "rss" and (channel := root.find("channel")) is not None:
        items = list(islice(channel.iterfind("item"), MAX_ENTRIES))
        read = _rss_item
    else:
        local = etree.QName(root).localname if tag else "?"
        # The root's name is the upstream's: only named when it is one we know.
        got = " (got a CAP <alert>: set kind = \"cap\" for a single CAP message)" if (
            local == "alert") else ""
        raise FeedError(f"expected an Atom <feed> or RSS <rss><channel>{got}")
    entries = [e for el in items if (e := read(el, base_url)) is not None]
    return _oldest_first(entries)


def _oldest_first(entries: list[Entry]) -> list[Entry]:
    # Feeds list newest first by convention; timestamps decide when every entry has one, so
    # an Alert is accepted before the Update or Cancel that references it.
    entries.reverse()
    if entries and all(e.when is not None for e in entries):
        entries.sort(key=lambda e: e.when.timestamp() if e.when else 0.0)
    return entries


def _text(el: etree._Element | None) -> str:
    return (el.text or "").strip() if el is not None else ""


def _when(text: str) -> datetime | None:
    if not text:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        try:
            value = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
    return value if value.tzinfo is not None else None


def _url(base: str, href: str) -> str | None:
    """Resolve a link against the feed's URL; only http(s) is ever fetched."""
    if not href:
        return None
    url = urljoin(base, href.strip())
    return url if urlsplit(url).scheme in ("http", "https") else None


def _embedded(content: etree._Element) -> bytes | None:
    """A CAP <alert> inside Atom <content>, as an element or as escaped XML text."""
    for child in content:
        if isinstance(child.tag, str) and etree.QName(child).namespace in CAP_NAMESPACES:
            return etree.tostring(child, encoding="UTF-8", xml_declaration=True)
    ctype = (content.get("type") or "").lower()
    text = (content.text or "").strip()
    if text.startswith("<") and (ctype == CAP_MEDIA or ctype in _XML_MEDIA):
        return text.encode("utf-8")
    return None


def _atom_entry(el: etree._Element, base: str) -> Entry | None:
    links = [(ln.get("type") or "", ln.get("rel") or "alternate", ln.get("href") or "")
             for ln in el.findall(_A + "link")]
    content = el.find(_A + "content")
    cap = _embedded(content) if content is not None else None
    link = None
    if cap is None:
        candidates = [h for t, _r, h in links if t.lower() == CAP_MEDIA]
        candidates += [h for t, _r, h in links if t.lower() in _XML_MEDIA]
        if content is not None and content.get("src"):
            candidates.append(content.get("src") or "")
        candidates += [h for t, r, h in links if not t and r == "alternate"]
        link = next((u for h in candidates if (u := _url(base, h))), None)
        if link is None:
            return None
    entry_id = _text(el.find(_A + "id")) or link or ""
    when = _when(_text(el.find(_A + "updated")) or _text(el.find(_A + "published")))
    return Entry(entry_id, link, cap, when)


def _rss_item(el: etree._Element, base: str) -> Entry | None:
    hrefs = [enc.get("url") or "" for enc in el.findall("enclosure")
             if (enc.get("type") or "").lower() == CAP_MEDIA]
    hrefs.append(_text(el.find("link")))
    link = next((u for h in hrefs if (u := _url(base, h))), None)
    if link is None:
        return None
    return Entry(_text(el.find("guid")) or link, link, None, _when(_text(el.find("pubDate"))))
