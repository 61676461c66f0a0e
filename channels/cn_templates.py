"""Approved templates as configuration: a warning's text onto template codes and variables.

Mainland SMS and voice carry no free text: each message names a template the provider
approved and fills its variables. A deployment lists its templates per delivery kind
(`default` serves the kinds without their own), each with the approved `content` exactly as
registered and, per variable, what fills it:

- `text`: the message text (warnbus's rendered warning: level, hazard, headline, area,
  instruction, how to confirm). The template's text variables share it in order, each
  within the provider's per-variable limit; what does not fit goes into further messages
  (SMS, up to `max_messages`) or is shortened at sentence boundaries, keeping the headline;
- `level`: 红色 / 橙色 / 黄色 / 蓝色;
- `kind`: 预警 / 预警更新 / 再次提醒 / 叫应升级 / 预警解除 / 叫应提醒.

The unit (发布单位) is the approved signature (`sign_name`). Links are never put in a
variable (both providers refuse URLs there). A template that breaks the provider's rules,
or cannot carry the message, is a ConfigError naming it at start-up, not a refusal at the
first warning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import msgspec

from channels.cn_common import without_links
from channels.textfit import fit_sentences
from warnbus.plugin import LEVEL_NAMES_ZH, ConfigError, Delivery, DeliveryKind

Source = Literal["text", "level", "kind"]
SOURCES: frozenset[str] = frozenset({"text", "level", "kind"})
KIND_NAMES_ZH: Mapping[DeliveryKind, str] = {
    DeliveryKind.WARNING: "预警", DeliveryKind.UPDATE: "预警更新",
    DeliveryKind.REDIAL: "再次提醒", DeliveryKind.ESCALATION: "叫应升级",
    DeliveryKind.CANCEL: "预警解除", DeliveryKind.NOTICE: "叫应提醒",
    DeliveryKind.FEEDBACK: "反馈提醒",
}
MIN_TEXT_CHARS = 20  # a template must carry at least a headline's worth of the message
_LABEL = 5  # "(1/3)" in front of each part of a text sent as several messages
_SENTENCE = re.compile(r"[^。！？；]*[。！？；]+|[^。！？；]+$")
#: `${name}` (Aliyun) and `{1}` (Tencent) placeholders.
ALIYUN_VAR = re.compile(r"\$\{([A-Za-z][A-Za-z0-9_]*)\}")
TENCENT_VAR = re.compile(r"\{(\d+)\}")


class TemplateConfig(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One approved template: its code, its content as registered, what fills each variable."""

    code: str
    content: str
    params: dict[str, str] = {}


@dataclass(frozen=True)
class TemplateRules:
    """A provider's rules for one kind of template (SMS or voice)."""

    provider: str  # "Aliyun" / "Tencent", for messages
    placeholder: re.Pattern[str]
    positional: bool  # Tencent: {1}..{n}, filled as a list in that order
    var_max: int  # characters per variable
    var_total_max: int | None = None  # characters over all variables (Aliyun voice: 250)
    content_max: int = 500


@dataclass(frozen=True)
class Message:
    """One message to send: the template and its variables' values (in template order)."""

    template: Template
    values: tuple[tuple[str, str], ...]  # (variable, value)

    def as_dict(self) -> dict[str, str]:
        return dict(self.values)

    def as_list(self) -> list[str]:
        return [v for _, v in self.values]


@dataclass(frozen=True)
class Template:
    """A validated template of one delivery kind (or the default)."""

    key: str
    code: str
    content: str
    variables: tuple[tuple[str, Source], ...]  # in template order
    rules: TemplateRules

    @property
    def text_vars(self) -> int:
        return sum(1 for _, s in self.variables if s == "text")

    def capacity(self) -> int:
        """Characters of the message text one message of this template carries."""
        per = self.text_vars * self.rules.var_max
        if self.rules.var_total_max is not None:
            fixed = sum(4 for _, s in self.variables if s != "text")  # longest kind name
            per = min(per, self.rules.var_total_max - fixed)
        return per

    def fill(self, text: str, d: Delivery) -> Message:
        chunks = _spread(text, self.text_vars, self.rules.var_max)
        values: list[tuple[str, str]] = []
        for name, source in self.variables:
            if source == "text":
                values.append((name, chunks.pop(0)))
            elif source == "level":
                values.append((name, LEVEL_NAMES_ZH[d.level]))
            else:
                values.append((name, KIND_NAMES_ZH[d.kind]))
        return Message(self, tuple(values))


class TemplateSet:
    """A channel's templates, checked against the provider's rules at start-up."""

    def __init__(self, channel: str, raw: Mapping[str, TemplateConfig],
                 rules: TemplateRules) -> None:
        self.channel = channel
        self.rules = rules
        self._by_key = {key: _compile(channel, key, t, rules) for key, t in raw.items()}
        known = {k.value for k in DeliveryKind} | {"default"}
        for key in self._by_key:
            if key not in known:
                raise ConfigError(f"channels.{channel}.templates.{key}: not a delivery kind "
                                  f"(one of: {', '.join(sorted(known))})")
        missing = [k.value for k in DeliveryKind if self._pick(k) is None]
        if missing:
            raise ConfigError(f"channels.{channel}.templates: no template for "
                              f"{', '.join(missing)} (add them or a 'default')")

    def _pick(self, kind: DeliveryKind) -> Template | None:
        return self._by_key.get(kind.value) or self._by_key.get("default")

    def for_kind(self, kind: DeliveryKind) -> Template:
        t = self._pick(kind)
        assert t is not None  # every kind was checked at start-up
        return t

    @property
    def templates(self) -> list[Template]:
        return list(self._by_key.values())

    def messages(self, d: Delivery, max_messages: int = 1) -> list[Message]:
        """The delivery as messages of its kind's template (more than one only for SMS)."""
        t = self.for_kind(d.kind)
        text = without_links(d.text, d.ack_url)
        return [t.fill(part, d) for part in split_text(text, t.capacity(), max_messages)]


def _compile(channel: str, key: str, t: TemplateConfig, rules: TemplateRules) -> Template:
    where = f"channels.{channel}.templates.{key}"

    def bad(why: str) -> ConfigError:
        return ConfigError(f"{where} ({t.code or 'no code'}): {why}")

    if not t.code.strip():
        raise bad("code must not be empty")
    if len(t.content) > rules.content_max:
        raise bad(f"content has {len(t.content)} characters; {rules.provider} allows "
                  f"{rules.content_max}")
    names = rules.placeholder.findall(t.content)
    if not names:
        raise bad("content has no variable: it cannot carry the warning")
    if not rules.placeholder.sub("", t.content).strip(" \t\r\n，。,.:：;；!！"):
        raise bad(f"content is made only of variables, which {rules.provider} does not approve")
    if rules.positional:
        wanted = [str(i) for i in range(1, len(set(names)) + 1)]
        if sorted(set(names), key=int) != wanted:
            raise bad("variables must be numbered {1}..{n} without gaps")
    order = list(dict.fromkeys(sorted(names, key=int) if rules.positional else names))
    unknown = sorted(set(t.params) - set(order))
    if unknown:
        raise bad(f"params name variables the content does not have: {', '.join(unknown)}")
    variables: list[tuple[str, Source]] = []
    for name in order:
        source = t.params.get(name)
        if source is None:
            raise bad(f"variable {name!r} has no source in params (one of: text, level, kind)")
        if source not in SOURCES:
            raise bad(f"variable {name!r}: unknown source {source!r} (one of: text, level, kind)")
        variables.append((name, source))  # type: ignore[arg-type]
    template = Template(key, t.code, t.content, tuple(variables), rules)
    if template.text_vars == 0:
        raise bad("no variable carries the message text (source 'text')")
    if template.capacity() < MIN_TEXT_CHARS:
        raise bad(f"its text variables carry {template.capacity()} characters "
                  f"({rules.var_max} each); at least {MIN_TEXT_CHARS} are needed")
    return template


def split_text(text: str, capacity: int, max_messages: int = 1) -> list[str]:
    """`text` as at most `max_messages` parts of at most `capacity` characters each.

    Whole sentences go into parts; several parts are labelled "(1/2)". When even that many
    parts cannot hold the text, middle sentences are dropped first (the headline and the
    confirmation instruction stay), then the text is cut with "…"."""
    if len(text) <= capacity:
        return [text]
    if max_messages <= 1:
        return [_cut(fit_sentences(text, lambda s: len(s) <= capacity, bound=capacity), capacity)]
    per = capacity - _LABEL
    budget = per * max_messages
    # Packed parts hold at most `budget` characters: no longer text can fit.
    text = _cut(fit_sentences(text, lambda s: len(_pack(s, per)) <= max_messages,
                              bound=budget), budget)
    parts = _pack(text, per)[:max_messages]
    return [f"({i}/{len(parts)}){p}" for i, p in enumerate(parts, 1)]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _pack(text: str, per: int) -> list[str]:
    """Sentences packed greedily into parts of at most `per` characters."""
    parts: list[str] = []
    current = ""
    for sentence in _SENTENCE.findall(text):
        while len(sentence) > per:  # a sentence longer than a part is split where it must
            room = per - len(current)
            parts.append(current + sentence[:room])
            current, sentence = "", sentence[room:]
        if len(current) + len(sentence) > per:
            parts.append(current)
            current = ""
        current += sentence
    if current:
        parts.append(current)
    return [p for p in parts if p]


def _spread(text: str, n: int, var_max: int) -> list[str]:
    """`text` over `n` variables in order, each 1..var_max characters (none may be empty)."""
    if len(text) < n:  # too short to give every variable a character: pad with 。
        text = text + "。" * (n - len(text))
    base, extra = divmod(len(text), n)
    sizes = [base + 1] * extra + [base] * (n - extra)
    assert max(sizes) <= var_max, "the caller keeps the text within the template's capacity"
    out, at = [], 0
    for size in sizes:
        out.append(text[at:at + size])
        at += size
    return out
