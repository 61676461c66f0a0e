"""CAP 1.0/1.1/1.2 XML to Alert, strictly: element order, cardinality and values per version.

Each version's schema is written below as data ("name", "name?", "name*", "name+" in schema
order). One reader walks an element's children against those slots, so a missing, unknown,
repeated or out-of-order element is reported with its path; values are converted on the way,
then the shared semantic checks (`checks.check_alert`) run on the result.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from lxml import etree

from warnbus.domain.models import Alert, Area, Info, Resource
from warnbus.ingest.capvalues import integer, number, parse_circle, parse_points, parse_references
from warnbus.ingest.checks import (
    DEFAULT_MAX_AREA_ENTRIES,
    DEFAULT_MAX_AREAS,
    DEFAULT_MAX_BODY,
    MSG_TYPES,
    RULES,
    SEVERITIES,
    URGENCIES,
    E,
    check_alert,
    check_area_counts,
    check_size,
    invalid,
    malformed,
    parse_datetime,
    pick,
    show,
)
from warnbus.ingest.limits import (
    COUNT_LIMITS,
    MAX_EXTENSIONS,
    check_count,
    check_limits,
    check_ring_points,
    too_many,
)
from warnbus.ingest.safexml import XINCLUDE_NS, html_error, html_page_title, parse_xml

NAMESPACES = {
    "http://www.incident.com/cap/1.0": "1.0",
    "urn:oasis:names:tc:emergency:cap:1.1": "1.1",
    "urn:oasis:names:tc:emergency:cap:1.2": "1.2",
}

Slot = tuple[str, int, int]  # element name, minOccurs, maxOccurs
_CARDINALITY = {"": (1, 1), "?": (0, 1), "*": (0, sys.maxsize), "+": (1, sys.maxsize)}


def _slots(spec: str) -> tuple[Slot, ...]:
    out = []
    for word in spec.split():
        name = word.rstrip("?*+")
        low, high = _CARDINALITY[word[len(name) :]]
        out.append((name, low, high))
    return tuple(out)


# From the OASIS schemas. Scope is required in every version: the 1.0 schema marks it optional
# but the 1.0 data dictionary (and our model) require it. 1.0's <password> stands after <sender>
# in its data dictionary but after <msgType> in its schema: it is accepted once, wherever it
# stands in <alert>, and dropped.
_ALERT = _slots(
    "identifier sender sent status msgType source? scope restriction? addresses? code* note? "
    "references? incidents? info*"
)
_INFO_TAIL = (
    "urgency severity certainty audience? eventCode* effective? onset? expires? senderName? "
    "headline? description? instruction? web? contact? parameter* resource* area*"
)
_AREA = _slots("areaDesc polygon* circle* geocode* altitude? ceiling?")
_PAIR = _slots("valueName value")


@dataclass(frozen=True, slots=True)
class _Schema:
    info: tuple[Slot, ...]
    resource: tuple[Slot, ...]
    pairs_as_text: bool  # CAP 1.0 writes eventCode/parameter/geocode as "valueName=value"


_SCHEMAS = {
    "1.0": _Schema(
        _slots("language? category+ event " + _INFO_TAIL),
        _slots("resourceDesc mimeType? size? uri? digest?"),
        pairs_as_text=True,
    ),
    "1.1": _Schema(
        _slots("language? category+ event responseType* " + _INFO_TAIL),
        _slots("resourceDesc mimeType? size? uri? derefUri? digest?"),
        pairs_as_text=False,
    ),
    "1.2": _Schema(
        _slots("language? category+ event responseType* " + _INFO_TAIL),
        _slots("resourceDesc mimeType size? uri? derefUri? digest?"),
        pairs_as_text=False,
    ),
}


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


# ----------------------------------------------------------------------------- reader

Groups = dict[str, list[etree._Element]]


class _Reader:
    """Reads one CAP document of a known version into model records."""

    def __init__(self, ns: str, version: str) -> None:
        self.q = "{" + ns + "}"
        self.version = version
        self.rules = RULES[version]
        self.schema = _SCHEMAS[version]

    # -- structure

    def children(
        self,
        el: etree._Element,
        slots: tuple[Slot, ...],
        path: str,
        *,
        extensions: bool = False,
        skip: frozenset[str] = frozenset(),
    ) -> Groups:
        """Group an element's children by name, enforcing the order and cardinality of `slots`.

        With `extensions`, elements of non-CAP namespaces may end the element (an enveloped
        XML-DSig <Signature>, as real feeds carry); they are accepted and not interpreted.
        """
        parent = _split(el.tag)[1]
        index = {name: i for i, (name, _, _) in enumerate(slots)}
        where = path or parent
        self._no_text(el.text, where)
        groups: Groups = {}
        pos = 0
        extras = 0
        # One child at a time, never a list of them all: a repeated element is refused at the
        # first one over its limit, so an element with 100,000 children costs ~limit of them.
        for child in el:
            if not isinstance(child.tag, str):
                continue
            self._no_text(child.tail, where)
            ns, local = _split(child.tag)
            field = _join(path, local)
            if not child.tag.startswith(self.q):
                if ns in XINCLUDE_NS:
                    raise malformed("XInclude is not allowed")
                if not (extensions and ns and ns not in NAMESPACES):
                    where_ns = f"namespace {ns!r}" if ns else "no namespace"
                    raise invalid(field, f"<{local}> ({where_ns}) is not allowed in CAP <{parent}>")
                extras += 1
                if extras > MAX_EXTENSIONS:  # count them all, in C
                    n = el.xpath("count(*[namespace-uri() != $ns])", ns=self.q[1:-1])
                    assert isinstance(n, float)
                    raise too_many(where, "extension elements", int(n), MAX_EXTENSIONS)
                continue
            if extras:
                raise invalid(field, f"<{local}> must come before the extension elements")
            if local in skip:
                groups.setdefault(local, []).append(child)
                if len(groups[local]) > 1:
                    raise invalid(field, f"<{local}> may appear only once")
                continue
            j = index.get(local)
            if j is None:
                raise invalid(
                    field, f"<{local}> is not an element of CAP {self.version} <{parent}>"
                )
            if j < pos:
                raise invalid(
                    field, f"<{local}> is out of order: it must come before <{slots[pos][0]}>"
                )
            self._required(slots[pos:j], groups, path, child, local)
            found = groups.setdefault(local, [])
            if len(found) >= slots[j][2]:
                raise invalid(field, f"<{local}> may appear only once in <{parent}>")
            if len(found) == COUNT_LIMITS.get(local, -1):  # one over: count them all, in C
                n = el.xpath(f"count(c:{local})", namespaces={"c": self.q[1:-1]})
                assert isinstance(n, float)
                check_count(local, int(n), field)
            found.append(child)
            pos = j
        self._required(slots[pos:], groups, path, None, None)
        return groups

    def _required(
        self,
        slots: tuple[Slot, ...],
        groups: Groups,
        path: str,
        at: etree._Element | None,
        before: str | None,
    ) -> None:
        """Refuse a required slot left empty before `at` (named `before`), or at the end."""
        for name, low, _ in slots:
            if len(groups.get(name, ())) < low:
                field = _join(path, name)
                if at is not None and any(c.tag == self.q + name for c in at.itersiblings()):
                    raise invalid(
                        field, f"<{name}> is out of order: it must come before <{before}>"
                    )
                raise invalid(field, f"required element <{name}> is missing")

    @staticmethod
    def _no_text(text: str | None, field: str) -> None:
        if text and not text.isspace():
            raise invalid(field, f"unexpected text {show(text)} between elements")

    # -- leaves

    @staticmethod
    def text(el: etree._Element, field: str) -> str:
        if len(el):
            raise invalid(field, "must hold text, not elements")
        return (el.text or "").strip()

    def one(self, g: Groups, name: str, path: str) -> str | None:
        """The text of an element that occurs at most once, or None when absent."""
        found = g.get(name)
        return self.text(found[0], _join(path, name)) if found else None

    def req(self, g: Groups, name: str, path: str) -> str:
        return self.text(g[name][0], _join(path, name))  # presence enforced by its slot

    def opt(self, g: Groups, name: str, path: str) -> str | None:
        """Optional free text: absent or empty is None."""
        return self.one(g, name, path) or None

    def time(self, g: Groups, name: str, path: str) -> datetime | None:
        text = self.one(g, name, path)
        return None if text is None else parse_datetime(text, self.rules, _join(path, name))

    def enums(self, g: Groups, name: str, path: str, allowed: Mapping[str, E]) -> tuple[E, ...]:
        out = []
        for i, el in enumerate(g.get(name, ())):
            field = f"{path}.{name}[{i}]"
            out.append(pick(self.text(el, field), allowed, field, self.version))
        return tuple(out)

    def pairs(self, g: Groups, name: str, path: str) -> tuple[tuple[str, str], ...]:
        out = []
        for i, el in enumerate(g.get(name, ())):
            field = f"{path}.{name}[{i}]"
            if self.schema.pairs_as_text:
                text = self.text(el, field)
                key, sep, value = text.partition("=")
                if not sep:
                    raise invalid(field, f"{show(text)} is not valueName=value (CAP 1.0)")
                out.append((key.strip(), value.strip()))
            else:
                pg = self.children(el, _PAIR, field)
                out.append((self.req(pg, "valueName", field), self.req(pg, "value", field)))
        return tuple(out)

    # -- records

    def alert(self, root: etree._Element) -> Alert:
        r, v = self.rules, self.version
        skip = frozenset({"password"}) if v == "1.0" else frozenset()
        g = self.children(root, _ALERT, "", extensions=True, skip=skip)
        references = self.opt(g, "references", "")
        if references:  # entries are counted before they are split (each has two commas)
            check_count("references", references.count(",") // 2, "references")
        return Alert(
            identifier=self.req(g, "identifier", ""),
            sender=self.req(g, "sender", ""),
            sent=parse_datetime(self.req(g, "sent", ""), r, "sent"),
            status=pick(self.req(g, "status", ""), r.statuses, "status", v),
            msg_type=pick(self.req(g, "msgType", ""), MSG_TYPES, "msgType", v),
            scope=pick(self.req(g, "scope", ""), r.scopes, "scope", v),
            source=self.opt(g, "source", ""),
            restriction=self.opt(g, "restriction", ""),
            addresses=self.opt(g, "addresses", ""),
            codes=tuple(self.text(el, f"code[{i}]") for i, el in enumerate(g.get("code", ()))),
            note=self.opt(g, "note", ""),
            references=parse_references(references) if references else (),
            incidents=self.opt(g, "incidents", ""),
            infos=tuple(self.info(el, f"info[{i}]") for i, el in enumerate(g.get("info", ()))),
            cap_version=v,
        )

    def info(self, el: etree._Element, path: str) -> Info:
        r, v = self.rules, self.version
        g = self.children(el, self.schema.info, path)
        return Info(
            categories=self.enums(g, "category", path, r.categories),
            event=self.req(g, "event", path),
            urgency=pick(self.req(g, "urgency", path), URGENCIES, f"{path}.urgency", v),
            severity=pick(self.req(g, "severity", path), SEVERITIES, f"{path}.severity", v),
            certainty=pick(self.req(g, "certainty", path), r.certainties, f"{path}.certainty", v),
            language=self.one(g, "language", path) or "en-US",
            response_types=self.enums(g, "responseType", path, r.response_types),
            audience=self.opt(g, "audience", path),
            event_codes=self.pairs(g, "eventCode", path),
            effective=self.time(g, "effective", path),
            onset=self.time(g, "onset", path),
            expires=self.time(g, "expires", path),
            sender_name=self.opt(g, "senderName", path),
            headline=self.opt(g, "headline", path),
            description=self.opt(g, "description", path),
            instruction=self.opt(g, "instruction", path),
            web=self.opt(g, "web", path),
            contact=self.opt(g, "contact", path),
            parameters=self.pairs(g, "parameter", path),
            resources=tuple(
                self.resource(e, f"{path}.resource[{i}]")
                for i, e in enumerate(g.get("resource", ()))
            ),
            areas=tuple(self.area(e, f"{path}.area[{i}]") for i, e in enumerate(g.get("area", ()))),
        )

    def area(self, el: etree._Element, path: str) -> Area:
        g = self.children(el, _AREA, path)
        polygons = []
        for i, e in enumerate(g.get("polygon", ())):
            field = f"{path}.polygon[{i}]"
            text = self.text(e, field)
            check_ring_points(text.count(","), field)  # one comma per point, counted in C
            polygons.append(parse_points(text, field))
        circles = []
        for i, e in enumerate(g.get("circle", ())):
            field = f"{path}.circle[{i}]"
            circles.append(parse_circle(self.text(e, field), field))
        altitude, ceiling = self.one(g, "altitude", path), self.one(g, "ceiling", path)
        return Area(
            desc=self.req(g, "areaDesc", path),
            polygons=tuple(polygons),
            circles=tuple(circles),
            geocodes=self.pairs(g, "geocode", path),
            altitude=None if altitude is None else number(altitude, f"{path}.altitude"),
            ceiling=None if ceiling is None else number(ceiling, f"{path}.ceiling"),
        )

    def resource(self, el: etree._Element, path: str) -> Resource:
        g = self.children(el, self.schema.resource, path)
        size = self.one(g, "size", path)
        # derefUri (inline base64 content) is accepted but not kept: the model has no field.
        return Resource(
            desc=self.req(g, "resourceDesc", path),
            mime_type=self.one(g, "mimeType", path) or "",  # optional before CAP 1.2
            size=None if size is None else integer(size, f"{path}.size"),
            uri=self.opt(g, "uri", path),
            digest=self.opt(g, "digest", path),
        )


def parse_cap(
    body: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BODY,
    max_areas: int = DEFAULT_MAX_AREAS,
    max_area_entries: int = DEFAULT_MAX_AREA_ENTRIES,
) -> Alert:
    """Parse a CAP 1.0/1.1/1.2 document; raise IngestError (malformed/invalid/too_large).

    `max_areas` and `max_area_entries` bound the <area> elements of the whole alert and the
    polygon/circle/geocode entries in them; they are counted on the parsed tree (in C) before
    any area is read, so a 100,000-area alert costs its XML parse and nothing more. The other
    repeated elements, a ring's points and every text field are bounded by `limits`.
    """
    check_size(len(body), max_bytes)
    root = parse_xml(body)
    ns, local = _split(root.tag)
    if local.lower() == "html":
        raise html_error("CAP XML", html_page_title(body) or "")
    version = NAMESPACES.get(ns) if local == "alert" else None
    if version is None:
        where = f"namespace {ns!r}" if ns else "no namespace"
        raise malformed(f"expected a CAP 1.0/1.1/1.2 <alert> root element, got <{local}> ({where})")
    areas, entries = _count(root, ns, "c:info/")
    if areas > max_areas or entries > max_area_entries:  # then say in which info
        per_info = [_count(info, ns, "") for info in root.iterchildren("{" + ns + "}info")]
        check_area_counts(per_info, max_areas, max_area_entries)
    return check_alert(check_limits(_Reader(ns, version).alert(root)))


def _count(el: etree._Element, ns: str, info: str) -> tuple[int, int]:
    """<area> elements under `el` (through `info`) and the polygon/circle/geocode in them."""
    q = {"c": ns}
    areas = el.xpath(f"count({info}c:area)", namespaces=q)
    entries = el.xpath(
        f"count({info}c:area/c:polygon | {info}c:area/c:circle | {info}c:area/c:geocode)",
        namespaces=q,
    )
    assert isinstance(areas, float) and isinstance(entries, float)
    return int(areas), int(entries)
