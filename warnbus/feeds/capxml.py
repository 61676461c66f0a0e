"""Write an Alert as CAP 1.2 XML, in schema order, so that `parse_cap` reads it back equal.

Whatever the alert came in as (CAP 1.0/1.1/1.2, JSON), it goes out as CAP 1.2: "Very Likely"
becomes "Likely" (as CAP 1.1 deprecated it), times lose fractions and UTC is written -00:00
(the 1.2 schema forbids fractions and "Z"). For a 1.2 alert the round trip is exact.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

from lxml import etree

from warnbus.domain.models import Alert, Area, Certainty, Info, Resource
from warnbus.errors import IngestError
from warnbus.ingest.checks import RULES, parse_datetime

CAP12 = "urn:oasis:names:tc:emergency:cap:1.2"
_Q = "{" + CAP12 + "}"
# Characters XML 1.0 cannot carry at all (lxml refuses them): dropped, not escaped.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def alert_to_cap(alert: Alert) -> bytes:
    """The alert as a CAP 1.2 document (UTF-8, with an XML declaration)."""
    root = etree.Element(_Q + "alert", nsmap={None: CAP12})  # type: ignore[dict-item]  # stubs lack the None key
    _sub(root, "identifier", alert.identifier, always=True)
    _sub(root, "sender", alert.sender, always=True)
    _sub(root, "sent", _time(alert.sent))
    _sub(root, "status", alert.status.value)
    _sub(root, "msgType", alert.msg_type.value)
    _sub(root, "source", alert.source)
    _sub(root, "scope", alert.scope.value)
    _sub(root, "restriction", alert.restriction)
    _sub(root, "addresses", alert.addresses)
    for code in alert.codes:
        _sub(root, "code", code)
    _sub(root, "note", alert.note)
    if alert.references:
        _sub(root, "references", " ".join(
            f"{r.sender},{r.identifier},{_ref_time(r.sent)}" for r in alert.references))
    _sub(root, "incidents", alert.incidents)
    for info in alert.infos:
        _info(etree.SubElement(root, _Q + "info"), info)
    return etree.tostring(root, encoding="UTF-8", xml_declaration=True, pretty_print=True)


def _info(el: etree._Element, info: Info) -> None:
    _sub(el, "language", info.language)
    for c in info.categories:
        _sub(el, "category", c.value)
    _sub(el, "event", info.event, always=True)
    for r in info.response_types:
        _sub(el, "responseType", r.value)
    _sub(el, "urgency", info.urgency.value)
    _sub(el, "severity", info.severity.value)
    certainty = Certainty.LIKELY if info.certainty is Certainty.VERY_LIKELY else info.certainty
    _sub(el, "certainty", certainty.value)
    _sub(el, "audience", info.audience)
    _pairs(el, "eventCode", info.event_codes)
    for name, value in (("effective", info.effective), ("onset", info.onset),
                        ("expires", info.expires)):
        if value is not None:
            _sub(el, name, _time(value))
    for name, text in (("senderName", info.sender_name), ("headline", info.headline),
                       ("description", info.description), ("instruction", info.instruction),
                       ("web", info.web), ("contact", info.contact)):
        _sub(el, name, text)
    _pairs(el, "parameter", info.parameters)
    for res in info.resources:
        _resource(etree.SubElement(el, _Q + "resource"), res)
    for area in info.areas:
        _area(etree.SubElement(el, _Q + "area"), area)


def _resource(el: etree._Element, res: Resource) -> None:
    _sub(el, "resourceDesc", res.desc, always=True)
    _sub(el, "mimeType", res.mime_type, always=True)  # required in 1.2, may be "" from 1.0
    _sub(el, "size", None if res.size is None else str(res.size))
    _sub(el, "uri", res.uri)
    _sub(el, "digest", res.digest)


def _area(el: etree._Element, area: Area) -> None:
    _sub(el, "areaDesc", area.desc, always=True)
    for ring in area.polygons:
        _sub(el, "polygon", " ".join(f"{_num(lat)},{_num(lon)}" for lat, lon in ring))
    for c in area.circles:
        _sub(el, "circle", f"{_num(c.lat)},{_num(c.lon)} {_num(c.radius_km)}")
    _pairs(el, "geocode", area.geocodes)
    _sub(el, "altitude", None if area.altitude is None else _num(area.altitude))
    _sub(el, "ceiling", None if area.ceiling is None else _num(area.ceiling))


def _sub(parent: etree._Element, name: str, text: str | None, *, always: bool = False) -> None:
    if text is None or (not text and not always):
        return
    etree.SubElement(parent, _Q + name).text = xml_safe(text)


def xml_safe(text: str) -> str:
    """`text` without the characters XML 1.0 cannot carry (lxml refuses them)."""
    return _NOT_XML.sub("", text)


def _pairs(parent: etree._Element, name: str, pairs: tuple[tuple[str, str], ...]) -> None:
    for key, value in pairs:
        el = etree.SubElement(parent, _Q + name)
        _sub(el, "valueName", key, always=True)
        _sub(el, "value", value, always=True)


def _time(value: datetime) -> str:
    """CAP 1.2 date-time: seconds precision, numeric offset, UTC as -00:00."""
    offset = value.utcoffset()
    if offset is None or offset.seconds % 60 or offset.microseconds:
        value = value.astimezone(UTC)  # no offset CAP can write: say it in UTC
        offset = value.utcoffset()
    text = value.replace(microsecond=0).isoformat()
    return text[:-6] + "-00:00" if offset is not None and not offset else text


def _ref_time(text: str) -> str:
    """A reference's `sent` as it came when 1.2 allows it, else rewritten in 1.2 form."""
    try:
        parse_datetime(text, RULES["1.2"], "references")
    except IngestError:
        try:
            return _time(parse_datetime(text, RULES["json"], "references"))
        except IngestError:
            return text  # not a date-time at all: parse_cap will say so
    return text


def _num(x: float) -> str:
    """The shortest decimal that reads back as the same float, never in exponent form."""
    text = repr(float(x))
    return format(Decimal(text), "f") if "e" in text or "E" in text else text
