"""Reports after the ack over HTTP: the ack page's form and the console's entry.

`POST /ack/{token}/feedback` (the signed link's person, after confirming; form fields or
JSON) and `POST /api/v1/feedback` (an officer's token enters a report for a person it serves,
kept as entered by the token's name). A report's fields are checked as `Report` checks them;
an error names the field (`{"error": {"code", "message"}}`, in Chinese on the page).
"""

from __future__ import annotations

import html

import msgspec
import structlog
from aiohttp import web

from warnbus.domain.models import AckVia
from warnbus.flow.credentials import check_person
from warnbus.flow.feedback import FeedbackResult, record_feedback
from warnbus.web.api import APP, _page, authenticate, credential, error, link_of, ok
from warnbus.web.feedback_form import (
    REFUSED_ZH,
    BadReport,
    feedback_form,
    form_event,
    report_of,
)

log = structlog.get_logger("warnbus.web.feedback")

def _answer(res: FeedbackResult) -> web.Response:
    if res.kept:  # journaled (Redis unavailable): durable, recorded when it returns
        return ok({"status": res.status}, 200 if res.recorded else 202)
    if res.status == "not_confirmed":
        return error(409, res.status, "the person has not confirmed: a report comes after the ack")
    if res.status == "too_many":
        return error(429, res.status, "this person has made the most reports one campaign keeps")
    return error(404, res.status, "no such campaign or person in it")


async def _fields(request: web.Request) -> dict[str, str]:
    if request.content_type == "application/json":
        try:
            raw = msgspec.json.decode(await request.read(), type=dict[str, str | int | None])
        except msgspec.DecodeError as e:
            raise BadReport("body", f"不是有效的 JSON 对象（{e}）") from None
        return {k: "" if v is None else str(v) for k, v in raw.items()}
    form = await request.post()
    return {k: v for k, v in form.items() if isinstance(v, str)}


async def ack_feedback_post(request: web.Request) -> web.Response:
    """The signed link's person reports (after confirming)."""
    app = request.app[APP]
    token = request.match_info["token"]
    link = await link_of(request)
    if isinstance(link, web.Response):
        return link
    cid, pid = link
    page = "text/html" in request.headers.get("Accept", "")
    try:
        fields = await _fields(request)
        report = report_of(fields)
        event = form_event(fields, report)
    except BadReport as e:
        if page:
            return web.Response(status=422, text=_page("报送未成功", html.escape(str(e))),
                                content_type="text/html")
        return error(422, "invalid", str(e))
    # The form's token names the report: the same form posted again is answered as the
    # first was and kept once.
    res = await record_feedback(app.ctx, cid, pid, report, AckVia.LINK, event=event)
    if not page:
        return _answer(res)
    if res.kept:
        body = f"<p>已报送：{html.escape(report.zh)}，谢谢。</p>" + feedback_form(token)
        return web.Response(text=_page("已报送", body), content_type="text/html")
    status = {"not_confirmed": 409, "too_many": 429}.get(res.status, 404)
    return web.Response(status=status, text=_page("报送未成功", REFUSED_ZH[res.status]),
                        content_type="text/html")


async def post_feedback(request: web.Request) -> web.Response:
    """A report entered for a person (phoned in): kept as entered by the token's name."""
    app = request.app[APP]
    token = authenticate(request, "officer")
    try:
        fields = await _fields(request)
        if "by" in fields:
            raise BadReport("by", "who entered it comes from the credential (the token's name); "
                            "leave `by` out")
        cid, pid = fields.pop("campaign_id", ""), fields.pop("person_id", "")
        if not cid or not pid:
            raise BadReport("campaign_id" if not cid else "person_id", "required")
        report = report_of(fields)
        event = form_event(fields, report)
    except BadReport as e:
        return error(422, "invalid", str(e))
    check_person(app.ctx.registry, credential(request, token), pid)
    return _answer(await record_feedback(app.ctx, cid, pid, report, AckVia.CONSOLE,
                                         by=token.name, event=event))


def add_routes(web_app: web.Application) -> None:
    web_app.router.add_post("/ack/{token}/feedback", ack_feedback_post)
    web_app.router.add_post("/api/v1/feedback", post_feedback)
