"""What a duty officer does on a board: confirm a person by hand, send someone door to door,
enter what the visit found, stop the campaign's calling. Each answers with a redirect back
to the board (or the grid's page) and a message saying what happened."""

from __future__ import annotations

from aiohttp import web

from warnbus.domain.doors import NOTE_MAX, DoorVia
from warnbus.domain.models import AckVia
from warnbus.errors import IngestError, NotFoundError
from warnbus.flow.acks import record_ack
from warnbus.flow.doors import record_door, result_of
from warnbus.web.console import html
from warnbus.web.console.actions import (
    CallsStopped,
    CampaignOver,
    order_door_to_door,
    stop_calling,
)
from warnbus.web.console.base import PREFIX, back, console, form, requires, user_of
from warnbus.web.console.board import campaign_meta


def _back_to(request: web.Request, cid: str, f: dict[str, str]) -> str:
    """The page a form came from: a grid's page (`from=grid`, a grid of the registry: the
    redirect names nothing the form made up) or the board."""
    grid = f.get("grid", "")
    if f.get("from") == "grid" and grid in console(request).app.ctx.registry.data.grids:
        return f"{PREFIX}/campaigns/{cid}/grids/{grid}"
    return f"{PREFIX}/campaigns/{cid}"


@requires("drafter", "approver")
async def manual_ack(request: web.Request) -> web.StreamResponse:
    ctx = console(request).app.ctx
    cid = request.match_info["cid"]
    f = await form(request)
    to = _back_to(request, cid, f)
    reason = f.get("reason", "").strip()
    if not reason:
        raise back(to, "人工确认须填写原因")
    res = await record_ack(ctx, cid, f.get("person", ""), AckVia.CONSOLE,
                           by=user_of(request).name, reason=reason)
    if res.code in (0, -1):
        raise NotFoundError("no such campaign or person in it")
    p = ctx.person(f.get("person", ""))
    if res.late:
        raise back(to, res.late_zh)
    if res.journaled:  # Redis unavailable: held in the journal, recorded when it returns
        raise back(to, f"已收到{p.name if p else ''}的人工确认，存储恢复后自动记录")
    raise back(to, f"已记录{p.name if p else ''}的人工确认" if res.recorded else "此人此前已确认")


@requires("drafter", "approver")
async def door(request: web.Request) -> web.StreamResponse:
    con = console(request)
    ctx = con.app.ctx
    cid = request.match_info["cid"]
    await campaign_meta(ctx, cid)
    f = await form(request)
    to = _back_to(request, cid, f)
    try:
        name = await order_door_to_door(ctx, cid, f.get("grid", ""), user_of(request).name,
                                        con.doors)
    except CampaignOver as e:
        raise back(to, f"该预警{html.ended_zh(e.state)}，未安排入户叫应") from e
    except CallsStopped as e:
        raise back(to, "该预警已停止叫应，未安排入户叫应") from e
    raise back(to, f"已通知{name}入户叫应，请其入户后登记结果")


@requires("drafter", "approver")
async def door_result(request: web.Request) -> web.StreamResponse:
    """A door-to-door result entered at the console; the grid closes on it."""
    ctx = console(request).app.ctx
    cid = request.match_info["cid"]
    await campaign_meta(ctx, cid)
    f = await form(request)
    to = _back_to(request, cid, f)
    try:
        outcome, note = result_of(f.get("outcome", ""), f.get("note", ""))
    except IngestError as e:
        raise back(to, door_problem(e, f.get("note", ""))) from e
    closed = await record_door(ctx, cid, f.get("grid", ""), outcome, note,
                               by=user_of(request).name, via=DoorVia.CONSOLE)
    label = html.DOOR_OUTCOME_ZH[outcome.value]
    raise back(to, f"已登记入户结果：{label}" + ("，该网格已结束叫应" if closed else ""))


def door_problem(e: IngestError, note: str) -> str:
    """Why a door-to-door result was refused, for whoever entered it (`flow.doors.result_of`)."""
    if e.field == "outcome":
        return "请选择入户结果"
    return "选择“其他”时须说明情况" if not note.strip() else f"说明最多{NOTE_MAX}字"


@requires("approver")
async def stop(request: web.Request) -> web.StreamResponse:
    """停止叫应: nobody of the campaign is called any more (an approver, with the reason)."""
    ctx = console(request).app.ctx
    cid = request.match_info["cid"]
    await campaign_meta(ctx, cid)
    reason = (await form(request)).get("reason", "").strip()
    to = f"{PREFIX}/campaigns/{cid}"
    if not reason:
        raise back(to, "停止叫应须填写原因")
    try:
        closed = await stop_calling(ctx, cid, user_of(request).name, reason[:500])
    except CampaignOver as e:
        raise back(to, f"该预警{html.ended_zh(e.state)}，无需停止叫应") from e
    except CallsStopped as e:
        raise back(to, f"该预警已于{html.bj(e.order.at, '%H:%M:%S')}由{e.order.by}停止叫应") from e
    raise back(to, f"已停止叫应，{closed}个网格不再呼叫")
