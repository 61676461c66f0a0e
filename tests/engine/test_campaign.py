"""A red warning for the sample county through the whole path, on a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from structlog.testing import capture_logs

from tests.engine.helpers import Harness, cap_alert, make_harness
from warnbus.domain.models import AckVia, DeliveryKind, Level, MsgType, Reference, Role
from warnbus.errors import IngestError
from warnbus.flow.acks import record_ack
from warnbus.flow.credentials import ENGINE
from warnbus.flow.escalation import redial_offsets
from warnbus.flow.intake import accept
from warnbus.flow.record import alert_view, record_rows, summary
from warnbus.plugin import person_address

TOWNS = ("430623101000", "430623102000")


@pytest_asyncio.fixture
async def h(redis_url: str) -> AsyncIterator[Harness]:
    harness = await make_harness(redis_url)
    yield harness
    await harness.app.close()


def grids_of(h: Harness, towns: tuple[str, ...]) -> dict[str, object]:
    return {g.id: g for g in h.ctx.registry.data.grids.values()
            if any(g.village.startswith(t[:9]) for t in towns)}


async def test_first_wave_reaches_every_primary_on_every_channel(h: Harness) -> None:
    res = await accept(h.ctx, cap_alert(), ENGINE)
    assert res.created and res.campaign_id.startswith("cp_")
    await h.drain()
    grids = grids_of(h, TOWNS)
    assert grids, "the sample county has grids in townships 101 and 102"
    primaries = {g.primary for g in grids.values()}  # type: ignore[attr-defined]
    policy = h.ctx.rules.policy_for(Level.RED)
    persons = h.ctx.registry.data.persons
    for channel in policy.channels:
        got = {d.target_id for d in h.sent(channel) if d.kind is DeliveryKind.WARNING}
        info = h.ctx.channels[channel]
        reachable = {p for p in primaries if person_address(persons[p], info.address)}
        assert got == reachable, channel
        assert len(reachable) >= 0.8 * len(primaries)
        assert all(d.step == 0 for d in h.sent(channel))
    villages = {g.village for g in grids.values()}  # type: ignore[attr-defined]
    speakers = {d.address for d in h.sent("loudspeaker")}
    assert speakers == villages  # one message per area, not per device
    view = await alert_view(h.ctx, res.alert_id)
    assert view["campaign"]["state"] == "active"
    assert view["counts"]["sent"] == len(primaries) + len(villages)
    assert view["counts"]["pending"] == len(grids)
    assert view["counts"]["acknowledged"] == 0


async def test_same_alert_twice_is_one_alert(h: Harness) -> None:
    a = await accept(h.ctx, cap_alert(), ENGINE)
    b = await accept(h.ctx, cap_alert(), ENGINE)
    assert (a.alert_id, a.campaign_id) == (b.alert_id, b.campaign_id)
    assert a.created and not b.created
    await h.drain()
    ids = [d.id for d in h.sent()]
    assert len(ids) == len(set(ids))


async def test_unknown_reference_is_rejected_not_a_new_alert(h: Harness) -> None:
    upd = cap_alert("X_2", msg_type=MsgType.UPDATE,
                    references=(Reference("430623@qx.example.cn", "nope",
                                          "2026-07-15T05:30:00+08:00"),))
    with pytest.raises(IngestError) as e:
        await accept(h.ctx, upd, ENGINE)
    assert e.value.code == "unknown_reference" and e.value.field == "references"
    assert await h.ctx.store.campaign_of(upd.alert_id) is None


async def test_redials_escalation_and_unreached_follow_the_policy(h: Harness) -> None:
    res = await accept(h.ctx, cap_alert(), ENGINE)
    await h.drain()
    cid = res.campaign_id
    reg = h.ctx.registry
    policy = h.ctx.rules.policy_for(Level.RED)
    grids = grids_of(h, TOWNS)
    primaries = sorted({g.primary for g in grids.values()})  # type: ignore[attr-defined]
    answered = set(primaries[::2])
    for pid in answered:
        assert (await record_ack(h.ctx, cid, pid, AckVia.LINK)).recorded
    assert (await record_ack(h.ctx, cid, primaries[0], AckVia.SMS)).status == "duplicate"
    silent = set(primaries) - answered
    t0 = h.clock.now()
    times, escalate_at = redial_offsets(policy)
    assert len(times) == policy.redials
    for k, offset in enumerate(times, start=1):
        before = len(h.sent())
        h.clock.set(t0 + offset - 1)
        await h.drain()
        assert len(h.sent()) == before, "nothing happens before the deadline"
        h.clock.set(t0 + offset)
        await h.drain()
        redials = [d for d in h.sent() if d.kind is DeliveryKind.REDIAL and d.step == k]
        assert {d.target_id for d in redials} == silent
        assert {d.channel for d in redials} == set(policy.redial_channels)
    # End of the redial window: grids of silent primaries move to their backups.
    h.clock.set(t0 + escalate_at)
    await h.drain()
    silent_grids = {g for g, v in grids.items() if v.primary in silent}  # type: ignore[attr-defined]
    backups = {reg.chain(g, at=h.clock.now())[1] for g in silent_grids}
    esc = [d for d in h.sent() if d.kind is DeliveryKind.ESCALATION and d.step == 10]
    assert {d.target_id for d in esc} == backups
    assert {d.channel for d in esc} == set(policy.escalation_channels)
    # Half of the backups confirm; the rest of the chain is walked for the others.
    backup_answer = set(sorted(backups)[::2])
    for pid in backup_answer:
        await record_ack(h.ctx, cid, pid, AckVia.DTMF)
    deadline = policy.ack_deadline_s or 0
    levels_seen = []
    for _ in policy.chain[1:]:
        h.clock.advance(deadline)
        await h.drain()
        levels_seen.append(sorted({d.step for d in h.sent() if d.kind is DeliveryKind.ESCALATION}))
    h.clock.advance(deadline)
    await h.drain()
    gstates = await h.ctx.store.grids(cid)
    confirmed = {g for g, v in gstates.items() if v.state.value == "confirmed"}
    unreached = {g for g, v in gstates.items() if v.state.value == "unreached"}
    expect_confirmed = {g for g, v in grids.items()
                        if v.primary in answered
                        or reg.chain(g, at=h.clock.now())[1] in backup_answer}  # type: ignore[attr-defined]
    assert confirmed == expect_confirmed
    assert unreached == set(grids) - expect_confirmed
    assert levels_seen[-1] == [10 * (i + 1) for i in range(len(policy.chain))]
    summ = await summary(h.ctx, res.alert_id)
    assert {r["grid_id"] for r in summ["unreached"]} == unreached
    assert summ["confirmed"] == len(answered) + len(backup_answer)
    # The record has one row per attempt and shows who confirmed, how.
    rows = await record_rows(h.ctx, res.alert_id)
    attempts = [r for r in rows if r["attempt"]]
    assert len(attempts) == len(h.sent())
    by_person = {r["person_id"]: r for r in rows}
    for pid in answered:
        assert by_person[pid]["confirmed_via"] == "link"
    for pid in backup_answer:
        assert by_person[pid]["confirmed_via"] == "dtmf"


async def test_ack_stops_queued_calls(h: Harness) -> None:
    res = await accept(h.ctx, cap_alert(), ENGINE)
    await h.app.engine.inbox_once()  # planned and queued, nothing sent yet
    grids = grids_of(h, TOWNS)
    pid = sorted({g.primary for g in grids.values()})[0]  # type: ignore[attr-defined]
    await record_ack(h.ctx, res.campaign_id, pid, AckVia.CONSOLE, by="duty", reason="phoned")
    await h.drain()
    assert not [d for d in h.sent() if d.target_id == pid]


async def test_update_adds_and_drops_targets_and_cancel_stops_everything(h: Harness) -> None:
    first = cap_alert()
    res = await accept(h.ctx, first, ENGINE)
    await h.drain()
    ref = Reference(first.sender, first.identifier, "2026-07-15T05:30:00+08:00")
    upd = cap_alert("43062304100000_20260715083000_2", msg_type=MsgType.UPDATE,
                    codes=("430623101000", "430623103000"), references=(ref,))
    ures = await accept(h.ctx, upd, ENGINE)
    assert ures.campaign_id == res.campaign_id
    await h.drain()
    old = grids_of(h, TOWNS)
    new = grids_of(h, ("430623101000", "430623103000"))
    added = {g.primary for g in new.values()} - {g.primary for g in old.values()}  # type: ignore[attr-defined]
    dropped = {g.primary for g in old.values()} - {g.primary for g in new.values()}  # type: ignore[attr-defined]
    warned_by_update = {d.target_id for d in h.sent("voice")
                        if d.alert_id == upd.alert_id and d.kind is DeliveryKind.WARNING}
    assert warned_by_update == added
    updated = {d.target_id for d in h.sent("voice") if d.kind is DeliveryKind.UPDATE}
    assert updated and not (updated & dropped)
    gstates = await h.ctx.store.grids(res.campaign_id)
    assert all(gstates[g].state.value == "dropped" for g in set(old) - set(new))
    # Dropped people are not redialled.
    policy = h.ctx.rules.policy_for(Level.RED)
    h.clock.advance(policy.ack_deadline_s or 0)
    await h.drain()
    assert not [d for d in h.sent() if d.kind is DeliveryKind.REDIAL and d.target_id in dropped]
    # Cancel: 解除 notices to the people reached, then nothing more.
    cancel = cap_alert("43062304100000_20260715143000_3", msg_type=MsgType.CANCEL,
                       references=(ref,))
    cres = await accept(h.ctx, cancel, ENGINE)
    assert cres.campaign_id == res.campaign_id
    await h.drain()
    notices = [d for d in h.sent() if d.kind is DeliveryKind.CANCEL]
    assert {d.target_id for d in notices if d.target_kind.value == "person"} >= added
    assert {d.channel for d in notices} == set(policy.cancel_channels) | set(policy.device_channels)
    before = len(h.sent())
    for _ in range(6):
        h.clock.advance(600)
        await h.drain()
    assert len(h.sent()) == before
    view = await alert_view(h.ctx, res.alert_id)
    assert view["campaign"]["state"] == "cancelled"
    assert view["counts"]["pending"] == 0


async def test_a_thread_is_lifted_once_a_later_cancel_notifies_nobody(h: Harness) -> None:
    """Every Cancel of a cancelled thread (its sender resending, another identifier) sent
    the 解除 notice to everyone reached again; it joins the thread and sends nothing."""
    first = cap_alert(codes=("430623101000",))
    res = await accept(h.ctx, first, ENGINE)
    await h.drain()
    ref = Reference(first.sender, first.identifier, "2026-07-15T05:30:00+08:00")
    notices: list[set[str]] = []
    cancels = [cap_alert(f"43062304100000_2026071514300{n}_1", msg_type=MsgType.CANCEL,
                         codes=("430623101000",), references=(ref,)) for n in (1, 2)]
    for cancel in cancels:
        got = await accept(h.ctx, cancel, ENGINE)
        assert got.created and got.campaign_id == res.campaign_id
        await h.drain()
        notices.append({d.id for d in h.sent() if d.kind is DeliveryKind.CANCEL})
    assert notices[0] and notices[1] == notices[0]
    assert {d.alert_id for d in h.sent() if d.kind is DeliveryKind.CANCEL} == {
        cancels[0].alert_id}
    # The first Cancel handled again (a worker died after taking it): it carries on.
    with capture_logs() as logs:
        await h.app.engine.lifecycle.handle(res.campaign_id, cancels[0].alert_id)
    assert any(e["event"] == "campaign cancelled" for e in logs)


async def test_expiry_stops_redials_and_escalation(h: Harness) -> None:
    res = await accept(h.ctx, cap_alert(hours=1), ENGINE)
    await h.drain()
    policy = h.ctx.rules.policy_for(Level.RED)
    h.clock.advance(policy.ack_deadline_s or 0)
    await h.drain()
    assert [d for d in h.sent() if d.kind is DeliveryKind.REDIAL], "redials before expiry"
    h.clock.advance(3600)
    await h.drain()
    assert (await alert_view(h.ctx, res.alert_id))["campaign"]["state"] == "expired"
    after_expiry = len(h.sent())
    for _ in range(5):
        h.clock.advance(600)
        await h.drain()
    assert len(h.sent()) == after_expiry


async def test_speakers_that_do_not_play_put_their_officer_on_notice(h: Harness) -> None:
    from warnbus.plugin import ProviderStatus

    res = await accept(h.ctx, cap_alert(), ENGINE)
    await h.drain()
    reg = h.ctx.registry
    area = next(d for d in h.sent("loudspeaker") if reg.devices_of_village(d.address)
                and len(reg.devices_of_village(d.address)) >= 2)
    devices = [reg.data.devices[x] for x in reg.devices_of_village(area.address)]
    played, silent = devices[1:], devices[0]
    for dev in played:
        await h.app.engine.sink.delivery_status(res.campaign_id, area.id, f"dev:{dev.id}",
                                                ProviderStatus.PLAYING)
    await h.app.engine.sink.delivery_status(res.campaign_id, area.id, f"dev:{silent.id}",
                                            ProviderStatus.FAILED, "amplifier fault")
    states = await h.ctx.store.delivery_states(res.campaign_id)
    assert states[area.id] == "delivered", "one speaker failing does not fail the area"
    policy = h.ctx.rules.policy_for(Level.RED)
    h.clock.advance((policy.speaker_deadline_s or 0) + 1)
    await h.drain()
    # (The other areas' test-channel speakers report nothing, so they get notices too.)
    notices = [d for d in h.sent() if d.kind is DeliveryKind.NOTICE and d.text.find(
        silent.name) >= 0]
    grid = reg.data.grids.get(silent.grid) if silent.grid else None
    heads = {p.id for p in reg.persons_by_role(Role.VILLAGE_HEAD) if p.region == area.address}
    expect = {grid.primary} if grid else heads
    assert notices and {d.target_id for d in notices} == expect
    assert {d.channel for d in notices} <= set(policy.cancel_channels)
    for dev in played:  # speakers that reported are not named
        assert all(dev.name not in d.text for d in notices if dev.name != silent.name)


async def test_exercise_goes_to_drill_participants_only_and_is_marked(h: Harness) -> None:
    from warnbus.domain.models import Status

    res = await accept(h.ctx, cap_alert(codes=("430623",), status=Status.EXERCISE), ENGINE)
    await h.drain()
    persons = h.ctx.registry.data.persons
    sent = h.sent()
    assert sent, "the sample county has drill participants"
    assert all(persons[d.target_id].drill for d in sent if d.target_kind.value == "person")
    assert not h.sent("loudspeaker"), "no public loudspeaker plays a drill"
    assert all("演练" in d.text for d in sent)
    view = await alert_view(h.ctx, res.alert_id)
    assert view["counts"]["targets"] == len({d.target_id for d in sent})


async def test_a_late_confirmation_takes_a_grid_off_the_unreached_list(h: Harness) -> None:
    res = await accept(h.ctx, cap_alert(), ENGINE)
    await h.drain()
    for _ in range(12):
        h.clock.advance(300)
        await h.drain()
    gstates = await h.ctx.store.grids(res.campaign_id)
    assert {g.state.value for g in gstates.values()} == {"unreached"}
    gid = sorted(gstates)[0]
    primary = h.ctx.registry.data.grids[gid].primary
    r = await record_ack(h.ctx, res.campaign_id, primary, AckVia.CONSOLE, by="值班员",
                         reason="电话回访")
    assert r.recorded
    after = await h.ctx.store.grids(res.campaign_id)
    assert after[gid].state.value == "confirmed"
    view = await alert_view(h.ctx, res.alert_id)
    assert view["counts"]["unreached"] == len(gstates) - sum(
        1 for x in after.values() if x.state.value == "confirmed")


async def test_a_confirmation_through_a_delivery_marks_it_delivered(h: Harness) -> None:
    """A key pressed in a call (or a card's button) confirms the person and shows that the
    call arrived: one atomic step moves that delivery to delivered and records both, also
    when the person had already confirmed another way; other deliveries keep their state."""
    res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
    await h.drain()
    calls = [d for d in h.sent("voice") if d.kind is DeliveryKind.WARNING]
    first, second = calls[0], calls[1]
    sink = h.app.engine.sink
    assert await sink.confirm(res.campaign_id, first.target_id, AckVia.DTMF, first.id)
    await record_ack(h.ctx, res.campaign_id, second.target_id, AckVia.LINK)
    assert not await sink.confirm(res.campaign_id, second.target_id, AckVia.DTMF, second.id)
    states = await h.ctx.store.delivery_states(res.campaign_id)
    assert states[first.id] == states[second.id] == "delivered"
    assert {states[d.id] for d in calls[2:]} == {"sent"}
    sms = next(d for d in h.sent("sms") if d.target_id == first.target_id)
    assert states[sms.id] == "sent"
    marked = [(ev["d"], ev["x"]) for ev in await h.ctx.store.audit(res.campaign_id)
              if ev.get("ev") == "status" and ev.get("s") == "delivered"]
    assert marked == [(first.id, "confirmed by dtmf"), (second.id, "confirmed by dtmf")]


async def test_an_sms_reply_confirms_the_active_campaigns_that_call_the_sender(h: Harness
                                                                               ) -> None:
    """A reply names no campaign: it confirms the sender in each active campaign where they
    are a target, once; an ended campaign and one that does not call them are left alone
    (and not counted as refused confirmations)."""
    from warnbus.runtime import metrics

    town = await accept(h.ctx, cap_alert("a-town", codes=("430623101000",)), ENGINE)
    other = await accept(h.ctx, cap_alert("a-other", codes=("430623105000",)), ENGINE)
    ended = await accept(h.ctx, cap_alert("a-ended", codes=("430623101000",)), ENGINE)
    await h.drain()
    cancel = cap_alert("a-ended-cancel", msg_type=MsgType.CANCEL, codes=("430623101000",),
                       references=(Reference(cap_alert().sender, "a-ended",
                                             "2026-07-15T05:30:00+08:00"),))
    await accept(h.ctx, cancel, ENGINE)
    await h.drain()
    # As if the process cancelling it died between the state change and the index update:
    # the ended campaign is still listed among the active ones.
    await h.ctx.store.activate(ended.campaign_id, h.clock.now())
    sms = next(d for d in h.sent("sms") if d.campaign_id == town.campaign_id)
    person = h.ctx.person(sms.target_id)
    assert person is not None and person.phone
    refused = metrics.ACKS.labels("sms", "not_target")._value.get()
    sink = h.app.engine.sink
    assert await sink.confirm_from("sms", person.phone, AckVia.SMS) == [town.campaign_id]
    assert await sink.confirm_from("sms", person.phone, AckVia.SMS) == []  # already confirmed
    assert metrics.ACKS.labels("sms", "not_target")._value.get() == refused
    for cid, acked in ((town.campaign_id, True), (other.campaign_id, False),
                       (ended.campaign_id, False)):
        assert await h.ctx.store.is_acked(cid, person.id) is acked


async def test_sms_replies_read_the_active_campaigns_once_per_second(h: Harness) -> None:
    """A burst of replies reads the active campaigns once; a reply that finds nothing to
    confirm in that list reads it again, so a campaign started meanwhile is not missed."""
    first = await accept(h.ctx, cap_alert("a-first", codes=("430623101000",)), ENGINE)
    await h.drain()
    sink = h.app.engine.sink
    phones = sorted({p.phone for d in h.sent("sms") if d.campaign_id == first.campaign_id
                     if (p := h.ctx.person(d.target_id)) is not None and p.phone})
    assert len(phones) > 3
    reads = 0
    real = h.ctx.store.active_campaigns

    async def counted() -> list[str]:
        nonlocal reads
        reads += 1
        return await real()

    h.ctx.store.active_campaigns = counted  # type: ignore[method-assign]
    for phone in phones[:3]:
        assert await sink.confirm_from("sms", phone, AckVia.SMS) == [first.campaign_id]
    assert reads == 1
    # A second campaign for other persons starts within the second the list was read.
    second = await accept(h.ctx, cap_alert("a-second", codes=("430623105000",)), ENGINE)
    await h.drain()
    phone = next(p.phone for d in h.sent("sms") if d.campaign_id == second.campaign_id
                 if (p := h.ctx.person(d.target_id)) is not None and p.phone)
    assert await sink.confirm_from("sms", phone, AckVia.SMS) == [second.campaign_id]
    assert reads == 2
    h.clock.advance(1.5)
    assert await sink.confirm_from("sms", phones[3], AckVia.SMS) == [first.campaign_id]
    assert reads == 3
