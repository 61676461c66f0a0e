"""A manual alert: the form and the `models.Alert` built from it (its preview of what
publishing sends is `console.preview`)."""

from __future__ import annotations

import random
import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

import msgspec

from warnbus.domain.models import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    Level,
    MsgType,
    Reference,
    RegionLevel,
    ResponseType,
    Scope,
    Severity,
    Status,
    Urgency,
)
from warnbus.errors import IngestError
from warnbus.flow.credentials import console_sender
from warnbus.ingest import alert_to_json, parse_json
from warnbus.ingest.identifiers import new_identifier as gb35965_identifier
from warnbus.runtime.context import Context
from warnbus.state import keys
from warnbus.web.console import drawn, svgmap
from warnbus.web.console.base import ConsoleSettings
from warnbus.web.console.html import BEIJING, LEVEL_ZH

#: The CAP severity of a colour (as rules/levels.toml); the `level` parameter is what counts.
SEVERITY = {Level.RED: Severity.EXTREME, Level.ORANGE: Severity.SEVERE,
            Level.YELLOW: Severity.MODERATE, Level.BLUE: Severity.MINOR}


#: The CAP geocode valueName of a ticked region (rules.match reads each as a code prefix).
GEOCODE_NAME = {RegionLevel.COUNTY: "统计用区划代码", RegionLevel.TOWNSHIP: "TOWNSHIP",
                RegionLevel.VILLAGE: "VILLAGE"}


class HazardLike(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def category(self) -> Category: ...
    @property
    def levels(self) -> tuple[Level, ...]: ...


def hazards_of(ctx: Context) -> list[HazardLike]:
    """The hazard table the engine runs with (rules.HazardTable behind the rules facade)."""
    table = getattr(ctx.rules, "hazards", None)
    return list(getattr(table, "hazards", ()))


def guidance(ctx: Context, hazard: str, level: str) -> str:
    """The 防御指南 of the message templates for a hazard and level, if they have one."""
    table: Mapping[str, Any] = getattr(ctx.rules.renderer, "table", {})
    section = table.get("hazard", {}).get(hazard, {})
    text = section.get(level, {}).get("guidance") or section.get("guidance") or ""
    return str(text)


class DraftForm(msgspec.Struct, frozen=True):
    """What the officer filled in. Times are Beijing local `YYYY-MM-DDTHH:MM`.

    The area is the union of the regions ticked in the tree (`areas`) and the polygon drawn
    on the map (`polygon`, a closed (lat, lon) ring, with its areaDesc `polygon_desc`).
    """

    hazard: str
    level: str
    status: str = "Actual"
    areas: tuple[str, ...] = ()
    polygon: tuple[tuple[float, float], ...] = ()
    polygon_desc: str = ""
    headline: str = ""
    description: str = ""
    instruction: str = ""
    effective: str = ""
    expires: str = ""


def defaults(ctx: Context, settings: ConsoleSettings, hazard: str, level: str) -> dict[str, str]:
    """Texts pre-filled for a hazard and level: headline and the templates' guidance."""
    h = next((x for x in hazards_of(ctx) if x.key == hazard), None)
    name = h.name if h else ""
    return {"headline": f"{sender_name(ctx, settings)}发布{name}{LEVEL_ZH.get(level, '')}预警",
            "instruction": guidance(ctx, hazard, level)}


def sender_name(ctx: Context, settings: ConsoleSettings) -> str:
    if settings.sender_name:
        return settings.sender_name
    county = ctx.registry.data.regions.get(ctx.registry.county_code)
    return f"{county.name if county else ''}应急管理局"


def parse_form(ctx: Context, data: Mapping[str, str], areas: Sequence[str]) -> tuple[
        DraftForm, dict[str, str]]:
    """The form and its problems (field -> message in Chinese); no problems means valid."""
    errs: dict[str, str] = {}
    ring: drawn.Ring = ()
    try:
        ring = drawn.parse_ring(data.get("polygon", ""))
    except drawn.DrawnAreaError as e:
        errs["polygon"] = e.message
    f = DraftForm(
        hazard=data.get("hazard", ""), level=data.get("level", ""),
        status=data.get("status", "Actual"), areas=tuple(dict.fromkeys(a for a in areas if a)),
        polygon=ring, polygon_desc=drawn.desc_of(data.get("polygon_desc", "")) if ring else "",
        headline=data.get("headline", "").strip(), description=data.get("description", "").strip(),
        instruction=data.get("instruction", "").strip(), effective=data.get("effective", ""),
        expires=data.get("expires", ""),
    )
    bad_ring = drawn.problem(ring, svgmap.geometry(ctx.registry).extent)
    if bad_ring:
        errs["polygon"] = bad_ring
    h = next((x for x in hazards_of(ctx) if x.key == f.hazard), None)
    if h is None:
        errs["hazard"] = "请选择灾种"
    if not f.level:  # no default: a level is chosen, never inherited from a form's first option
        errs["level"] = "请选择级别"
    elif h is not None and f.level not in {lv.value for lv in h.levels}:
        errs["level"] = f"{h.name}没有{LEVEL_ZH.get(f.level, f.level or '该')}级别的预警"
    if f.status not in ("Actual", "Exercise"):
        errs["status"] = "性质只能是正式或演练"
    county = ctx.registry.county_code
    if county in f.areas:  # 全县: the whole county, nothing narrower beside it
        f = msgspec.structs.replace(f, areas=(county,))
    area_problem = _area_problem(ctx, f)
    if area_problem and "polygon" not in errs:
        errs["areas"] = area_problem
    if not f.headline:
        errs["headline"] = "请填写标题"
    eff, exp = local_time(f.effective), local_time(f.expires)
    if eff is None:
        errs["effective"] = "生效时间格式应为 YYYY-MM-DDTHH:MM"
    if exp is None:
        errs["expires"] = "失效时间格式应为 YYYY-MM-DDTHH:MM"
    elif eff is not None and exp <= eff:
        errs["expires"] = "失效时间必须晚于生效时间"
    elif exp.timestamp() <= ctx.clock.now():
        errs["expires"] = "失效时间已过"
    return f, errs


def _area_problem(ctx: Context, f: DraftForm) -> str | None:
    regions = ctx.registry.data.regions
    bad = [a for a in f.areas if a not in regions or (
        regions[a].level is RegionLevel.COUNTY and a != ctx.registry.county_code)]
    if not f.areas and not f.polygon:
        return "请选择预警区域（全县、乡镇或村），或在地图上绘制区域"
    return f"未知区域：{'、'.join(bad)}" if bad else None


def local_time(value: str) -> datetime | None:
    try:
        t = datetime.fromisoformat(value)
    except ValueError:
        return None
    return t.replace(tzinfo=BEIJING) if t.tzinfo is None else t


def form_times(ctx: Context, hours: float = 6) -> tuple[str, str]:
    now = datetime.fromtimestamp(ctx.clock.now(), BEIJING).replace(second=0, microsecond=0)
    return now.strftime("%Y-%m-%dT%H:%M"), (now + timedelta(hours=hours)).strftime(
        "%Y-%m-%dT%H:%M")


def build_alert(
    ctx: Context, f: DraftForm, settings: ConsoleSettings, identifier: str, *,
    msg_type: MsgType = MsgType.ALERT, references: tuple[Reference, ...] = (),
) -> Alert:
    """The CAP alert of a form, checked exactly like one sent to the API as JSON."""
    h = next(x for x in hazards_of(ctx) if x.key == f.hazard)
    level = Level(f.level)
    regions = ctx.registry.data.regions
    geocodes = tuple((GEOCODE_NAME[regions[a].level], a) for a in f.areas)
    # Two <area> blocks: in one, the polygon would define the area and the geocodes would
    # be mere context (rules.match); apart, the alert reaches their union.
    areas: list[Area] = []
    if f.areas:
        areas.append(Area(desc="、".join(regions[a].name for a in f.areas), geocodes=geocodes))
    if f.polygon:
        areas.append(Area(desc=f.polygon_desc or drawn.DEFAULT_DESC, polygons=(f.polygon,)))
    eff, exp = local_time(f.effective), local_time(f.expires)
    now = datetime.fromtimestamp(ctx.clock.now(), BEIJING).replace(microsecond=0)
    cancel = msg_type is MsgType.CANCEL
    info = Info(
        categories=(h.category,), event=h.name, urgency=Urgency.PAST if cancel else
        Urgency.IMMEDIATE, severity=SEVERITY[level], certainty=Certainty.OBSERVED if cancel
        else Certainty.LIKELY, language="zh-CN",
        response_types=(ResponseType.ALL_CLEAR,) if cancel else (ResponseType.PREPARE,),
        effective=eff, expires=exp, sender_name=sender_name(ctx, settings),
        headline=f.headline, description=f.description or None,
        instruction=f.instruction or None, parameters=(("level", LEVEL_ZH[level]),),
        areas=tuple(areas),
    )
    alert = Alert(identifier=identifier, sender=sender_of(ctx, settings), sent=now,
                  status=Status(f.status), msg_type=msg_type, scope=Scope.PUBLIC,
                  source="warnbus console", references=references, infos=(info,))
    return parse_json(alert_to_json(alert))  # the same checks as the API's JSON form


def drawn_reaches_nobody(ctx: Context, alert: Alert) -> bool:
    """True when the alert's drawn area (its last area, see build_alert) holds no grid and
    no site that the alert's hazard would warn: a drawing that reaches nobody is a mistake."""
    info = alert.primary_info()
    if info is None or not info.areas or not info.areas[-1].polygons:
        return False
    only = msgspec.structs.replace(alert, infos=(msgspec.structs.replace(
        info, areas=(info.areas[-1],)),))
    got = ctx.rules.match(only)
    return not (got.grids or got.sites)


def org_code(ctx: Context, settings: ConsoleSettings) -> str:
    return settings.org_code or ctx.registry.county_code[:6] + "00000000"


def sender_of(ctx: Context, settings: ConsoleSettings) -> str:
    """The console's own CAP sender (`[console] sender`), whatever the org code: no token or
    feed may publish under it, which is checked at start-up."""
    return console_sender(ctx.settings, ctx.registry)


#: Random bits after the GB/T 35965.1 part of a console identifier (20 hex digits).
RANDOM_BITS = 80
SYSTEM_RANDOM: random.Random = secrets.SystemRandom()


def console_identifier(ctx: Context, settings: ConsoleSettings, when: datetime, seq: int,
                       rng: random.Random = SYSTEM_RANDOM) -> str:
    """`ZZZZZZDDDUUUXX_YYYYMMDDhhmmss_N-<20 random hex digits>`.

    The part before `-` is the GB/T 35965.1 identifier of the issuing unit, entry time and
    sequence; the random part (80 bits from `rng`, the OS's generator unless a test seeds its
    own) makes the identifier impossible to know before it is published, so nobody can post
    an alert under it first. The whole stays a valid CAP identifier (no space, comma, `<`, `&`).
    """
    code = org_code(ctx, settings)
    base = gb35965_identifier(code[:6], code[6:9], code[9:12], code[12:14], when, seq)
    return f"{base}-{rng.getrandbits(RANDOM_BITS):0{RANDOM_BITS // 4}x}"


async def new_identifier(ctx: Context, settings: ConsoleSettings,
                         rng: random.Random = SYSTEM_RANDOM) -> str:
    """A new console identifier (`console_identifier`) in Beijing time.

    N counts the console's alerts of the same second (0-9), across processes, in Redis; an
    eleventh alert in one second is entered at the next second.
    """
    code = org_code(ctx, settings)
    when = datetime.fromtimestamp(ctx.clock.now(), BEIJING).replace(microsecond=0)
    for _ in range(60):
        k = keys.console_seq(code + when.strftime("%Y%m%d%H%M%S"))
        pipe = ctx.redis.pipeline(transaction=True)  # the counter never outlives its TTL
        pipe.incr(k)
        pipe.expire(k, 300)
        n = int((await pipe.execute())[0])
        if n <= 10:
            return console_identifier(ctx, settings, when, n - 1, rng)
        when += timedelta(seconds=1)
    raise IngestError("invalid", "too many console alerts in one minute", "identifier")
