"""A report after the ack from form fields (the ack page, the console), and the page's form.

Kept apart from the handlers (`web/feedback.py`) so that the console can use it too.
"""

from __future__ import annotations

import html
import re
import secrets
from collections.abc import Mapping

import msgspec

from warnbus.domain.feedback import FEEDBACK_ZH, FeedbackKind, Report

#: Why a report was not kept, as a person reads it (FeedbackResult.status).
REFUSED_ZH = {"not_confirmed": "请先确认收到预警，再报送。", "too_many": "报送次数已达上限。",
              "not_target": "未找到对应的预警或人员。", "no_campaign": "未找到对应的预警或人员。"}
_FIELDS = ("kind", "count", "text", "photo")
#: The form's one-time token (a hidden field each rendered form carries): a report posted
#: twice with it (a double click, a resent or replayed request) is kept once.
FORM_ID = "form_id"
_FORM_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_KIND_NAMES = "、".join(f"{k.value}（{FEEDBACK_ZH[k]}）" for k in FeedbackKind)


class BadReport(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def report_of(fields: Mapping[str, str]) -> Report:
    """A report from form fields or JSON values (all as text); BadReport names the field."""
    unknown = sorted(set(fields) - {*_FIELDS, "campaign_id", "person_id", "_csrf", FORM_ID})
    if unknown:
        raise BadReport(unknown[0], "不认识的字段")
    raw_kind = str(fields.get("kind", "")).strip()
    try:
        kind = FeedbackKind(raw_kind)
    except ValueError:
        raise BadReport("kind", f"报送类型须是 {_KIND_NAMES} 之一") from None
    count: int | None = None
    raw_count = str(fields.get("count", "") or "").strip()
    if kind is FeedbackKind.EVACUATED:
        if not raw_count.isdigit() or not raw_count.isascii():
            raise BadReport("count", "已转移人数须是 0 或正整数")
        count = int(raw_count)
    elif raw_count:
        raise BadReport("count", "只有“已转移”报送人数")
    text = str(fields.get("text", "") or "").strip()
    photo = str(fields.get("photo", "") or "").strip()
    if kind is FeedbackKind.HAZARD and not text:
        raise BadReport("text", "请填写险情/灾情情况")
    if kind is not FeedbackKind.HAZARD and (text or photo):
        raise BadReport("text" if text else "photo", "只有险情/灾情报送文字和照片链接")
    try:
        return Report(kind, count, text, photo)
    except ValueError as e:
        field = str(e).split(":", 1)[0]
        raise BadReport(field if field in _FIELDS else "kind", f"不符合要求（{e}）") from None


def form_event(fields: Mapping[str, str], report: Report) -> str:
    """The event id of `report` posted with the form's token in `fields` ("" without one):
    the token and what it reports, so the same form sent again is the same event, and the
    form changed and sent again (back, edit, send) another report, never one answered as
    kept and dropped. BadReport when the token is not one the form would carry."""
    raw = fields.get(FORM_ID, "")
    if not raw:
        return ""
    if not _FORM_ID.fullmatch(raw):
        raise BadReport(FORM_ID, "表单标识无效，请刷新页面后重新报送")
    return f"form|{raw}|{msgspec.json.encode(report).decode()}"


def form_id_field() -> str:
    """A fresh one-time token of a report form, as its hidden field."""
    return f'<input type="hidden" name="{FORM_ID}" value="{secrets.token_urlsafe(18)}">'


def feedback_form(token: str) -> str:
    """The ack page's form after confirming: 到岗, 转移 N 人, 险情 (words, photo link), 零报告."""
    t = html.escape(token)
    options = "".join(f'<option value="{k.value}">{FEEDBACK_ZH[k]}</option>' for k in FeedbackKind)
    return (f'<section id="feedback"><h2>报送反馈</h2>'
            f'<form method="post" action="/ack/{t}/feedback">{form_id_field()}'
            f'<p><label>类型 <select name="kind">{options}</select></label></p>'
            '<p><label>已转移人数 <input name="count" inputmode="numeric" size="6"></label></p>'
            '<p><label>险情/灾情 <input name="text" maxlength="500"></label></p>'
            '<p><label>照片链接 <input name="photo" type="url" maxlength="500"></label></p>'
            '<button style="font-size:1.5em">报送</button></form></section>')
