"""Every credential against every route and every thread action (issue 14: the trust walk).

Two tables, one row per (route or action, credential) with the status it must get:

- `ROUTES`: every route of the real web app (API, ack links, public routes, the console, and
  the provider callbacks of every channel kind that takes them). A route of the app that the
  table does not name fails `test_every_route_has_an_access_decision`: a route added later
  needs its access decided here first.
- `ACTIONS`: what can be done to a thread (Alert, Update, Cancel; for its own sender, another
  sender, beyond its regions or categories; by API and through the console), and reading one.
  An action that is one route only (registry import and export, the admin pages) is walked
  in `ROUTES` already.

A row that is refused, or only reads, must leave Redis exactly as it was (`World.state`: every
key but the rate limiters' buckets). `Refused(303)`: a console form answered with a redirect
and a message, nothing done. Rows share one world (walkkit) and pass in any order: a row acts
on what it makes itself (a draft, a session, an alert) or on a live thread that `World.thread`
replaces once a row has ended it. Expected statuses follow docs/security.md's actors and
DESIGN sections 9 and 11; the tables in docs/security.md are `markdown()` of these (run this
file as a script to print them).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio
from redis import Redis
from seckit import SENDER, TOWN_SENDER
from walkkit import (
    HOLDERS,
    IN_101,
    IN_102,
    LINKS,
    PROVIDER,
    ROLES_HELD,
    TOKENS_HELD,
    Kind,
    Maker,
    World,
    open_world,
)
from walkreq import (
    CALL,
    KEYED_REPORT,
    MAIN,
    PUSHES,
    SMS_REPLY,
    SMS_STATUS,
    ack_link,
    ack_report,
    alert_as,
    at,
    campaign_action,
    compose,
    confirm_by_hand,
    confirm_in,
    console_update,
    continued,
    door_link,
    door_result,
    door_to_door,
    drafted,
    duty_change,
    logout,
    new_alert,
    new_user,
    on_behalf,
    person_as_is,
    pushed,
    read,
    report_for,
    roster_approval,
    settings,
    twilio,
    update_form,
    upload,
    wecom,
    workbook,
)

from warnbus.runtime.services import ManagedService

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(redis_service: ManagedService,
                mosquitto_service: ManagedService) -> AsyncIterator[World]:
    """One world for the module, on the session's Redis (flushed first) and broker."""
    with Redis.from_url(redis_service.url) as r:
        r.flushall()
    async with open_world(redis_service.url, mosquitto_service.url) as w:
        yield w


# --------------------------------------------------------------------------- expectations


class Refused(int):
    """A status that means "refused": nothing may change (a console form's 303 with a
    message, where its 303 would otherwise mean done)."""


NAMES = {"feed": Kind.FEED, "wide": Kind.WIDE, "town": Kind.TOWN, "officer": Kind.OFFICER,
         "town_officer": Kind.TOWN_OFFICER, "local": Kind.LOCAL, "drafter": Kind.DRAFTER,
         "approver": Kind.APPROVER, "admin": Kind.ADMIN}
Expect = dict[Kind, int]


def public(status: int) -> Expect:
    """The same for everyone."""
    return dict.fromkeys(HOLDERS, status)


def api(**allowed: int) -> Expect:
    """A bearer-token route: 401 without a valid token (a console session is none), 403 for
    a token without the right; `allowed` by token (feed, wide, town, officer, ...)."""
    out = dict.fromkeys(HOLDERS, 401) | dict.fromkeys(TOKENS_HELD, 403)
    return out | {NAMES[k]: v for k, v in allowed.items()}


def console(**allowed: int) -> Expect:
    """A console route: 401 without a live session (a token is none; a disabled user's old
    session is none), 403 for a role without the right; `allowed` by role."""
    out = dict.fromkeys(HOLDERS, 401) | dict.fromkeys(ROLES_HELD, 403)
    return out | {NAMES[k]: v for k, v in allowed.items()}


SIGNED_IN = console(drafter=200, approver=200, admin=200)
OPERATOR = console(drafter=303, approver=303)  # who acts on a campaign: not a bare admin


def hook(unsigned: int = 403) -> Expect:
    """A provider callback: the provider's signature 200, a forged one 403; anyone else
    (whatever token or session they hold) `unsigned`."""
    return public(unsigned) | {Kind.SIGNED: 200, Kind.FORGED: 403}


def ack(status: int) -> Expect:
    """An ack link route: the person's own link `status`; a forged, expired or re-pointed
    link 403, and so is anyone without one (whatever token or session they hold)."""
    return public(403) | dict.fromkeys(LINKS, 403) | {Kind.LINK: status}


def may_change(method: str, status: int) -> bool:
    return method == "POST" and status < 400 and not isinstance(status, Refused)


@dataclass(frozen=True)
class Row:
    """A route (method and path as the app lists it) or an action, with who gets what."""

    what: str
    make: Maker
    expect: Expect


def route(what: str, expect: Expect, make: Maker | None = None) -> Row:
    method, path = what.split(" ", 1)
    return Row(what, make or at(method, path), expect)


HEALTH = public(200) | {Kind.BAD: 401, Kind.REVOKED: 401, Kind.FEED: 403, Kind.WIDE: 403,
                        Kind.TOWN: 403}

ROUTES: tuple[Row, ...] = (
    # The API (DESIGN section 9): feeds publish, officers read and confirm.
    route("POST /api/v1/alerts", api(wide=202, local=202), new_alert),
    route("GET /api/v1/alerts/{alert_id}", api(officer=200, town_officer=200, local=200)),
    route("GET /api/v1/alerts/{alert_id}/record", api(officer=200, town_officer=200, local=200)),
    route("POST /api/v1/acks", api(officer=200, town_officer=200, local=200),
          confirm_in("430623101")),
    route("GET /api/v1/openapi.json", public(200)),
    route("GET /healthz", HEALTH),  # up/down for anyone; the detail for an officer's token
    route("GET /metrics", public(200)),
    # Ack links: the link is the credential.
    route("GET /ack/{token}", ack(200), ack_link("GET")),  # a page with a button: no change
    route("POST /ack/{token}", ack(200), ack_link("POST")),
    route("POST /ack/{token}/feedback", ack(200), ack_report()),  # after confirming
    # Reports entered for a person (phoned in): as the token's name, inside its regions.
    route("POST /api/v1/feedback", api(officer=200, town_officer=200, local=200),
          report_for()),
    # What warnbus publishes (public-scope alerts only).
    route("GET /cap/feed.atom", public(200)),
    route("GET /cap/alerts/{alert_id}.xml", public(200)),
    # The console: sign-in is open; everything else needs a session and a role.
    route("GET /", public(302)),
    route("GET /console", public(302)),
    route("GET /console/login", public(200)),
    route("POST /console/login", public(403)),  # no form token (double submit): refused
    route("GET /console/static", public(200), at("GET", "/console/static/console.css")),
    # The page of a person sent door to door: the link is the credential.
    route("GET /door/{token}", ack(200), door_link("GET")),  # a page with a form: no change
    route("POST /door/{token}", ack(200), door_link("POST")),
    route("POST /console/logout", console(drafter=303, approver=303, admin=303), logout),
    route("GET /console/admin", console(admin=200)),
    route("POST /console/admin/users", console(admin=303),
          at("POST", "/console/admin/users", new_user)),
    route("POST /console/admin/users/{name}", console(admin=303),
          at("POST", "/console/admin/users/{name}", lambda w: {"role": "drafter"})),
    route("POST /console/admin/users/{name}/unlock", console(admin=303)),
    route("POST /console/admin/settings", console(admin=303),
          at("POST", "/console/admin/settings", settings)),
    route("GET /console/", SIGNED_IN),
    route("GET /console/events", SIGNED_IN),
    route("GET /console/campaigns/{cid}", SIGNED_IN),
    route("GET /console/campaigns/{cid}/events", SIGNED_IN),
    route("GET /console/campaigns/{cid}/chase", SIGNED_IN),
    route("GET /console/campaigns/{cid}/head", SIGNED_IN),
    route("GET /console/campaigns/{cid}/grids/{gid}", SIGNED_IN),
    route("POST /console/campaigns/{cid}/ack", OPERATOR, confirm_by_hand(MAIN)),
    route("POST /console/campaigns/{cid}/door", OPERATOR, door_to_door(MAIN)),
    route("POST /console/campaigns/{cid}/door/result", OPERATOR, door_result(MAIN)),
    route("POST /console/campaigns/{cid}/feedback", OPERATOR, report_for(console=True)),
    route("GET /console/campaigns/{cid}/feedback.csv", SIGNED_IN),  # no phones in it
    route("POST /console/campaigns/{cid}/stop", console(approver=303),
          campaign_action("stop", "stop-me")),
    route("POST /console/campaigns/{cid}/cancel", console(drafter=303),
          campaign_action("cancel", "console")),  # red: the Cancel waits for an approver
    route("GET /console/campaigns/{cid}/record.csv", SIGNED_IN),
    route("GET /console/campaigns/{cid}/print", SIGNED_IN),
    route("GET /console/compose", console(drafter=200)),
    route("GET /console/compose/defaults", console(drafter=200)),
    route("POST /console/compose/preview", console(drafter=200),
          at("POST", "/console/compose/preview", compose)),
    route("POST /console/compose", console(drafter=303), at("POST", "/console/compose", compose)),
    route("GET /console/drafts", console(drafter=200, approver=200)),
    route("GET /console/drafts/{id}", console(drafter=200, approver=200)),
    route("POST /console/drafts/{id}/approve", console(approver=303), drafted("approve")),
    route("POST /console/drafts/{id}/reject", console(approver=303), drafted("reject")),
    # Only its drafter withdraws or edits a draft (another drafter is sent back to it, 303).
    route("POST /console/drafts/{id}/withdraw", console(drafter=303),
          drafted("withdraw", own=True)),
    route("GET /console/drafts/{id}/edit", console(drafter=200),
          drafted("edit", own=True, method="GET")),
    route("GET /console/records", SIGNED_IN),
    route("GET /console/registry", SIGNED_IN),
    route("GET /console/registry/grids", SIGNED_IN),
    route("GET /console/registry/people", SIGNED_IN),
    route("GET /console/registry/devices", SIGNED_IN),
    route("GET /console/registry/export.zip", SIGNED_IN),  # full phones for an admin only
    route("POST /console/registry/import", console(admin=303),
          at("POST", "/console/registry/import", upload)),
    # Duty: anyone signed in reads it; approvers and admins change shifts (audited);
    # approvers approve roster versions.
    route("GET /console/duty", SIGNED_IN),
    route("POST /console/duty/change", console(approver=303, admin=303), duty_change),
    route("POST /console/duty/rosters/{id}/approve", console(approver=303), roster_approval),
    route("GET /console/registry/template.xlsx", SIGNED_IN),
    route("GET /console/registry/export.xlsx", SIGNED_IN),  # full phones for an admin only
    route("POST /console/registry/upload", console(admin=303),  # staged for a preview
          at("POST", "/console/registry/upload", workbook)),
    route("GET /console/registry/imports/{id}", console(admin=303)),  # no such import: back
    route("POST /console/registry/imports/{id}/apply", console(admin=Refused(303))),
    route("GET /console/registry/history", SIGNED_IN),
    route("GET /console/registry/people/{id}", console(admin=404)),  # no such person
    route("POST /console/registry/people/{id}", console(admin=Refused(303)), person_as_is),
    # Provider callbacks: the provider's signature (or secret path and network) first.
    route("POST /hooks/twilio-sms/status", hook(), twilio("twilio-sms", "status", SMS_STATUS)),
    route("POST /hooks/twilio-sms/inbound", hook(), twilio("twilio-sms", "inbound", SMS_REPLY)),
    route("POST /hooks/twilio-voice/gather", hook(), twilio("twilio-voice", "gather", CALL)),
    route("POST /hooks/twilio-voice/status", hook(), twilio("twilio-voice", "status", CALL)),
    route("POST /hooks/twilio-voice/feedback", hook(),
          twilio("twilio-voice", "feedback", KEYED_REPORT, reports=True)),
    route("GET /hooks/wecom-app/callback", hook(unsigned=400), wecom("GET")),
    route("POST /hooks/wecom-app/callback", hook(unsigned=400), wecom("POST")),
    # Aliyun and Tencent sign nothing: the secret path (from an allowed network) is the key.
    *(route(f"POST /hooks/{channel}/{secret}/{name}", hook(unsigned=404),
            pushed(channel, secret, name, body)) for channel, secret, name, body in PUSHES),
)


# --------------------------------------------------------------------------- thread actions


def action(what: str, expect: Expect, make: Maker, method: str = "POST") -> Row:
    return Row(f"{method} {what}", make, expect)


BUREAU, OTHER = "the bureau", "the township office"
ACTIONS: tuple[Row, ...] = (
    # By API. FEED speaks for the bureau in township 101, Met only; WIDE for the bureau in
    # the county; TOWN for the township office in 101; LOCAL for anyone but the console.
    action(f"Alert as {BUREAU}, township 101, 暴雨", api(feed=202, wide=202, local=202),
           alert_as(SENDER, IN_101)),
    action(f"Alert as {BUREAU}, township 102", api(wide=202, local=202),
           alert_as(SENDER, IN_102)),
    action(f"Alert as {BUREAU}, township 101, 洪水 (Env)", api(wide=202, local=202),
           alert_as(SENDER, IN_101, "洪水")),
    action(f"Alert as {OTHER}, township 101", api(town=202, local=202),
           alert_as(TOWN_SENDER, IN_101)),
    action(f"Alert as {OTHER}, township 102", api(local=202), alert_as(TOWN_SENDER, IN_102)),
    action("Alert as the console", api(), alert_as(None, IN_101)),
    *(action(f"{kind} {BUREAU}'s thread in township 101",
             api(feed=202, wide=202, local=202), continued("bureau-101", kind))
      for kind in ("Update", "Cancel")),
    *(action(f"{kind} {BUREAU}'s thread in townships 101 and 102", api(wide=202, local=202),
             continued("bureau-two", kind)) for kind in ("Update", "Cancel")),
    *(action(f"{kind} {BUREAU}'s 洪水 (Env) thread in township 101", api(wide=202, local=202),
             continued("bureau-env", kind)) for kind in ("Update", "Cancel")),
    *(action(f"{kind} {OTHER}'s thread in township 101", api(town=202, local=202),
             continued("town-101", kind)) for kind in ("Update", "Cancel")),
    *(action(f"{kind} {OTHER}'s thread in township 102", api(local=202),
             continued("town-102", kind)) for kind in ("Update", "Cancel")),
    *(action(f"{kind} the console's thread", api(), continued("console", kind))
      for kind in ("Update", "Cancel")),
    # Reading and confirming: an officer's regions bound what it sees and whom it confirms.
    action("read a thread reaching township 101", api(officer=200, town_officer=200, local=200),
           read(MAIN), "GET"),
    action("read a thread of township 105 only", api(officer=200, local=200),
           read("bureau-105"), "GET"),
    action("read the 叫应 record of a thread of township 105 only", api(officer=200, local=200),
           read("bureau-105", "/record"), "GET"),
    action("confirm a person of township 101 (API)", api(officer=200, town_officer=200,
                                                         local=200), confirm_in("430623101")),
    action("confirm a person of township 102 (API)", api(officer=200, local=200),
           confirm_in("430623102")),
    # Through the console: its users speak for the console's sender only.
    action("compose an Alert (red: to an approver)", console(drafter=303),
           at("POST", "/console/compose", compose)),
    action("compose an Update of the console's thread", console(drafter=303),
           console_update("console")),
    action("open the Update form of the console's thread", console(drafter=200),
           update_form("console"), "GET"),
    # Another sender's thread: on its behalf, under the console's sender, through an approver.
    action(f"open the Update form of {BUREAU}'s thread", console(drafter=200),
           update_form("bureau-101"), "GET"),
    action(f"compose an Update of {BUREAU}'s thread (on its behalf: to an approver)",
           console(drafter=303), console_update("bureau-101")),
    action("compose an Update of the console's thread after its 解除",
           console(drafter=Refused(303)), console_update("lifted")),
    action("cancel the console's thread (red: to an approver)", console(drafter=303),
           campaign_action("cancel", "console")),
    action(f"cancel {BUREAU}'s thread (on its behalf: to an approver)", console(drafter=303),
           campaign_action("cancel", "bureau-101")),
    action(f"approve a Cancel of {BUREAU}'s thread drafted on its behalf",
           console(approver=303), on_behalf("bureau-101")),
    action("cancel the console's thread after its 解除", console(drafter=Refused(303)),
           campaign_action("cancel", "lifted")),
    action("approve another user's draft", console(approver=303), drafted("approve")),
    action("approve one's own draft", console(), drafted("approve", own=True)),
    action("reject another user's draft", console(approver=303), drafted("reject")),
    action("reject one's own draft", console(), drafted("reject", own=True)),
    action("confirm a person by hand", OPERATOR, confirm_by_hand(MAIN)),
    action("confirm by hand a person the campaign does not call", console(drafter=404,
                                                                          approver=404),
           confirm_by_hand(MAIN, outsider=True)),
    action("confirm by hand in a cancelled campaign (recorded late)", OPERATOR,
           confirm_by_hand("ended")),
    action("order door to door in a grid of the campaign", OPERATOR, door_to_door(MAIN)),
    action("order door to door in a grid the campaign does not reach",
           console(drafter=404, approver=404), door_to_door(MAIN, outsider=True)),
    action("order door to door in a cancelled campaign",
           console(drafter=Refused(303), approver=Refused(303)), door_to_door("ended")),
    action("enter a door-to-door result in a grid of the campaign", OPERATOR, door_result(MAIN)),
    action("enter a door-to-door result in a grid the campaign does not reach",
           console(drafter=404, approver=404), door_result(MAIN, outsider=True)),
    # Reports after the ack: only for a target who has confirmed; `by` is the credential's.
    action("report for a confirmed person of township 101 (API)",
           api(officer=200, town_officer=200, local=200), report_for()),
    action("report for a confirmed person of township 102 (API)", api(officer=200, local=200),
           report_for(township="430623102")),
    action("report for a person who has not confirmed (API)",
           api(officer=409, town_officer=409, local=409), report_for(whom="unconfirmed")),
    action("report for a person the campaign does not call (API)", api(officer=404, local=404),
           report_for(whom="outsider")),  # of township 103: beyond the township officer's
    action("report naming who entered it (by, API)",
           api(officer=422, town_officer=422, local=422), report_for(by="someone-else")),
    action("report in a cancelled campaign (API; kept: a report after the 解除 counts)",
           api(officer=200, town_officer=200, local=200), report_for("ended")),
    action("report by one's ack link", ack(200), ack_report()),
    action("report by one's ack link before confirming", ack(409),
           ack_report(whom="unconfirmed")),
    action("report by one's ack link in a cancelled campaign", ack(200), ack_report("ended")),
    action("enter a report for a confirmed person (console)", OPERATOR,
           report_for(console=True)),
    action("enter a report for a person who has not confirmed (console)",
           console(drafter=Refused(303), approver=Refused(303)),
           report_for(whom="unconfirmed", console=True)),
    action("enter a report for a person the campaign does not call (console)",
           console(drafter=Refused(303), approver=Refused(303)),
           report_for(whom="outsider", console=True)),
    action("enter a report naming who entered it (by, console)",
           console(drafter=Refused(303), approver=Refused(303)),
           report_for(console=True, by="someone-else")),
    action("enter a report in a cancelled campaign (console)", OPERATOR,
           report_for("ended", console=True)),
    action(f"stop the calling of {BUREAU}'s thread", console(approver=303),
           campaign_action("stop", "stop-me")),
    action("stop the calling of a cancelled thread", console(approver=Refused(303)),
           campaign_action("stop", "ended")),
)


# --------------------------------------------------------------------------- the walk


def _rows(table: tuple[Row, ...]) -> list[tuple[Row, Kind]]:
    return [(row, kind) for row in table for kind in row.expect]


def _id(value: object) -> str:
    return str(value).replace(" ", "_") if isinstance(value, Kind) else (
        value.what if isinstance(value, Row) else str(value))


async def _walk(w: World, row: Row, kind: Kind) -> None:
    req = await row.make(w, kind)
    before = await w.state()
    status = await w.send(kind, req)
    want = row.expect[kind]
    assert status == want, f"{row.what} with {kind}: {status}, expected {want}"
    if req.path.startswith("/console") and not req.path.startswith("/console/static/") and (
            not 300 <= status < 400):
        # Pages and fragments alike (a fragment's forms carry the session's CSRF token).
        for name, value in (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")):
            assert w.headers.get(name) == value, f"{row.what} with {kind}: {name} missing"
        assert "frame-ancestors 'none'" in w.headers.get("Content-Security-Policy", "")
    if may_change(req.method, want):
        await w.settle()
        return
    after = await w.state()
    changed = sorted(k.decode() for k in before.keys() | after.keys()
                     if before.get(k) != after.get(k))
    assert not changed, f"{row.what} with {kind} ({status}) changed {changed}"


@pytest.mark.parametrize(("row", "kind"), _rows(ROUTES), ids=_id)
async def test_route(world: World, row: Row, kind: Kind) -> None:
    await _walk(world, row, kind)


@pytest.mark.parametrize(("row", "kind"), _rows(ACTIONS), ids=_id)
async def test_thread_action(world: World, row: Row, kind: Kind) -> None:
    await _walk(world, row, kind)


async def test_every_route_has_an_access_decision(world: World) -> None:
    """Every route the app serves is a row of ROUTES (HEAD is its GET: aiohttp adds it)."""
    served = {f"{'GET' if r.method == 'HEAD' else r.method} {r.resource.canonical}"
              for r in world.client.server.app.router.routes() if r.resource is not None}
    listed = {row.what for row in ROUTES}
    assert served - listed == set(), "routes without an access decision in ROUTES"
    assert listed - served == set(), "rows of ROUTES for routes the app does not serve"


#: The columns of the tables in docs/security.md: credential kinds side by side.
COLUMNS: tuple[tuple[Kind, ...], ...] = (
    (Kind.NONE, Kind.BAD, Kind.REVOKED), (Kind.FEED, Kind.WIDE, Kind.TOWN),
    (Kind.OFFICER, Kind.TOWN_OFFICER), (Kind.LOCAL,), ROLES_HELD, (Kind.DISABLED,), PROVIDER,
    LINKS)


def markdown(table: tuple[Row, ...]) -> str:
    """`table` as docs/security.md shows it: a row per route or action, a column per group
    of credential kinds, one status where the group gets the same, else each in turn
    (`a · b · c`); "—" where a kind is not walked. `Refused(303)` shows as 303*."""

    def cell(row: Row, kinds: tuple[Kind, ...]) -> str:
        got = [row.expect.get(k) for k in kinds]
        shown = ["—" if s is None else f"{int(s)}*" if isinstance(s, Refused) else str(s)
                 for s in got]
        return shown[0] if len(set(shown)) == 1 else " · ".join(shown)

    columns = [c for c in COLUMNS if any(k in row.expect for row in table for k in c)]
    head = "| | " + " | ".join(" · ".join(str(k) for k in c) for c in columns) + " |"
    rule = "|---" * (len(columns) + 1) + "|"
    lines = [f"| `{_shown(row.what)}` | " + " | ".join(cell(row, c) for c in columns) + " |"
             for row in table]
    return "\n".join([head, rule, *lines])


def _shown(what: str) -> str:
    for _channel, secret, _name, _body in PUSHES:
        what = what.replace(secret, "{hook_secret}")
    return what


if __name__ == "__main__":  # the tables for docs/security.md
    print(markdown(ROUTES), markdown(ACTIONS), sep="\n\n")

