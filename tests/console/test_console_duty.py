"""The duty page (issue 19, item 1): today's and tomorrow's duty per township and county,
overrides and swaps with a reason (audited, used at once by the engine), roster versions that
take effect once an approver approves them, a warning for the coming week's empty shifts; and
the compose preview counting sites apart from grids (item 2)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from urllib.parse import unquote

import msgspec
import pytest_asyncio
from aiohttp.test_utils import TestClient
from console_kit import add_users, red_form, sign_in

from tests.engine.helpers import Harness, make_harness, web_client
from warnbus.domain.duty import BEIJING, ChangeKind, DutySource, schedule_digest
from warnbus.domain.models import Role, SiteKind
from warnbus.registry import Registry, default_registry_path, read_registry, validate_registry
from warnbus.state import keys

TOWN = "430623101000"
DESK = f"{TOWN}|township_duty"
TODAY = date(2026, 7, 15)  # the harness's clock: 2026-07-15 13:30 Beijing time


async def _post(client: TestClient, path: str, data: dict[str, str]) -> tuple[int, str]:  # type: ignore[type-arg]
    r = await client.post(path, data=data, allow_redirects=False)
    return r.status, unquote(r.headers.get("Location", ""))


def _pool(h: Harness) -> list[str]:
    return sorted(p.id for p in h.ctx.registry.data.persons.values()
                  if p.role is Role.TOWNSHIP_DUTY and p.region == TOWN)


async def test_today_and_tomorrow_and_who_may_change(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    book = h.ctx.registry.duty
    s = await sign_in(client, "dora")
    r = await client.get("/console/duty")
    text = await r.text()
    assert r.status == 200 and "今日（2026-07-15 起）" in text and "明日（2026-07-16 起）" in text
    persons = h.ctx.registry.data.persons
    for region in (h.ctx.registry.county_code, *h.ctx.registry.children_of(
            h.ctx.registry.county_code)):
        role = Role.COUNTY_DUTY if region.endswith("000000") else Role.TOWNSHIP_DUTY
        for day in (TODAY, date(2026, 7, 16)):
            assert persons[book.shift(region, role, day).person or ""].name in text
    assert 'id="duty-ok"' in text  # the sample county's rosters leave no shift empty
    assert "/console/duty/change" not in text  # a drafter reads; approvers and admins change
    status, _ = await _post(client, "/console/duty/change", {"_csrf": s.csrf, "desk": DESK})
    assert status == 403


async def test_an_override_is_used_and_audited(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    day = h.ctx.registry.duty.shift(TOWN, Role.TOWNSHIP_DUTY, TODAY).person
    stand_in = next(p for p in _pool(h) if p != day)
    s = await sign_in(client, "alan")
    form = {"_csrf": s.csrf, "desk": DESK, "day": "2026-07-15", "kind": "override",
            "person": stand_in, "was": day or "", "reason": "  病假，  由同事替班 "}
    # No reason, or a person who is no duty officer of the township: nothing is written.
    gen = await h.ctx.redis.get(keys.DUTY_GEN)
    for bad, says in (({"reason": ""}, "请填写调整原因"),
                      ({"person": "p43062300001"}, "不是章华镇的值班人员"),
                      ({"day": "2026-07-13"}, "班次日期须在"),
                      ({"desk": "430623101001|township_duty"}, "请选择乡镇或县的值班职责")):
        status, where = await _post(client, "/console/duty/change", {**form, **bad})
        assert status == 303 and "未保存：" in where and says in where, where
    assert await h.ctx.redis.get(keys.DUTY_GEN) == gen
    status, where = await _post(client, "/console/duty/change", form)
    assert status == 303 and "已保存替班" in where, where
    book = await h.ctx.duty_book()
    now = book.holder(TOWN, Role.TOWNSHIP_DUTY, h.clock.now())
    assert (now.person, now.source) == (stand_in, DutySource.CHANGE)
    assert h.ctx.registry.chain(f"{TOWN[:9]}001-01", at=h.clock.now(), duty=book)[3] == stand_in
    text = await (await client.get("/console/duty")).text()
    name = h.ctx.registry.data.persons[stand_in].name
    assert f"{name}" in text and "替班：病假， 由同事替班" in text
    assert 'title="登录名：alan">Alan<' in text
    # A form made before that change: the shift is no longer held by whom it names (`was`).
    third = next(p for p in _pool(h) if p not in (day, stand_in))
    status, where = await _post(client, "/console/duty/change", {**form, "person": third})
    assert "未保存" in where and f"已由他人改为 {name}，请刷新后重试" in where, where
    assert (await h.ctx.duty_book()).on_duty(TOWN, Role.TOWNSHIP_DUTY, h.clock.now()) == stand_in


async def test_a_swap_trades_two_shifts(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    book = h.ctx.registry.duty
    mine = book.shift(TOWN, Role.TOWNSHIP_DUTY, TODAY).person
    theirs = book.shift(TOWN, Role.TOWNSHIP_DUTY, date(2026, 7, 17)).person
    assert mine and theirs and mine != theirs
    s = await sign_in(client, "root")  # an admin may change shifts too
    _status, where = await _post(client, "/console/duty/change", {
        "_csrf": s.csrf, "desk": DESK, "day": "2026-07-15", "kind": "swap",
        "other_day": "2026-07-17", "was": mine, "reason": "家中有事，换班"})
    assert "已保存换班" in where, where
    after = await h.ctx.duty_book()
    assert after.shift(TOWN, Role.TOWNSHIP_DUTY, TODAY).person == theirs
    assert after.shift(TOWN, Role.TOWNSHIP_DUTY, date(2026, 7, 17)).person == mine
    history = [rec for rec, _ in await h.ctx.duty.history()]  # type: ignore[union-attr]
    assert {(c.kind, c.day, c.by) for c in history} == {  # type: ignore[union-attr]
        (ChangeKind.SWAP, "2026-07-15", "root"), (ChangeKind.SWAP, "2026-07-17", "root")}


async def test_a_roster_version_takes_effect_once_approved(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    rid = "430623-2027-flood"
    s = await sign_in(client, "dora")
    status, _ = await _post(client, f"/console/duty/rosters/{rid}/approve", {"_csrf": s.csrf})
    assert status == 403
    at = datetime(2027, 7, 1, 12, tzinfo=BEIJING).timestamp()
    before = (await h.ctx.duty_book()).holder(TOWN, Role.TOWNSHIP_DUTY, at)
    assert before.roster == "430623-2027"  # the year's version, while the draft waits
    s = await sign_in(client, "alan")
    text = await (await client.get("/console/duty")).text()
    assert f"/console/duty/rosters/{rid}/approve" in text and "待审批" in text
    digest = schedule_digest(h.ctx.registry.data.rosters[rid])
    assert f'name="digest" value="{digest}"' in text  # the shifts the approver is shown
    status, where = await _post(client, f"/console/duty/rosters/{rid}/approve",
                                {"_csrf": s.csrf, "digest": digest})
    assert status == 303 and "已审批生效" in where
    after = (await h.ctx.duty_book()).holder(TOWN, Role.TOWNSHIP_DUTY, at)
    assert after.roster == rid and after.source is DutySource.ROSTER
    status, where = await _post(client, f"/console/duty/rosters/{rid}/approve",
                                {"_csrf": s.csrf, "digest": digest})
    assert "无需重复审批" in where
    duty = await (await client.get("/console/duty")).text()
    assert "已生效（<span class=\"user\" title=\"登录名：alan\">Alan</span> 于" in duty
    assert "alan 于" not in duty
    # A crafted ?msg= makes the duty page say nothing (the message is signed for the session).
    forged = await (await client.get("/console/duty?msg=值班表已作废")).text()
    assert "值班表已作废" not in forged


@pytest_asyncio.fixture
async def ending(redis_url: str) -> AsyncIterator[tuple[TestClient, Harness, str]]:  # type: ignore[type-arg]
    """The sample county with only its July 2026 roster, on 28 July, and a township (the
    last) whose duty officers and roster entries are gone: nobody at all holds its duty."""
    data, _ = read_registry(default_registry_path())
    gone = "430623113000"
    persons = {k: p for k, p in data.persons.items()
               if not (p.region == gone and p.role is Role.TOWNSHIP_DUTY)}
    july = data.rosters["430623-2026-07"]
    entries = tuple(e for e in july.entries if not (e.region == gone and
                                                    e.role is Role.TOWNSHIP_DUTY))
    data = msgspec.structs.replace(data, persons=persons, rosters={
        july.id: msgspec.structs.replace(july, entries=entries)})
    start = datetime(2026, 7, 28, 9, tzinfo=BEIJING).timestamp()
    h = await make_harness(redis_url, start=start, registry=Registry(data))
    await add_users(h)
    async with web_client(h) as client:
        yield client, h, gone


async def test_empty_shifts_of_the_coming_week_are_reported(ending) -> None:  # type: ignore[no-untyped-def]
    client, h, _gone = ending
    # At import, a township with nobody to hold its duty is an error.
    assert any(p.startswith("团洲乡(430623113000)：无人值班") for p in
               validate_registry(h.ctx.registry.data))
    await sign_in(client, "dora")
    text = await (await client.get("/console/duty")).text()
    assert 'id="duty-empty"' in text
    # The month's roster ends on 31 July: from 1 August the fixed person stands in.
    fixed = h.ctx.registry.data.persons[h.ctx.registry.duty.fallback[(TOWN, Role.TOWNSHIP_DUTY)]]
    assert f"章华镇 乡镇值班员 2026-08-01：无生效值班表，由固定人员 {fixed.name} 兜底" in text
    assert "章华镇 乡镇值班员 2026-07-31" not in text
    # Nobody at all in the township whose officers are gone.
    assert "团洲乡 乡镇值班员 2026-07-28：无人值班" in text
    assert "无人值班" in text.split('id="duty-empty"')[1].split("</table>")[0]


async def test_preview_counts_sites_apart_from_grids(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    s = await sign_in(client, "dora")
    form = red_form(s.csrf, level="orange", hazard="geohazard", area="430623106000",
                    headline="东山镇地质灾害气象风险橙色预警")
    r = await client.post("/console/compose/preview", data=form)
    assert r.status == 200, await r.text()
    got = (await r.json())["preview"]
    points = [x for x in h.ctx.registry.data.sites.values()
              if x.kind is SiteKind.HAZARD_POINT and x.village.startswith("430623106")]
    assert got["sites"] == len(points) > 0 and got["site_kinds"] == {"hazard_point": len(points)}
    monitors = {p.person for x in points for p in x.people}
    assert got["persons"] >= len(monitors)
    assert f'data-p="sites">{len(points)}<' in (await r.json())["html"]
