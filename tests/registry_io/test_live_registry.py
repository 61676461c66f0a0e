"""A registry change applied without a restart: every process picks it up, running campaigns
call the new phone from their next step, the history says who changed what, and a restart
serves the applied version (unless the configured files changed: then they win, recorded)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
from structlog.testing import capture_logs
from xlsx_kit import geojson, geological, office_edit, preview, sample_xlsx

from tests.engine.helpers import Harness, cap_alert, make_harness
from tests.waits import until
from warnbus.domain.models import (
    Delivery,
    DeliveryKind,
    Level,
    RegistryData,
    SiteKind,
)
from warnbus.errors import RegistryConflictError
from warnbus.flow.credentials import ENGINE
from warnbus.flow.escalation import redial_offsets
from warnbus.flow.intake import accept
from warnbus.registry import Registry
from warnbus.registry_io.service import Preview, decode_report, encode_report, report
from warnbus.runtime.app import App, build_app
from warnbus.state import keys
from warnbus.state.registrybook import RegistryBook

PID = "p43062300128"  # primary officer of 430623101001-01 (章华镇 柳岗社区)
NEW_PHONE = "+8613900001234"
RING = ((29.690, 112.500), (29.690, 112.501), (29.691, 112.501), (29.691, 112.500),
        (29.690, 112.500))


@pytest_asyncio.fixture
async def h(redis_url: str) -> AsyncIterator[Harness]:
    harness = await make_harness(redis_url)
    yield harness
    await harness.app.close()


def _workbook(*, broken: bool) -> bytes:
    return office_edit(sample_xlsx(), pid=PID, phone="13900001234",
                       broken="p43062300132" if broken else "", new_grid_officer="p43062300130")


@contextlib.asynccontextmanager
async def _restarted(h: Harness, registry: Registry | None = None) -> AsyncIterator[App]:
    """Another start of the engine on the same Redis (its configured files: `registry`)."""
    again = await build_app(h.app.settings, clock=h.clock, channels=h.channels,
                            registry=registry, base_url="http://test")
    try:
        yield again
    finally:
        await again.close()


def mark(h: Harness) -> dict[str, int]:
    return {name: len(ch.sent) for name, ch in h.channels.items()}


def since(h: Harness, at: dict[str, int]) -> list[Delivery]:
    """What the channels were handed after `mark` (each channel keeps its own list)."""
    return [d for name, ch in h.channels.items() for d in ch.sent[at[name]:]]


async def _until(h: Harness, pid: str, kind: DeliveryKind) -> list[Delivery]:
    """Run the campaign on its clock until `pid` gets a `kind` (its first-wave time, hence
    its deadline, depends on when its messages went out under the channels' rates)."""
    start = mark(h)
    for _ in range(40):
        h.clock.advance(15)
        await h.drain()
        if [d for d in since(h, start) if d.target_id == pid and d.kind is kind]:
            return since(h, start)
    raise AssertionError(f"{pid} got no {kind}")


async def _apply(h: Harness, p: Preview, by: str = "root") -> int:
    return await h.app.engine.registry.apply(
        p.candidate.data, expected=p.base_version, by=by, source=p.source, year=p.candidate.year,
        summary=p.diff.summary(), diff=encode_report(report(p)))


async def test_round_trip_the_next_call_of_a_running_campaign_uses_the_new_phone(
        h: Harness) -> None:
    """Export -> edit (a changed phone, an added grid, a broken row) -> the import names the
    broken row -> fixed -> applied while a red campaign runs -> its next redial, and the next
    alert, call the new phone; the old number is not called again."""
    res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    await h.drain()
    old_phone = h.ctx.registry.data.persons[PID].phone
    assert {d.address for d in h.sent("voice") if d.target_id == PID} == {old_phone}

    bad = await preview(_workbook(broken=True), boundary=geojson({"430623101001-99": RING}))
    assert [p.column for p in bad.candidate.problems] == ["手机"]
    assert str(bad.candidate.problems[0]).startswith("「人员」表第") and str(
        bad.candidate.problems[0]).endswith("行「手机」列：号码应为11位手机号")
    good = await preview(_workbook(broken=False), boundary=geojson({"430623101001-99": RING}))
    assert good.candidate.ok and good.diff.phones_changed == 1
    assert await _apply(h, good) == 1
    assert h.ctx.registry_version == 1

    after = await _until(h, PID, DeliveryKind.REDIAL)
    phones = {d.address for d in after if d.target_id == PID and d.channel in ("voice", "sms")}
    assert phones == {NEW_PHONE}
    # The next alert: the added grid is matched, the new phone called in the first wave.
    nxt = await accept(h.ctx, cap_alert("second-alert", codes=("430623101000",)), ENGINE)
    await h.drain()
    first = [d for d in h.sent() if d.campaign_id == nxt.campaign_id and d.target_id == PID]
    assert {d.address for d in first if d.channel == "voice"} == {NEW_PHONE}
    targets = await h.ctx.store.targets(nxt.campaign_id)
    assert "430623101001-99" in targets["p43062300130"].grids
    assert res.campaign_id != nxt.campaign_id


async def test_every_process_picks_the_change_up(h: Harness, redis_url: str) -> None:
    other = await make_harness(redis_url)  # another process on the same Redis
    try:
        p = await preview(_workbook(broken=False), boundary=geojson({"430623101001-99": RING}))
        await _apply(h, p)
        assert other.ctx.registry.data.persons[PID].phone != NEW_PHONE
        assert await other.app.engine.registry.refresh() is True
        assert other.ctx.registry_version == 1
        assert other.ctx.registry.data.persons[PID].phone == NEW_PHONE
        assert "430623101001-99" in other.ctx.rules.match(
            cap_alert(codes=("430623101001",))).grids
        assert await other.app.engine.registry.refresh() is False  # nothing new
    finally:
        await other.app.close()


async def test_a_change_prepared_on_an_older_version_is_refused(h: Harness) -> None:
    p = await preview(_workbook(broken=False), boundary=geojson({"430623101001-99": RING}))
    await _apply(h, p, by="anna")
    stale = await preview(sample_xlsx())  # prepared on version 0 as well
    with pytest.raises(RegistryConflictError, match="台账已被他人更新（当前版本 1，"
                                                    "本次变更基于版本 0）"):
        await _apply(h, stale, by="alan")
    assert h.ctx.registry.data.persons[PID].phone == NEW_PHONE
    assert await RegistryBook(h.ctx.redis).version() == 1


async def test_history_keeps_who_when_what(h: Harness) -> None:
    p = await preview(_workbook(broken=False), boundary=geojson({"430623101001-99": RING}))
    h.clock.set(1_780_000_000.0)
    await _apply(h, p, by="root")
    [(_, entry)] = await RegistryBook(h.ctx.redis).history()
    assert (entry.version, entry.by, entry.at) == (1, "root", 1_780_000_000.0)
    assert entry.source == "导入 t.xlsx、b.geojson"
    assert entry.summary == "人员：修改1；网格：新增1；其中手机号变更 1 人"
    kept = decode_report(entry.diff)
    change = next(c for c in kept.diff.changes if c.id == PID)
    assert [(f.label, f.old, f.new, f.phone) for f in change.fields] == [
        ("手机", "+86199****2078", "+86139****1234", True)]
    raw = await h.ctx.redis.xrange(keys.REGISTRY_HISTORY)
    assert b"13900001234" not in raw[0][1][b"diff"]  # phones are kept masked


async def test_a_change_applied_keeps_the_sites_rosters_and_their_rules(
        redis_url: str, tmp_path: Path) -> None:
    """A workbook of people applied while running keeps the sites and duty rosters (no sheet
    reads them), and the rules indexed on the new registry keep the deployment's site rules
    (here a geological warning calls reservoir patrollers too): a geological warning after
    the change calls the same sites, here and after a restart."""
    shipped = (Path(__file__).parents[2] / "rules" / "sites.toml").read_text("utf-8")
    own = tmp_path / "sites.toml"
    own.write_text(shipped.replace('kinds = ["hazard_point"]\nroles = ["monitor", "responsible"]',
                                   'kinds = ["hazard_point", "reservoir", "pond"]\n'
                                   'roles = ["monitor", "responsible", "patroller"]'), "utf-8")
    h = await make_harness(redis_url, sites=str(own))
    try:
        before = h.ctx.registry.data
        sites = h.ctx.rules.match(geological()).sites
        kinds = {before.sites[s].kind for s in sites}
        assert {SiteKind.HAZARD_POINT, SiteKind.RESERVOIR} <= kinds and before.rosters
        p = await preview(_workbook(broken=False), boundary=geojson({"430623101001-99": RING}))
        await _apply(h, p)
        assert h.ctx.registry_version == 1
        after = h.ctx.registry.data
        assert after.sites == before.sites and after.rosters == before.rosters
        assert h.ctx.rules.match(geological()).sites == sites
        res = await accept(h.ctx, geological(), ENGINE)
        await h.drain()
        assert set(await h.ctx.store.grids(res.campaign_id)) >= set(sites)
        async with _restarted(h) as again:
            assert again.ctx.registry_version == 1
            assert again.ctx.registry.data.sites == before.sites
            assert again.ctx.registry.data.rosters == before.rosters
            assert again.ctx.rules.match(geological()).sites == sites
    finally:
        await h.app.close()


async def test_a_restart_serves_the_applied_version(h: Harness) -> None:
    p = await preview(_workbook(broken=False), boundary=geojson({"430623101001-99": RING}))
    await _apply(h, p)
    async with _restarted(h) as again:
        assert again.ctx.registry_version == 1
        assert again.ctx.registry.data.persons[PID].phone == NEW_PHONE


async def test_changed_configured_files_win_and_are_recorded(h: Harness) -> None:
    p = await preview(_workbook(broken=False), boundary=geojson({"430623101001-99": RING}))
    await _apply(h, p)
    data = h.ctx.registry.data
    # Another registry deployed: the sample county with one officer's name changed.
    files = msgspec.structs.replace(data, persons={
        **p.candidate.data.persons, PID: msgspec.structs.replace(data.persons[PID], name="新名字",
                                                                 phone="+8613700000000")},
        grids={k: v for k, v in data.grids.items() if k != "430623101001-99"})
    with capture_logs() as logs:
        async with _restarted(h, Registry(files)) as again:
            assert again.ctx.registry_version == 2
            assert again.ctx.registry.data.persons[PID].name == "新名字"
            assert any("configured files changed" in e["event"] for e in logs)
            [(_, latest), *_] = await RegistryBook(h.ctx.redis).history()
            assert (latest.version, latest.by) == (2, "system")
            assert latest.source == "配置的台账文件已更换：以文件为准"
            # The first process follows: every process serves one registry.
            assert await h.app.engine.registry.refresh() is True
            assert h.ctx.registry.data.persons[PID].name == "新名字"


async def test_an_invalid_version_in_redis_is_not_served(h: Harness) -> None:
    p = await preview(_workbook(broken=False), boundary=geojson({"430623101001-99": RING}))
    await _apply(h, p)
    data = h.ctx.registry.data
    broken = msgspec.structs.replace(data, persons={
        **data.persons, PID: msgspec.structs.replace(data.persons[PID], phone="+86123")})
    book = RegistryBook(h.ctx.redis)
    await book.apply(broken, expected=1, by="tamper", source="", base="", at=0.0, year=None,
                     summary="", diff=b"{}")
    with capture_logs() as logs:
        assert await h.app.engine.registry.refresh() is False
    assert h.ctx.registry_version == 1 and h.ctx.registry.data.persons[PID].phone == NEW_PHONE
    assert any(e["event"].startswith("applied registry is invalid") for e in logs)


async def test_a_removed_person_s_grids_move_up_the_chain_at_once(h: Harness) -> None:
    """A primary officer removed while being called: no redial to a number that is gone,
    their grids go to the backup at the next deadline."""
    res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    await h.drain()
    data = h.ctx.registry.data
    grid = data.grids["430623101001-01"]
    replacement = msgspec.structs.replace(data.persons[PID], id="p-new")
    new = RegistryData(data.regions,
                       {**data.grids, grid.id: msgspec.structs.replace(grid, primary="p-new")},
                       {**{k: v for k, v in data.persons.items() if k != PID},
                        "p-new": replacement}, data.devices)
    await h.app.engine.registry.apply(new, expected=0, by="root", source="test", year=None,
                                      summary="", diff=b"{}", validated=False)
    after = await _until(h, grid.backup or "", DeliveryKind.ESCALATION)
    assert not [d for d in after if d.target_id == PID]
    assert not [d for d in after if d.kind is DeliveryKind.REDIAL and d.target_id == "p-new"]
    grids = await h.ctx.store.grids(res.campaign_id)
    assert grids[grid.id].holder == grid.backup


async def test_a_removed_grid_goes_on_the_unreached_list(h: Harness) -> None:
    res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    await h.drain()
    data = h.ctx.registry.data
    gone = "430623101001-01"
    new = RegistryData(data.regions, {k: v for k, v in data.grids.items() if k != gone},
                       data.persons, data.devices)
    await h.app.engine.registry.apply(new, expected=0, by="root", source="test", year=None,
                                      summary="", diff=b"{}", validated=False)
    policy = h.ctx.rules.policy_for(Level.RED)
    _, escalate_at = redial_offsets(policy)
    h.clock.set(h.clock.now() + escalate_at)
    await h.drain()  # must not fail on the grid the registry no longer has
    grids = await h.ctx.store.grids(res.campaign_id)
    assert grids[gone].state.value == "unreached"
    assert grids["430623101001-02"].state.value == "escalated"


async def test_a_delivery_waiting_for_its_retry_goes_to_the_new_phone(redis_url: str) -> None:
    """The old number fails (busy) and its SMS waits on the timers for a retry; the phone is
    changed meanwhile: the retry goes to the new number, not the old one again."""
    old = "+8619944532078"
    h = await make_harness(redis_url, fail_temp={"sms": [old]})
    try:
        assert h.ctx.registry.data.persons[PID].phone == old
        await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
        await h.drain()
        assert not [d for d in h.channels["sms"].sent if d.target_id == PID]  # busy: retrying
        p = await preview(_workbook(broken=False), boundary=geojson({"430623101001-99": RING}))
        await _apply(h, p)
        start = mark(h)
        for _ in range(8):
            h.clock.advance(5)
            await h.drain()
        sms = [d for d in since(h, start) if d.target_id == PID and d.channel == "sms"]
        assert sms and sms[0].kind is DeliveryKind.WARNING and sms[0].address == NEW_PHONE
    finally:
        await h.app.close()


async def test_a_running_engine_serves_a_change_another_process_applied(redis_url: str) -> None:
    """The engine's own watch (not a test's refresh) picks up what the CLI applied: the CLI
    builds on the files the engine said it serves, so a restart keeps the change."""
    h = await make_harness(redis_url)
    await h.app.engine.start()
    try:
        book = RegistryBook(h.ctx.redis)
        assert await book.files_sha() == h.ctx.registry_base != ""
        p = await preview(_workbook(broken=False), boundary=geojson({"430623101001-99": RING}))
        await book.apply(p.candidate.data, expected=0, by="cli:test", source="t.xlsx",
                         base=await book.files_sha(), at=0.0, year=None, summary="", diff=b"{}")
        # The watch polls each second; no event to await from here.
        await until(lambda: h.ctx.registry_version == 1, "the watch to serve version 1",
                    within=10, every=0.05)
        assert h.ctx.registry.data.persons[PID].phone == NEW_PHONE
        async with _restarted(h) as again:
            assert again.ctx.registry_version == 1  # not "the files changed"
    finally:
        await h.app.close()
