"""The requests of the `hostile` scenario: what an attacker, or a broken feed, sends.

Each load is a list of POSTs prepared before its clock starts (`PreparedRequest`, sent by
`warnbus.tools.bench.loadgen`). The alerts that should be accepted are at the limits the engine
accepts (`warnbus.ingest.limits`, the body and area settings); the others are refused, and
the figure that matters is how long the engine's event loop was held while it said so.
"""

from __future__ import annotations

import math
import random
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

import msgspec

from channels.sim.prepared import PreparedRequest
from warnbus.domain.models import Alert, Area
from warnbus.feeds.capxml import alert_to_cap
from warnbus.flow.acks import AckLinks
from warnbus.ingest import DEFAULT_MAX_AREAS, DEFAULT_MAX_BODY
from warnbus.ingest.jsonform import alert_to_json
from warnbus.ingest.limits import COUNT_LIMITS, MAX_RING_POINTS, TEXT_LIMITS
from warnbus.tools.bench.alerts import geocode_area, irregular_ring, polygon_area, red_alert

#: The loads, in the order they run (an idle window is measured first, for reference).
LOADS = ("huge_text", "max_accepted", "many_areas", "too_many_areas", "login_flood",
         "forged_callbacks", "forged_ack_links", "xml_bombs", "signed_feed")
#: Loads that are not requests to the API: entries of a feed the engine polls.
FEED_LOADS = frozenset({"signed_feed"})
#: Requests per load (full, --quick); xml_bombs: rounds of every kind of bomb.
SIZES: dict[str, tuple[int, int]] = {
    "huge_text": (40, 8), "max_accepted": (2, 1), "many_areas": (4, 2),
    "too_many_areas": (10, 2), "login_flood": (200, 20), "forged_callbacks": (2000, 200),
    "forged_ack_links": (2000, 200), "xml_bombs": (5, 1), "signed_feed": (2, 1),
}
HUGE = 100_000  # characters of the attack run's headline
COUNTY = (29.55, 112.6)  # the sample county's centre (lat, lon)
CAP_XML = "application/cap+xml"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Target:
    """The engine under load: its URL, a full-scope feed token, its registry's villages and
    the names of its channels that take provider callbacks (`/hooks/<name>/...`)."""

    base: str
    token: str
    villages: tuple[str, ...]
    hooks: tuple[tuple[str, str], ...]  # (channel name, channel type)


def build(load: str, target: Target, count: int, run: int) -> list[PreparedRequest]:
    """The requests of one load (`count` of them, or rounds for xml_bombs)."""
    rng = random.Random(f"{load}-{run}")
    stamp = f"{run}-{time.time_ns()}"
    return _BUILDERS[load](target, count, rng, stamp)


# --------------------------------------------------------------------------- alerts


def _post_alert(target: Target, body: bytes, ctype: str = CAP_XML) -> PreparedRequest:
    return PreparedRequest(f"{target.base}/api/v1/alerts", body,
                           {"Content-Type": ctype, "Authorization": f"Bearer {target.token}"})


def _with(alert: Alert, **info: object) -> Alert:
    return msgspec.structs.replace(
        alert, infos=(msgspec.structs.replace(alert.infos[0], **info),))


def _sentences(first: str, n: int) -> str:
    """`n` characters of Chinese sentences (a warning's description, much repeated)."""
    text = (first + "预计未来三小时降雨量将达一百毫米以上，请做好防御。") * (n // 20 + 1)
    return text[: n - 1] + "。"


def _huge_text(target: Target, count: int, rng: random.Random, stamp: str
               ) -> list[PreparedRequest]:
    """The attack run's 100,000-character headline (and description), XML and JSON."""
    out = []
    for i in range(count):
        alert = red_alert(f"hostile-text-{stamp}-{i}", geocode_area(target.villages[0]))
        field = ("headline", "description", "instruction")[i % 3]
        alert = _with(alert, **{field: "暴" * HUGE, "description": _sentences("", HUGE)})
        out.append(_post_alert(target, alert_to_cap(alert)) if i % 2
                   else _post_alert(target, alert_to_json(alert), "application/json"))
    return out


def _max_accepted(target: Target, count: int, rng: random.Random, stamp: str
                  ) -> list[PreparedRequest]:
    """Alerts at the most the engine accepts: every text and count at its limit, 1,000
    areas, one of them a polygon as large as the rest of a 4 MB body allows; CAP XML and
    the JSON form in turns."""
    out = []
    for i in range(count):
        form = "json" if i % 2 else "cap"
        out.append(_post_alert(target, _max_body(target, f"hostile-max-{stamp}-{i}", form),
                               "application/json" if form == "json" else CAP_XML))
    return out


def _max_body(target: Target, identifier: str, form: str = "cap",
              limit: int = DEFAULT_MAX_BODY) -> bytes:
    encode = alert_to_json if form == "json" else alert_to_cap
    villages = target.villages
    areas = [geocode_area(villages[k % len(villages)], "某镇某村" * 25)
             for k in range(DEFAULT_MAX_AREAS - 1)]
    alert = red_alert(identifier, geocode_area(villages[0]))
    alert = msgspec.structs.replace(alert, codes=("c",) * COUNT_LIMITS["code"])
    alert = _with(alert, headline=_sentences("暴雨红色预警。", TEXT_LIMITS["headline"]),
                  description=_sentences("", TEXT_LIMITS["description"]),
                  instruction=_sentences("立即转移。", TEXT_LIMITS["instruction"]),
                  parameters=(("level", "红色"),) * COUNT_LIMITS["parameter"])
    small = encode(_with(alert, areas=(polygon_area(_circle(1000)), *areas)))
    per_point = (len(small) - len(encode(_with(alert, areas=tuple(areas))))) / 1000
    points = min(MAX_RING_POINTS, int((limit - len(small)) / per_point * 0.97))
    body = encode(_with(alert, areas=(polygon_area(_circle(points)), *areas)))
    if len(body) > limit:  # the estimate is 3 % short of the limit: never here
        raise ValueError(f"the largest accepted alert came out at {len(body):,} bytes")
    return body


def feed_entries(target: Target, count: int, run: int, limit: int) -> list[bytes]:
    """The CAP files of the `signed_feed` load (signed by the feed before they are served):
    the largest alert a feed may serve, its polygon at the most points a ring may have."""
    stamp = f"{run}-{time.time_ns()}"
    return [_max_body(target, f"hostile-feed-{stamp}-{i}", "cap", limit) for i in range(count)]


def _circle(points: int, radius: float = 0.25) -> tuple[tuple[float, float], ...]:
    """A closed ring of `points` points around the county's centre (simple, so valid)."""
    lat, lon = COUNTY
    ring = [(round(lat + radius * math.sin(2 * math.pi * k / (points - 1)), 7),
             round(lon + radius * 1.15 * math.cos(2 * math.pi * k / (points - 1)), 7))
            for k in range(points - 1)]
    return (*ring, ring[0])


def _many_areas(target: Target, count: int, rng: random.Random, stamp: str
                ) -> list[PreparedRequest]:
    """1,000-area alerts (the most accepted): village geocodes, or small polygons."""
    out = []
    for i in range(count):
        if i % 2 == 0:
            areas: Sequence[Area] = [geocode_area(target.villages[k % len(target.villages)])
                                     for k in range(DEFAULT_MAX_AREAS)]
        else:
            areas = [polygon_area(irregular_ring(29.32 + 0.46 * rng.random(),
                                                 112.32 + 0.56 * rng.random(), 0.01))
                     for _ in range(DEFAULT_MAX_AREAS)]
        alert = _with(red_alert(f"hostile-areas-{stamp}-{i}", areas[0]), areas=tuple(areas))
        out.append(_post_alert(target, alert_to_json(alert), "application/json"))
    return out


def _too_many_areas(target: Target, count: int, rng: random.Random, stamp: str
                    ) -> list[PreparedRequest]:
    """100,000 areas in 3 MB of XML, 20,000 in JSON, a 3.6 MB JSON polygon of 600,000
    points: refused by counting them."""
    out = []
    for i in range(count):
        alert = red_alert(f"hostile-toomany-{stamp}-{i}", geocode_area(target.villages[0]))
        if i % 3 == 2:
            small = alert_to_json(_with(alert, areas=(polygon_area(((0.0, 0.0),) * 4),)))
            huge = b"[" + b"[0,0]," * 599_999 + b"[0,0]]"
            out.append(_post_alert(target, small.replace(b"[[0.0,0.0]" + b",[0.0,0.0]" * 3 + b"]",
                                                         huge, 1), "application/json"))
        elif i % 3 == 1:
            bare = Area(desc="a")
            out.append(_post_alert(target, alert_to_json(_with(alert, areas=(bare,) * 20_000)),
                                   "application/json"))
        else:
            xml = alert_to_cap(alert).decode()
            one = "<area><areaDesc>a</areaDesc></area>"
            out.append(_post_alert(target, xml.replace("<area>", one * 100_000 + "<area>", 1)
                                   .encode()))
    return out


# --------------------------------------------------------------------------- public routes


def _login_flood(target: Target, count: int, rng: random.Random, stamp: str
                 ) -> list[PreparedRequest]:
    """Wrong passwords for random names (some 4,000 characters long), each with a CSRF
    cookie and field that match: what a script does after reading the login form."""
    out = []
    for i in range(count):
        length = 4000 if i % 10 == 0 else rng.randint(3, 32)
        name = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz管理员值班") for _ in range(length))
        csrf = secrets.token_urlsafe(16)
        body = urlencode({"username": name, "password": secrets.token_urlsafe(12),
                          "_csrf": csrf, "next": ""}).encode()
        out.append(PreparedRequest(f"{target.base}/console/login", body,
                                   {"Content-Type": FORM, "Cookie": f"wb_login_csrf={csrf}"}))
    return out


def _forged_callbacks(target: Target, count: int, rng: random.Random, stamp: str
                      ) -> list[PreparedRequest]:
    """Provider callbacks with a wrong signature, or none: delivered, confirmed, replied."""
    kinds: list[Callable[[str, int], PreparedRequest]] = []
    ids = urlencode({"c": f"cp-{stamp}", "d": "dl-1", "t": "p-1"})
    for name, kind in target.hooks:
        base = f"{target.base}/hooks/{name}"
        if kind == "wecom":
            kinds.append(_wecom_callback(base))
            continue
        paths = {"twilio-sms": (("status", {"MessageStatus": "delivered"}),
                                ("inbound", {"From": "+8613800000000", "Body": "1"})),
                 "twilio-voice": (("gather", {"Digits": "1"}),
                                  ("status", {"CallStatus": "completed"}))}.get(kind, ())
        kinds += [_twilio_callback(f"{base}/{path}?{ids}", form) for path, form in paths]
    if not kinds:
        return []
    return [kinds[i % len(kinds)](secrets.token_urlsafe(20) if i % 3 else "", i)
            for i in range(count)]


def _twilio_callback(url: str, form: dict[str, str]) -> Callable[[str, int], PreparedRequest]:
    def make(signature: str, i: int) -> PreparedRequest:
        headers = {"Content-Type": FORM}
        if signature:
            headers["X-Twilio-Signature"] = signature
        body = urlencode({**form, "CallSid": f"CA{i:032d}", "MessageSid": f"SM{i:032d}"})
        return PreparedRequest(url, body.encode(), headers)
    return make


def _wecom_callback(base: str) -> Callable[[str, int], PreparedRequest]:
    def make(signature: str, i: int) -> PreparedRequest:
        query = urlencode({"msg_signature": signature or "0" * 40,
                           "timestamp": str(int(time.time())), "nonce": f"n{i}"})
        xml = (f"<xml><ToUserName>corp</ToUserName><Encrypt>{'A' * 344}</Encrypt>"
               "<AgentID>1</AgentID></xml>")
        return PreparedRequest(f"{base}/callback?{query}", xml.encode(),
                               {"Content-Type": "text/xml"})
    return make


def _forged_ack_links(target: Target, count: int, rng: random.Random, stamp: str
                      ) -> list[PreparedRequest]:
    """Ack links signed with a guessed key, random tokens, and very long ones."""
    guessed = AckLinks(secrets.token_bytes(32), target.base, 3600.0)
    tokens = [
        lambda i: guessed.token(f"cp_{i}", f"p{i:06d}", time.time()),
        lambda i: secrets.token_urlsafe(40),
        lambda i: "A" * 8000 + "." + "B" * 20,
        lambda i: f"{secrets.token_urlsafe(30)}.{secrets.token_urlsafe(16)}",
    ]
    return [PreparedRequest(f"{target.base}/ack/{tokens[i % len(tokens)](i)}", b"",
                            {"Accept": "application/json"}) for i in range(count)]


# --------------------------------------------------------------------------- XML


def _xml_bombs(target: Target, count: int, rng: random.Random, stamp: str
               ) -> list[PreparedRequest]:
    """Every kind of hostile XML, `count` rounds: entity expansion, external entities,
    depth, and breadth (a few MB of elements a limit refuses)."""
    out = []
    for r in range(count):
        good = alert_to_cap(red_alert(f"hostile-xml-{stamp}-{r}",
                                      geocode_area(target.villages[0]))).decode()
        decl, rest = good.split("?>", 1)
        out += [_post_alert(target, body) for body in _bombs(decl + "?>", rest)]
    return out


def _bombs(decl: str, rest: str) -> list[bytes]:
    laughs = ('<!DOCTYPE alert [<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)) + "]>")
    quadratic = f'<!DOCTYPE alert [<!ENTITY a "{"a" * 50_000}">]>'
    with_event = rest.replace("<event>", "<event>&x;", 1)
    ext = '<x:a xmlns:x="urn:x"/>'
    param = "<parameter><valueName>a</valueName><value>b</value></parameter>"
    refs = "<references>" + "a@b,id,2026-07-15T05:30:00+08:00 " * 100_000 + "</references>"
    return [s.encode() for s in (
        decl + laughs + rest.replace("<event>", "<event>&lol9;", 1),
        decl + quadratic + rest.replace("<event>", "<event>" + "&a;" * 2000, 1),
        decl + '<!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>' + with_event,
        decl + '<!DOCTYPE alert [<!ENTITY x SYSTEM "http://127.0.0.1:9/x">]>' + with_event,
        decl + "<alert>" * 200_000,
        decl + rest.replace("</alert>", "<x:a xmlns:x='urn:x'>" + "<b>" * 5000 + "</b>" * 5000
                            + "</x:a></alert>"),
        decl + rest.replace("</alert>", ext * 150_000 + "</alert>"),
        decl + rest.replace("<area>", param * 60_000 + "<area>", 1),
        decl + rest.replace("<event>", "<category>Met</category>" * 150_000 + "<event>", 1),
        decl + rest.replace("<info>", refs + "<info>", 1),
    )]


_BUILDERS: dict[str, Callable[[Target, int, random.Random, str], list[PreparedRequest]]] = {
    "huge_text": _huge_text, "max_accepted": _max_accepted, "many_areas": _many_areas,
    "too_many_areas": _too_many_areas, "login_flood": _login_flood,
    "forged_callbacks": _forged_callbacks, "forged_ack_links": _forged_ack_links,
    "xml_bombs": _xml_bombs,
}
