"""Message texts from the data file `templates.toml`: per delivery kind and channel."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rules.hazards import HazardTable
from warnbus.domain.models import LEVEL_NAMES_ZH, Alert, DeliveryKind, Info, Level
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


class Templates:
    """Render the text of a delivery. Unknown placeholders render empty, never crash.

    Lookup, most specific first: [hazard.<key>.<level>] "<kind>.<channel>", "<kind>.<medium>",
    then "<kind>", then [hazard.<key>] likewise, then [<kind>] "<channel>", "<medium>", then
    [<kind>] "default". `channel` is the name a deployment gave the channel, `medium` what it
    is (voice, sms, wecom, loudspeaker: `warnbus.plugin.Medium`), so a channel named "tel"
    that calls gets the voice texts; without a medium the name is taken for it.
    """

    def __init__(self, table: Mapping[str, Any], hazards: HazardTable | None = None, *,
                 value_max: int = VALUE_MAX) -> None:
        for kind in DeliveryKind:
            if kind.value not in table or "default" not in table[kind.value]:
                raise ConfigError(f"templates: [{kind.value}] needs a 'default' entry")
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
    ) -> str:
        medium = medium or channel
        names = (channel,) if medium == channel else (channel, medium)
        layers = self._layers(info, level)
        section = self.table[kind.value]
        template = next(
            (t for layer in layers
             for t in (*(layer.get(f"{kind.value}.{n}") for n in names), layer.get(kind.value))
             if isinstance(t, str)),
            None,
        ) or next((t for n in names if isinstance(t := section.get(n), str)), None) or (
            section["default"])
        guidance = next((g for layer in layers if isinstance(g := layer.get("guidance"), str)),
                        "")
        acks = self.table.get("ack", {})
        ack = next((a for n in names if (a := acks.get(n))), None) or acks.get("default", "")
        # A call or a broadcast cannot show a link.
        if ack_url and medium not in ("voice", "loudspeaker"):
            ack = ack + "，" + acks.get("link", "{url}").replace("{url}", ack_url)
        if kind in (DeliveryKind.CANCEL, DeliveryKind.NOTICE):
            ack = ""
        cap = self.value_max
        values = _Missing(
            drill="【演练】" if alert.is_drill else "",
            level_zh=LEVEL_NAMES_ZH[level],
            event=bounded((info.event if info else "") or "", cap),
            headline=bounded(" ".join((info.headline or info.event).split()), cap) if info
            else "",
            description=_clean(info.description if info else None, cap),
            instruction=_clean(info.instruction if info else None, cap) or guidance,
            sender=bounded(info.sender_name if info and info.sender_name else alert.sender, cap),
            area=bounded(area, cap),
            ack=ack,
        )
        if extra:
            values.update((k, bounded(v, cap)) for k, v in extra.items())
        return template.format_map(values)


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
