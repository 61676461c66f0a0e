"""The requests of the trust walk (test_sec_walk.py): what a row sends, given the world and the
credential kind it is walked with.

A maker builds the request a holder of that kind would send: the same request for every kind
(the credential is added by `World.send`), except where the credential is part of the request
itself: a provider's signature, an ack link's path, a secret push path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import aiohttp
from seckit import cap_xml, twilio_signature, wecom_event
from walkkit import (
    BASE,
    CAP_TYPE,
    IN_101,
    IN_BOTH,
    PROVIDER,
    ROLES_HELD,
    TWILIO_TOKEN,
    Kind,
    Maker,
    Req,
    Thread,
    World,
    with_event,
)

from channels import wecom_crypto as proto
from channels.twilio_common import ids_query
from tests.channels_aliyun.aliyun_kit import HOOK_SECRET as ALIYUN_SECRET
from tests.channels_tencent.tencent_kit import HOOK_SECRET as TENCENT_SECRET
from tests.console.console_kit import red_form
from tests.engine.helpers import T0
from warnbus.domain.duty import schedule_digest, shift_day
from warnbus.domain.models import Role
from warnbus.flow.credentials import console_sender
from warnbus.flow.intake import root_alert_id

MAIN = "bureau-two"  # the thread routes are walked on: the bureau's, townships 101 and 102


def at(method: str, path: str, form: Callable[[World], object] | None = None) -> Maker:
    """`path` (a route's, its parameters filled in from the main thread) and a form."""

    async def make(w: World, kind: Kind) -> Req:
        t = await w.thread(MAIN)
        gid = sorted(await w.h.ctx.store.grids(t.cid))[0] if "{gid}" in path else ""
        url = path.format(alert_id=root_alert_id(t.cid), cid=t.cid, id=w.pending,
                          name="target", gid=gid)
        return Req(method, url, data=form(w) if form else None)

    return make


def compose(w: World) -> dict[str, str]:
    return red_form("", area=IN_101[0])  # the CSRF token rides in the header


def new_user(w: World) -> dict[str, str]:
    return {"username": w.ident("user"), "display": "新用户", "password": "walk-password-123",
            "role": "drafter"}


def settings(w: World) -> list[tuple[str, str]]:
    """The console's settings as they are (approval for red and orange, default prices)."""
    return [("approval", "red"), ("approval", "orange"), ("sms_price", "0.05"),
            ("voice_price", "0.12")]


def upload(w: World) -> aiohttp.FormData:
    data = aiohttp.FormData()
    data.add_field("file", b"not a zip", filename="registry.zip",
                   content_type="application/zip")
    return data


def workbook(w: World) -> aiohttp.FormData:
    """The empty template: a staged import that changes nothing."""
    from warnbus.registry_io.export import template_workbook

    data = aiohttp.FormData()
    data.add_field("workbook", template_workbook(), filename="台账.xlsx",
                   content_type="application/octet-stream")
    return data


async def person_as_is(w: World, kind: Kind) -> Req:
    """Save a person's form with what it holds: nothing to change."""
    person = w.h.ctx.registry.data.persons["p43062300128"]
    return Req("POST", f"/console/registry/people/{person.id}",
               data={"phone": person.phone, "role": person.role.value,
                     "v": str(w.h.ctx.registry_version)})


async def thread_or_lifted(w: World, name: str) -> Thread:
    """A live thread (walkkit.THREADS, "console"); "ended": the bureau's, cancelled;
    "lifted": the console's, cancelled."""
    if name in ("ended", "lifted"):
        t = w.ended if name == "ended" else w.lifted_console
        assert t is not None
        return t
    return await w.thread(name)


# --------------------------------------------------------------------------- the API


async def new_alert(w: World, kind: Kind) -> Req:
    return Req("POST", "/api/v1/alerts", CAP_TYPE, cap_xml(w.ident(), IN_BOTH, sent=T0))


def alert_as(sender: str | None, codes: tuple[str, ...], event: str = "暴雨") -> Maker:
    """A new Alert of `sender` (None: the console's) for township codes."""

    async def make(w: World, kind: Kind) -> Req:
        who = sender or console_sender(w.h.ctx.settings, w.h.ctx.registry)
        body = with_event(cap_xml(w.ident(), codes, sent=T0, sender=who), event)
        return Req("POST", "/api/v1/alerts", CAP_TYPE, body)

    return make


def continued(name: str, msg_type: str) -> Maker:
    """An Update or Cancel of a live thread, as its sender would send it (the same sender,
    areas and hazard, referencing the thread)."""

    async def make(w: World, kind: Kind) -> Req:
        t = await w.thread(name)
        return Req("POST", "/api/v1/alerts", CAP_TYPE, t.message(msg_type, w.ident()))

    return make


def read(name: str, tail: str = "") -> Maker:
    async def make(w: World, kind: Kind) -> Req:
        t = await w.thread(name)
        return Req("GET", f"/api/v1/alerts/{root_alert_id(t.cid)}{tail}")

    return make


def confirm_in(township: str) -> Maker:
    """An officer's confirmation (API) of a person of the main thread in `township`."""

    async def make(w: World, kind: Kind) -> Req:
        t, (person,) = await w.unconfirmed(MAIN, township)
        body = {"campaign_id": t.cid, "person_id": person, "reason": "电话回拨已确认"}
        return Req("POST", "/api/v1/acks", json=body)

    return make


def ack_link(method: str) -> Maker:
    async def make(w: World, kind: Kind) -> Req:
        t, (person, other) = await w.unconfirmed(MAIN, n=2)
        return Req(method, f"/ack/{w.link(kind, t.cid, person, other)}")

    return make


# --------------------------------------------------------------------------- reports after the ack

REPORT = {"kind": "evacuated", "count": "12"}  # 已转移 12 人


async def reporter(w: World, name: str, whom: str, township: str) -> tuple[Thread, str]:
    """Whom a report is for: a person of thread `name` in `township` who has "confirmed",
    one who has not ("unconfirmed"), a person the campaign does not call ("outsider"); for
    "ended", the person of the cancelled thread who had confirmed before its 解除."""
    if name == "ended":
        assert w.ended is not None
        return w.ended, w.ended_reporter
    if whom == "outsider":
        return await w.thread(name), w.outsider()
    if whom == "unconfirmed":
        t, (pid,) = await w.unconfirmed(name, township)
        return t, pid
    return await w.confirmed(name, township)


def report_for(name: str = MAIN, whom: str = "confirmed", township: str = "430623101",
               console: bool = False, **extra: str) -> Maker:
    """A report (12 people moved) for a person (`reporter`), entered by API (`POST
    /api/v1/feedback`) or through the console's form on the board; `extra`: more fields
    (a `by`, which no request may set)."""

    async def make(w: World, kind: Kind) -> Req:
        t, pid = await reporter(w, name, whom, township)
        fields = {"person_id": pid, **REPORT, **extra}
        if console:
            return Req("POST", f"/console/campaigns/{t.cid}/feedback", data=fields)
        return Req("POST", "/api/v1/feedback", json={"campaign_id": t.cid, **fields})

    return make


def ack_report(name: str = MAIN, whom: str = "confirmed") -> Maker:
    """A report by the person's ack link (`POST /ack/{token}/feedback`), the link `kind`
    holds for them (anyone else: junk)."""

    async def make(w: World, kind: Kind) -> Req:
        t, pid = await reporter(w, name, whom, "430623101")
        other = next(p for p in sorted(await w.h.ctx.store.targets(t.cid)) if p != pid)
        return Req("POST", f"/ack/{w.link(kind, t.cid, pid, other)}/feedback", json=REPORT)

    return make


# --------------------------------------------------------------------------- the console


async def logout(w: World, kind: Kind) -> Req:
    # Signing out ends every session of the user: a user of its own, with the kind's roles.
    return Req("POST", "/console/logout",
               session=await w.fresh_session(kind) if kind in ROLES_HELD else None)


def confirm_by_hand(name: str, outsider: bool = False) -> Maker:
    async def make(w: World, kind: Kind) -> Req:
        if name in ("ended", "lifted") or outsider:
            t = await thread_or_lifted(w, name)
            pid = w.outsider() if outsider else (await w.people(t.cid))[0]
        else:
            t, (pid,) = await w.unconfirmed(name)
        return Req("POST", f"/console/campaigns/{t.cid}/ack",
                   data={"person": pid, "reason": "电话回拨已确认"})

    return make


def door_to_door(name: str, outsider: bool = False) -> Maker:
    async def make(w: World, kind: Kind) -> Req:
        t = await thread_or_lifted(w, name)
        grid = w.outsider_grid() if outsider else sorted(await w.h.ctx.store.grids(t.cid))[0]
        return Req("POST", f"/console/campaigns/{t.cid}/door", data={"grid": grid})

    return make


def door_result(name: str, outsider: bool = False) -> Maker:
    """A door-to-door result entered at the console for a grid of the thread (or beyond it)."""

    async def make(w: World, kind: Kind) -> Req:
        t = await thread_or_lifted(w, name)
        grid = w.outsider_grid() if outsider else sorted(await w.h.ctx.store.grids(t.cid))[0]
        return Req("POST", f"/console/campaigns/{t.cid}/door/result",
                   data={"grid": grid, "outcome": "told", "note": "已逐户告知"})

    return make


def door_link(method: str) -> Maker:
    """The page of the person sent door to door for a grid of the main thread: its link."""

    async def make(w: World, kind: Kind) -> Req:
        t = await w.thread(MAIN)
        grid, other = sorted(await w.h.ctx.store.grids(t.cid))[:2]
        person = w.h.ctx.registry.chain(grid, at=w.h.clock.now())[2] or "nobody"
        data = {"outcome": "told", "note": "已逐户告知"} if method == "POST" else None
        return Req(method, f"/door/{w.door_link(kind, t.cid, grid, other, person)}", data=data)

    return make


#: The reason a console action on a campaign gives (`campaign_action`).
ACTION_REASONS = {"stop": "误报，停止叫应", "cancel": "险情解除"}


def campaign_action(action: str, name: str) -> Maker:
    """A console action on a thread's campaign with its reason: 停止叫应 (stop) or Cancel."""

    async def make(w: World, kind: Kind) -> Req:
        t = await thread_or_lifted(w, name)
        return Req("POST", f"/console/campaigns/{t.cid}/{action}",
                   data={"reason": ACTION_REASONS[action]})

    return make


def on_behalf(name: str) -> Maker:
    """Approve a Cancel of another sender's thread that dora drafted on the county's behalf."""

    async def make(w: World, kind: Kind) -> Req:
        t = await w.thread(name)
        r = await w.http.post(f"/console/campaigns/{t.cid}/cancel", data={"reason": "代为解除"},
                              headers=w.credential(Kind.DRAFTER), allow_redirects=False)
        assert r.status == 303 and "/console/drafts/df_" in r.headers["Location"], r.headers
        draft = r.headers["Location"].split("/console/drafts/")[1].split("?")[0]
        return Req("POST", f"/console/drafts/{draft}/approve")

    return make


def console_update(name: str) -> Maker:
    async def make(w: World, kind: Kind) -> Req:
        t = await thread_or_lifted(w, name)
        return Req("POST", "/console/compose",
                   data=red_form("", level="yellow", kind="update", campaign=t.cid,
                                  area=IN_101[0]))

    return make


def update_form(name: str) -> Maker:
    async def make(w: World, kind: Kind) -> Req:
        return Req("GET", f"/console/compose?campaign={(await w.thread(name)).cid}")

    return make


def drafted(action: str, own: bool = False, method: str = "POST") -> Maker:
    """Approve, reject, withdraw or edit a pending draft: dora's, or (own) the requester's."""

    async def make(w: World, kind: Kind) -> Req:
        draft = await w.own_draft(kind) if own else await w.draft()
        data = {"reason": "区域有误"} if method == "POST" else None
        return Req(method, f"/console/drafts/{draft}/{action}", data=data)

    return make


# --------------------------------------------------------------------------- the providers

PHONE = "+8613812345678"
SMS_STATUS = {"MessageSid": "SM" + "3" * 32, "MessageStatus": "delivered", "To": PHONE}
SMS_REPLY = {"MessageSid": "SM" + "4" * 32, "AccountSid": "AC" + "2" * 32, "From": PHONE,
             "To": "+8673012110", "Body": "1", "NumMedia": "0"}
CALL = {"CallSid": "CA" + "5" * 32, "CallStatus": "completed", "Digits": "1", "To": PHONE}
KEYED_REPORT = {**CALL, "Digits": "412#"}  # 转移 12 人, keyed after the confirmation
ALIYUN_REPORT = [{"biz_id": "walk-1", "phone_number": "13812345678", "success": True}]
ALIYUN_UP = [{"phone_number": "13812345678", "content": "1", "sequence_id": 7,
              "send_time": "2026-07-15 13:31:00"}]
ALIYUN_CALL = [{"call_id": "walk-call", "status_code": "200000", "callee": "13812345678"}]
TENCENT_STATUS = [{"sid": "walk-1", "mobile": "13812345678", "report_status": "SUCCESS"}]
TENCENT_REPLY = {"mobile": "13812345678", "text": "1", "time": 1784093460, "extend": ""}
TENCENT_CALL = {"voiceprompt_callback": {"callid": "walk-call", "mobile": "13812345678",
                                         "result": "0"}}
#: The pushes of the mainland providers: (channel, secret path segment, hook, a push).
PUSHES: tuple[tuple[str, str, str, object], ...] = (
    ("aliyun-sms", ALIYUN_SECRET, "sms-report", ALIYUN_REPORT),
    ("aliyun-sms", ALIYUN_SECRET, "sms-up", ALIYUN_UP),
    ("aliyun-voice", ALIYUN_SECRET, "voice-report", ALIYUN_CALL),
    ("aliyun-voice", ALIYUN_SECRET, "voice-call-report", ALIYUN_CALL),
    ("tencent-sms", TENCENT_SECRET, "sms-status", TENCENT_STATUS),
    ("tencent-sms", TENCENT_SECRET, "sms-reply", TENCENT_REPLY),
    ("tencent-voice", TENCENT_SECRET, "voice", TENCENT_CALL),
)


def twilio(channel: str, hook: str, form: dict[str, str], reports: bool = False) -> Maker:
    """A Twilio callback: signed with the account's auth token, or another account's.
    `reports`: it names the call of a person of the main thread who has confirmed (the
    query of the report's Gather, as `TwilioVoice._ask_report` gives it)."""

    async def make(w: World, kind: Kind) -> Req:
        path = f"/hooks/{channel}/{hook}"
        if reports:
            t, pid = await w.confirmed(MAIN)
            path += "?" + ids_query(t.cid, "walk-call", pid)
        token = {Kind.SIGNED: TWILIO_TOKEN, Kind.FORGED: "another-account-token"}.get(kind)
        headers = twilio_signature(token, BASE + path, form) if token else {}
        return Req("POST", path, headers, form)

    return make


def wecom(method: str) -> Maker:
    """WeCom's URL check (GET) or an event (POST), sealed with the callback token or another;
    without a signature for anyone else."""

    async def make(w: World, kind: Kind) -> Req:
        cfg = w.h.app.engine.channels["wecom-app"].config  # type: ignore[attr-defined]
        token = {Kind.SIGNED: None, Kind.FORGED: "not-the-callback-token"}
        if kind not in token:
            return Req(method, "/hooks/wecom-app/callback", data=b"<xml></xml>")
        if method == "GET":
            crypto = proto.WeComCrypto(token[kind] or str(cfg.token), str(cfg.encoding_aes_key),
                                       cfg.corp_id)
            ts = str(int(time.time()))  # WeCom's clock: a stale timestamp is a replay
            echo, sig = crypto.seal(b"walk-echo", ts, "7")
            query = f"msg_signature={sig}&timestamp={ts}&nonce=7&echostr={echo}"
            return Req("GET", "/hooks/wecom-app/callback?" + query.replace("+", "%2B"))
        params, body = wecom_event(cfg, "walker", "", token=token[kind], key="walk")
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return Req("POST", "/hooks/wecom-app/callback?" + query, data=body)

    return make


def pushed(channel: str, secret: str, hook: str, payload: object) -> Maker:
    """A push of a mainland provider: its credential is the secret path, from its network;
    forged: the right path from another network; anyone else does not know the path."""

    async def make(w: World, kind: Kind) -> Req:
        if kind in PROVIDER:
            return Req("POST", f"/hooks/{channel}/{secret}/{hook}", json=payload,
                       far=kind is Kind.FORGED)
        return Req("POST", f"/hooks/{channel}/not-the-secret-0000/{hook}", json=payload)

    return make


#: The township whose duty the walk changes, and the sample county's draft roster version.
DUTY_TOWN, DRAFT_ROSTER = "430623101000", "430623-2027-flood"


async def duty_change(w: World, kind: Kind) -> Req:
    """An override of today's township duty shift by another duty officer of the township."""
    ctx = w.h.ctx
    book = await ctx.duty_book()
    day = shift_day(ctx.clock.now())
    now = book.shift(DUTY_TOWN, Role.TOWNSHIP_DUTY, day).person
    other = next(p.id for p in sorted(ctx.registry.data.persons.values(), key=lambda p: p.id)
                 if p.role is Role.TOWNSHIP_DUTY and p.region == DUTY_TOWN and p.id != now)
    return Req("POST", "/console/duty/change", data={
        "desk": f"{DUTY_TOWN}|township_duty", "day": day.isoformat(), "kind": "override",
        "person": other, "was": now or "", "reason": "病假替班"})


async def roster_approval(w: World, kind: Kind) -> Req:
    roster = w.h.ctx.registry.data.rosters[DRAFT_ROSTER]  # as the page shows it
    return Req("POST", f"/console/duty/rosters/{DRAFT_ROSTER}/approve",
               data={"digest": schedule_digest(roster)})
