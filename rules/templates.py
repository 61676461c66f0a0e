"""Message texts from the data file `templates.toml`: per delivery kind and channel."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rules.hazards import HazardTable
from rules.wording import beijing, clip, share, substance, title
from warnbus.domain.models import LEVEL_NAMES_ZH, Alert, DeliveryKind, Info, Level, MsgType
from warnbus.errors import ConfigError

_DEFAULT = Path(__file__).with_name("templates.toml")
#: Most characters of one placeholder's value. No channel sends more than 2,000 characters
#: (a speaker's TTS text; a call 1,800, an SMS at most 10 parts): a longer value is cut before
#: it is rendered, so a delivery's text stays bounded however long the CAP fields or the list
#: of areas or grids were (a text is stored with every delivery, and fitted by its channel).
VALUE_MAX = 2_000


class _Missing(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""


#: The parts of a text that share a channel's room when the whole does not fit (in `render`).
ELASTIC = ("substance", "instruction", "area", "grids", "speakers", "changes")
#: Where a person's 解除 names no area (a dropped area's notice re-rendered without it).
YOUR_AREA = "您所在区域"
_LIFT = "lift"  # the section of the 解除 for the area an Update dropped
_DOUBLE_STOP = re.compile("。{2,}")


class Templates:
    """Render the text of a delivery. Unknown placeholders render empty, never crash.

    Lookup, most specific first: [hazard.<key>.<level>] "<kind>.<channel>", "<kind>.<medium>",
    then "<kind>", then [hazard.<key>] likewise, then [<kind>] "<channel>", "<medium>", then
    [<kind>] "default". `channel` is the name a deployment gave the channel, `medium` what it
    is (voice, sms, wecom, loudspeaker: `warnbus.plugin.Medium`), so a channel named "tel"
    that calls gets the voice texts; without a medium the name is taken for it.

    A 解除 (`DeliveryKind.CANCEL`) of an Update is the notice to an area the Update dropped:
    the [lift] texts (else [cancel]'s), with that area as {area}.
    """

    def __init__(self, table: Mapping[str, Any], hazards: HazardTable | None = None, *,
                 value_max: int = VALUE_MAX) -> None:
        for kind in DeliveryKind:
            if kind.value not in table or "default" not in table[kind.value]:
                raise ConfigError(f"templates: [{kind.value}] needs a 'default' entry")
        if _LIFT in table and "default" not in table[_LIFT]:
            raise ConfigError(f"templates: [{_LIFT}] needs a 'default' entry")
        known = {k.value for k in DeliveryKind}
        for hkey, section in table.get("hazard", {}).items():
            for layer in [section, *(v for v in section.values() if isinstance(v, dict))]:
                for name, value in layer.items():
                    if isinstance(value, dict):
                        if name not in {lv.value for lv in Level}:
                            raise ConfigError(f"templates: [hazard.{hkey}.{name}]: not a level")
                    elif name != "guidance" and name.split(".")[0] not in known:
                        raise ConfigError(f"templates: [hazard.{hkey}] {name!r}: unknown kind")
        self.table = table
        self.hazards = hazards
        self.value_max = value_max

    @classmethod
    def load(cls, path: str | Path | None = None, hazards: HazardTable | None = None
             ) -> Templates:
        p = Path(path) if path else _DEFAULT
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise ConfigError(f"templates file {p}: {e}") from e
        return cls(data, hazards)

    def _layers(self, info: Info | None, level: Level) -> list[Mapping[str, Any]]:
        if info is None or self.hazards is None:
            return []
        hazard = self.hazards.hazard_of(info)
        section = self.table.get("hazard", {}).get(hazard.key, {}) if hazard else {}
        by_level = section.get(level.value, {})
        return [by_level, section]

    def _template(self, kind: DeliveryKind, names: tuple[str, ...],
                  layers: list[Mapping[str, Any]], lift: bool) -> str:
        # A dropped area's 解除 is no hazard's warning text: the hazard layers are not asked.
        section = self.table.get(_LIFT) if lift else None
        if section is None:
            section = self.table[kind.value]
        else:
            layers = []
        return next(
            (t for layer in layers
             for t in (*(layer.get(f"{kind.value}.{n}") for n in names), layer.get(kind.value))
             if isinstance(t, str)),
            None,
        ) or next((t for n in names if isinstance(t := section.get(n), str)), None) or (
            section["default"])

    def render(
        self,
        kind: DeliveryKind,
        channel: str,
        alert: Alert,
        info: Info | None,
        level: Level,
        *,
        medium: str | None = None,
        area: str = "",
        ack_url: str | None = None,
        extra: Mapping[str, str] | None = None,
        confirm: bool | None = None,
        max_length: int | None = None,
    ) -> str:
        """The text of a `kind` message of `alert` on `channel`.

        `confirm`: whether it asks for a confirmation ({ack}, and the link on a medium that
        shows one); None: as its kind does (`DeliveryKind.CONFIRMING`). `max_length`: the
        most characters the channel carries; a longer text has its parts (ELASTIC) cut to
        share the room. `extra` holds more values ({grids}, {changes}, and for a dropped
        area's 解除 "lifted", the area it names)."""
        medium = medium or channel
        names = (channel,) if medium == channel else (channel, medium)
        layers = self._layers(info, level)
        lift = kind is DeliveryKind.CANCEL and alert.msg_type is MsgType.UPDATE
        template = self._template(kind, names, layers, lift)
        asks = kind in DeliveryKind.CONFIRMING if confirm is None else confirm
        ack = ""
        if asks:
            acks = self.table.get("ack", {})
            ack = next((a for n in names if (a := acks.get(n))), None) or acks.get("default", "")
            # A call or a broadcast cannot show a link; a WeCom card has its button, and links
            # to the full text itself.
            if ack_url and medium not in ("voice", "loudspeaker", "wecom"):
                ack = ack + "，" + acks.get("link", "{url}").replace("{url}", ack_url)
        cap = self.value_max
        event = bounded((info.event if info else "") or "", cap)
        headline = bounded(" ".join((info.headline or info.event).split()), cap) if info else ""
        sender = bounded(info.sender_name if info and info.sender_name else alert.sender, cap)
        level_zh = LEVEL_NAMES_ZH[level]
        announces = kind in (DeliveryKind.CANCEL,)  # a 解除 gives no defence guidance
        guidance = "" if announces else next(
            (g for layer in layers if isinstance(g := layer.get("guidance"), str)), "")
        instruction = "" if announces else (
            _clean(info.instruction if info else None, cap) or guidance)
        effective = (info.effective if info else None) or alert.sent
        values = _Missing(
            drill="【演练】" if alert.is_drill else "",
            level_zh=level_zh,
            event=event,
            headline=headline,
            title=bounded(title(headline, event, level_zh, sender), cap),
            # Bounded first: the description is outside input, and may be 100,000 characters.
            substance=_clean(substance(bounded(info.description or "", 2 * cap), headline)
                             if info else None, cap),
            instruction=instruction,
            sender=sender,
            area=bounded(area, cap),
            since=beijing(effective),
            expires=beijing(info.expires if info else None),
            ack=ack,
        )
        if extra:
            values.update((k, bounded(v, cap)) for k, v in extra.items())
        if lift:
            values["area"] = values.get("lifted") or YOUR_AREA
            values["substance"] = ""
        return _fit(template, values, max_length)


def _fit(template: str, values: _Missing, limit: int | None) -> str:
    """The template with `values`; over `limit` characters, its ELASTIC parts share the room
    the rest leaves (`wording.share`), each keeping its beginning (`wording.clip`)."""
    text = _DOUBLE_STOP.sub("。", template.format_map(values))
    if limit is None or len(text) <= limit:
        return text
    parts = {k: len(values[k]) for k in ELASTIC if values.get(k)}
    if not parts:
        return text
    bare = _Missing(values)
    bare.update((k, "") for k in parts)
    room = limit - len(_DOUBLE_STOP.sub("。", template.format_map(bare)))
    for k, n in share(room, parts).items():
        bare[k] = clip(values[k], n)
    return _DOUBLE_STOP.sub("。", template.format_map(bare))


def bounded(text: str, limit: int = VALUE_MAX) -> str:
    """`text` if it has at most `limit` characters; else its beginning, cut after its last
    sentence end (。！？) or before its last list separator (、, then "等") in the second half
    of the limit, or else with "…". The result has at most `limit` characters."""
    if len(text) <= limit:
        return text
    head = text[: limit - 1]
    end = max(head.rfind(c) for c in "。！？")
    if end >= limit // 2:
        return head[: end + 1]
    sep = head.rfind("、")
    if sep >= limit // 2:
        return head[:sep] + "等"
    return head + "…"


def _clean(text: str | None, limit: int) -> str:
    """Single-line text; a sentence ends with 。 so templates can run texts together."""
    if not text:
        return ""
    t = bounded(" ".join(text.split()), limit - 1)
    return t if t.endswith(("。", ".", "!", "！")) else t + "。"
