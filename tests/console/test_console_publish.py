"""Compose, preview, approve, publish, update and cancel from the console, on a real engine."""

from __future__ import annotations

import csv
import io
import zipfile

from console_kit import campaigns, red_form, sign_in

from warnbus.domain.models import AckVia, MsgType, Status
from warnbus.ingest.identifiers import is_gb35965
from warnbus.web.console.drafts import Drafts


async def test_preview_runs_the_real_rules(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose/preview", data=red_form(s.csrf))
    assert r.status == 200, await r.text()
    p = (await r.json())["preview"]
    reg = h.ctx.registry
    villages = reg.children_of("430623101000")
    grids = [g for v in villages for g in reg.grids_of_village(v)]
    assert p["grids"] == len(grids) and p["villages"] == len(villages)
    assert p["persons"] == len({reg.data.grids[g].primary for g in grids})
    assert p["speakers"] == sum(len(reg.devices_of_village(v)) for v in villages)
    assert p["per_channel"]["voice"] == p["persons"]
    assert p["per_channel"]["loudspeaker"] == len(villages)
    assert p["cost"] > 0 and p["cost_max"] > p["cost"] and p["needs_approval"]
    r = await client.post("/console/compose/preview", data=red_form(s.csrf, level="blue", area=""))
    errs = (await r.json())["errors"]
    assert r.status == 422 and "areas" in errs
    r = await client.get("/console/compose/defaults?hazard=rainstorm&level=red")
    d = await r.json()
    assert "暴雨红色预警" in d["headline"] and "转移" in d["instruction"]  # from the templates


async def test_red_needs_a_second_person_and_the_record_names_both(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "both")  # may draft and approve, but not their own draft
    r = await client.post("/console/compose", data=red_form(s.csrf), allow_redirects=False)
    assert r.status == 303 and "/console/drafts/df_" in r.headers["Location"]
    draft_id = r.headers["Location"].split("/drafts/")[1].split("?")[0]
    assert await campaigns(h) == []  # nothing published alone
    r = await client.post(f"/console/drafts/{draft_id}/approve", data={"_csrf": s.csrf},
                          allow_redirects=False)
    assert r.status == 403 and await campaigns(h) == []
    s = await sign_in(client, "dora")
    r = await client.post(f"/console/drafts/{draft_id}/approve", data={"_csrf": s.csrf})
    assert r.status == 403  # a drafter has no approver role
    s = await sign_in(client, "alan")
    r = await client.post(f"/console/drafts/{draft_id}/approve", data={"_csrf": s.csrf},
                          allow_redirects=False)
    assert r.status == 303 and "/console/campaigns/cp_" in r.headers["Location"]
    r = await client.post(f"/console/drafts/{draft_id}/approve", data={"_csrf": s.csrf},
                          allow_redirects=False)
    assert "/drafts/" in r.headers["Location"]  # already handled: published once
    (cid,) = await campaigns(h)
    draft = await Drafts(h.ctx.redis).get(draft_id)
    assert draft and draft.state == "published" and draft.approved_by == "alan"
    alert = await h.ctx.alert(cid, draft.alert_id)
    assert alert is not None and alert.status is Status.ACTUAL
    # GB/T 35965.1 (Beijing time, first of its second), then the random part.
    gb, rand = alert.identifier.split("-")
    assert is_gb35965(gb) and gb.endswith("_20260715133000_0") and len(rand) == 20
    await h.drain()
    assert h.sent("voice")
    r = await client.get(f"/console/campaigns/{cid}", headers={"Accept": "text/html"})
    page = await r.text()
    assert r.status == 200 and "起草 Both" in page and "审批 Alan" in page  # display names
    r = await client.get(f"/console/campaigns/{cid}/print")
    assert "起草 Both，审批 Alan" in await r.text()  # display names


async def test_yellow_is_published_by_the_drafter_alone(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose", data=red_form(
        s.csrf, level="yellow", status="Exercise"), allow_redirects=False)
    assert r.status == 303 and "/campaigns/cp_" in r.headers["Location"]
    (cid,) = await campaigns(h)
    meta = await h.ctx.store.meta(cid)
    alert = await h.ctx.alert(cid, (meta.root if meta else "")
                              or (await Drafts(h.ctx.redis).recent())[0].alert_id)
    assert alert is not None and alert.is_drill


async def test_approval_levels_are_configurable(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    s = await sign_in(client, "root")
    r = await client.post("/console/admin/settings", data=[
        ("_csrf", s.csrf), ("approval", "red"), ("sms_price", "0.04"), ("voice_price", "0.1"),
        ("sender_name", ""), ("org_code", "")], allow_redirects=False)
    assert r.status == 303
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose", data=red_form(s.csrf, level="orange"),
                          allow_redirects=False)
    assert "/campaigns/cp_" in r.headers["Location"]  # orange no longer needs a second person


async def test_board_manual_confirmation_door_to_door_update_cancel_and_record(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose", data=red_form(s.csrf, area="430623101001"),
                          allow_redirects=False)
    draft_id = r.headers["Location"].split("/drafts/")[1].split("?")[0]
    s = await sign_in(client, "anna")
    r = await client.post(f"/console/drafts/{draft_id}/approve", data={"_csrf": s.csrf},
                          allow_redirects=False)
    cid = r.headers["Location"].split("/campaigns/")[1].split("?")[0]
    await h.drain()
    h.clock.advance(200)  # past the red deadline: redials, then escalation
    await h.drain()
    h.clock.advance(400)
    await h.drain()
    r = await client.get(f"/console/campaigns/{cid}/chase")
    text = await r.text()
    assert "人工确认" in text and "呼叫记录" in text and "语音电话" in text
    grids = await h.ctx.store.grids(cid)
    gid, _g = sorted(grids.items())[0]
    primary = h.ctx.registry.data.grids[gid].primary
    r = await client.post(f"/console/campaigns/{cid}/ack", data={
        "_csrf": s.csrf, "grid": gid, "person": primary, "reason": "电话回拨已确认"},
        allow_redirects=False)
    assert r.status == 303
    ack = (await h.ctx.store.acks(cid))[primary]
    assert ack.via is AckVia.CONSOLE and ack.by == "anna" and ack.reason == "电话回拨已确认"
    assert (await h.ctx.store.grids(cid))[gid].state.value in ("confirmed", "taken_over")
    other = sorted(grids)[1]
    r = await client.post(f"/console/campaigns/{cid}/door", data={"_csrf": s.csrf, "grid": other},
                          allow_redirects=False)
    assert r.status == 303
    await h.drain()
    assert any(d.step == 95 and d.kind.value == "escalation" for d in h.sent())
    order = (await h.ctx.store.console.door_orders(cid))[other]
    assert order.by == "anna" and order.to
    # Update: the form is pre-filled from the campaign; red again needs a second person.
    s = await sign_in(client, "dora")
    r = await client.get(f"/console/compose?campaign={cid}", headers={"Accept": "text/html"})
    assert r.status == 200 and "暴雨红色预警" in await r.text()
    r = await client.post("/console/compose", data=red_form(
        s.csrf, kind="update", campaign=cid, area="430623101001",
        headline="暴雨红色预警更新", effective="2026-07-15T13:40"), allow_redirects=False)
    upd = r.headers["Location"].split("/drafts/")[1].split("?")[0]
    # Cancel (解除), with a reason; also waits for an approver.
    r = await client.post(f"/console/campaigns/{cid}/cancel", data={"_csrf": s.csrf,
                          "reason": "降雨减弱"}, allow_redirects=False)
    cancel = r.headers["Location"].split("/drafts/")[1].split("?")[0]
    s = await sign_in(client, "alan")
    for d in (upd, cancel):
        r = await client.post(f"/console/drafts/{d}/approve", data={"_csrf": s.csrf},
                              allow_redirects=False)
        assert "/campaigns/" in r.headers["Location"], r.headers["Location"]
        await h.drain()
    meta = await h.ctx.store.meta(cid)
    assert meta and meta.state == "cancelled"
    kinds = [x.kind for x in (await h.ctx.store.console.provenance(cid)).values()]
    assert sorted(kinds) == ["alert", "cancel", "update"]
    latest = await h.ctx.alert(cid, meta.latest)
    assert latest is not None and latest.msg_type is MsgType.UPDATE
    assert any(d.kind.value == "cancel" for d in h.sent())
    # The record: CSV (with BOM for spreadsheet programs) and the records list.
    r = await client.get(f"/console/campaigns/{cid}/record.csv")
    body = (await r.text()).lstrip("\ufeff")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert any(row["确认方式"] == "人工确认" and row["确认人"] == "Anna" for row in rows)
    r = await client.get("/console/records?level=red&town=430623101000")
    assert cid in await r.text()
    r = await client.get("/console/records?level=blue")
    assert cid not in await r.text()


async def test_registry_pages_export_and_import(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "root")
    for path, needle in (("/console/registry", "网格"),
                         ("/console/registry/grids?q=柳岗", "柳岗社区第1网格"),
                         ("/console/registry/people?q=曾芳福", "县值班员"),
                         ("/console/registry/devices", "应急广播1号")):
        r = await client.get(path)
        assert r.status == 200 and needle in await r.text(), path
    r = await client.get("/console/registry/export.zip")
    blob = await r.read()
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        assert sorted(z.namelist()) == ["devices.json", "grids.json", "persons.json",
                                        "regions.json"]
    h.app.settings = h.app.settings.__class__(**{
        **{f: getattr(h.app.settings, f) for f in h.app.settings.__struct_fields__},
        "data_dir": str(__import__("tempfile").mkdtemp())})
    r = await client.post("/console/registry/import",
                          data={"_csrf": s.csrf, "file": io.BytesIO(blob)}, allow_redirects=True)
    assert "校验通过（777个网格）" in await r.text()
    bad = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(blob)) as z, zipfile.ZipFile(bad, "w") as out:
        for n in z.namelist():
            data = z.read(n)
            if n == "grids.json":
                data = data.replace(b'"primary":"p', b'"primary":"nobody', 1)
            out.writestr(n, data)
    r = await client.post("/console/registry/import", data={"_csrf": s.csrf,
                                                            "file": io.BytesIO(bad.getvalue())})
    assert "校验未通过" in await r.text() and "does not exist" in await r.text()
