"""The console reports only what it did: an alert it did not create is never "published".

Its identifiers carry a random part, so nobody can post an alert under the next one first;
when that happens anyway (made certain here by seeding the console's generator and posting
the alert it will build), the draft fails with the reason, visibly, and nothing is recorded.
"""

from __future__ import annotations

import random
import re
from datetime import datetime

from console_kit import campaigns, red_form, sign_in

from warnbus.flow.credentials import of_console
from warnbus.flow.intake import accept
from warnbus.ingest import alert_to_json, parse_json
from warnbus.ingest.identifiers import is_gb35965, parse_identifier
from warnbus.web.console.base import CONSOLE, ConsoleSettings
from warnbus.web.console.compose import (
    RANDOM_BITS,
    DraftForm,
    build_alert,
    console_identifier,
    new_identifier,
    sender_of,
)
from warnbus.web.console.drafts import Drafts
from warnbus.web.console.html import BEIJING

_ID = re.compile(r"^(\d{14}_\d{14}_\d)-([0-9a-f]{20})$")


async def test_identifiers_of_one_second_differ_in_a_random_part(web) -> None:  # type: ignore[no-untyped-def]
    _client, h = web
    settings = ConsoleSettings()
    ids = [await new_identifier(h.ctx, settings) for _ in range(12)]  # one clock second
    parts = [_ID.match(i) for i in ids]
    assert all(parts), ids
    prefixes = [m.group(1) for m in parts if m]
    randoms = [m.group(2) for m in parts if m]
    # The GB/T 35965.1 part stays valid: unit, Beijing time, the count within the second
    # (an eleventh alert of one second is entered at the next).
    assert all(is_gb35965(p) for p in prefixes)
    assert [parse_identifier(p).sequence for p in prefixes] == [*range(10), 0, 1]
    # Knowing every identifier so far tells nothing about the next: 80 random bits each.
    assert len(set(randoms)) == len(randoms) and RANDOM_BITS >= 64
    assert len({r[:4] for r in randoms}) > 6  # not a counter: spread over the whole range
    # A valid CAP identifier: the API's own JSON checks accept it.
    form = DraftForm(hazard="rainstorm", level="blue", areas=("430623101000",),
                     headline="测试", effective="2026-07-15T13:30", expires="2026-07-15T19:30")
    alert = build_alert(h.ctx, form, settings, ids[0])
    assert parse_json(alert_to_json(alert)).identifier == ids[0]


async def test_a_taken_identifier_fails_the_draft_visibly_and_records_nothing(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    con = client.server.app[CONSOLE]
    con.rng, twin = random.Random(1414), random.Random(1414)  # twin: the console's next draw
    settings = await con.settings()
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose", data=red_form(s.csrf), allow_redirects=False)
    draft_id = r.headers["Location"].split("/drafts/")[1].split("?")[0]
    # A harmless blue alert under the identifier the console will use next (the first of
    # this second, with the console's next random part) and its sender: only the console's
    # own credential may use that sender, so this is the collision however unlikely.
    when = datetime.fromtimestamp(h.clock.now(), BEIJING)
    taken = console_identifier(h.ctx, settings, when, 0, twin)
    blue = DraftForm(hazard="rainstorm", level="blue", areas=("430623113000",),
                     headline="无关的蓝色预警", effective="2026-07-15T13:30",
                     expires="2026-07-15T19:30")
    squat = await accept(h.ctx, build_alert(h.ctx, blue, settings, taken),
                         of_console(sender_of(h.ctx, settings)))
    assert squat.created
    s = await sign_in(client, "alan")
    r = await client.post(f"/console/drafts/{draft_id}/approve", data={"_csrf": s.csrf},
                          allow_redirects=False)
    assert r.status == 303
    assert r.headers["Location"].startswith(f"/console/drafts/{draft_id}"), r.headers["Location"]
    assert "msg=" not in r.headers["Location"]  # no success message rides along
    r = await client.get(r.headers["Location"], headers={"Accept": "text/html"})
    page = await r.text()
    assert 'id="publish-failed"' in page and "发布失败，预警未发出" in page
    assert taken in page and "已被另一条预警占用" in page
    assert "已批准并发布" not in page and "已发布<" not in page and "查看叫应进展" not in page
    draft = await Drafts(h.ctx.redis).get(draft_id)
    assert draft is not None and draft.state == "failed" and not draft.alert_id
    assert not draft.campaign_id and taken in draft.reason
    # Nothing recorded as published: the squatter's campaign is the only one and carries no
    # console provenance (nobody "drafted" or "approved" it); no red message went out.
    assert await campaigns(h) == [squat.campaign_id]
    assert await h.ctx.store.console.provenance(squat.campaign_id) == {}
    await h.drain()
    assert all(d.campaign_id == squat.campaign_id for d in h.sent())
    meta = await h.ctx.store.meta(squat.campaign_id)
    assert meta and meta.level == "blue"


async def test_a_refused_publish_says_why_in_chinese(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose", data=red_form(s.csrf), allow_redirects=False)
    draft_id = r.headers["Location"].split("/drafts/")[1].split("?")[0]
    h.clock.advance(7 * 3600)  # the draft's expiry (19:30) passes while it waits
    s = await sign_in(client, "alan")
    r = await client.post(f"/console/drafts/{draft_id}/approve", data={"_csrf": s.csrf},
                          allow_redirects=False)
    assert r.headers["Location"].startswith(f"/console/drafts/{draft_id}")
    page = await (await client.get(r.headers["Location"], headers={"Accept": "text/html"})).text()
    assert "发布失败，预警未发出" in page and "未发布（内容不符合要求）" in page
    assert await campaigns(h) == []
