"""What people receive when a warning is lifted or narrowed, read off the test channels of a
whole engine on a real redis-server (issue 17: a 解除 announced a warning and asked for a
key press; a narrowing Update told the dropped area nothing)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio

from channels.wecom import CARD_TEXT_MAX, WeCom
from tests.engine.helpers import T0, Harness, cap_alert, make_harness, web_client
from warnbus.domain.models import AckVia, DeliveryKind, Level, MsgType, Reference, TargetKind
from warnbus.domain.states import GridState
from warnbus.domain.steps import Step
from warnbus.flow.acks import record_ack
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.plugin import Confirmation

TOWNS = ("430623101000", "430623102000")  # 章华镇, 鲇鱼须镇
KEPT, DROPPED = "430623101000", "430623102000"
LIFTED_AT = T0 + timedelta(hours=1)  # 14:30 Beijing time
ASKS = re.compile(r"按1|回复1|确认收到|/ack/")


@pytest_asyncio.fixture
async def h(redis_url: str) -> AsyncIterator[Harness]:
    harness = await make_harness(redis_url)
    yield harness
    await harness.app.close()


def ref_of(alert):  # type: ignore[no-untyped-def]
    return Reference(alert.sender, alert.identifier, alert.sent.isoformat())


def villages_of(h: Harness, town: str) -> set[str]:
    return set(h.ctx.registry.children_of(town))


def primaries_of(h: Harness, town: str) -> set[str]:
    return {g.primary for g in h.ctx.registry.data.grids.values() if g.village[:9] == town[:9]}


async def test_a_cancel_announces_the_lifting_on_every_channel_and_asks_nothing(
        h: Harness) -> None:
    first = cap_alert(codes=TOWNS)
    res = await accept(h.ctx, first, ENGINE)
    await h.drain()
    cancel = cap_alert("43062304100000_20260715143000_3", msg_type=MsgType.CANCEL, codes=TOWNS,
                       references=(ref_of(first),), sent=LIFTED_AT)
    await accept(h.ctx, cancel, ENGINE)
    await h.drain()
    lifts = [d for d in h.sent() if d.kind is DeliveryKind.CANCEL]
    policy = h.ctx.rules.policy_for(Level.RED)
    assert {d.channel for d in lifts} == set(policy.cancel_channels) | set(policy.device_channels)
    persons = {d.target_id for d in lifts if d.target_kind is TargetKind.PERSON}
    assert persons == primaries_of(h, KEPT) | primaries_of(h, DROPPED)
    assert {d.address for d in lifts if d.channel == "loudspeaker"} == (
        villages_of(h, KEPT) | villages_of(h, DROPPED))
    for d in lifts:
        # who lifts which warning, since when, for which area; nothing asked, no guidance
        assert "解除" in d.text and "华容县气象台" in d.text and "暴雨红色预警" in d.text, d.text
        assert "7月15日14时30分" in d.text and "430623101000" in d.text, d.text
        assert not ASKS.search(d.text) and "立即转移" not in d.text, d.text
        assert "紧急通知" not in d.text and "【红色预警】" not in d.text, d.text
        assert d.ack_url is None and not d.asks_confirmation
    # Nobody is redialled for it.
    before = len(h.sent())
    for _ in range(4):
        h.clock.advance(600)
        await h.drain()
    assert len(h.sent()) == before
    assert res.campaign_id


async def test_a_narrowing_update_lifts_the_dropped_area_and_says_what_changed(
        h: Harness) -> None:
    first = cap_alert(codes=TOWNS)
    res = await accept(h.ctx, first, ENGINE)
    await h.drain()
    cid = res.campaign_id
    dropped_people = primaries_of(h, DROPPED) - primaries_of(h, KEPT)
    upd = cap_alert("43062304100000_20260715083000_2", msg_type=MsgType.UPDATE, codes=(KEPT,),
                    references=(ref_of(first),), sent=LIFTED_AT)
    await accept(h.ctx, upd, ENGINE)
    await h.drain()
    lifted = [d for d in h.sent() if d.kind is DeliveryKind.CANCEL]
    assert lifted and {d.alert_id for d in lifted} == {upd.alert_id}
    # The persons reached there, on the 解除 channels, and the dropped villages' speakers.
    policy = h.ctx.rules.policy_for(Level.RED)
    assert {d.target_id for d in lifted if d.target_kind is TargetKind.PERSON} == dropped_people
    assert {d.channel for d in lifted if d.target_kind is TargetKind.PERSON} == set(
        policy.cancel_channels)
    assert {d.address for d in lifted if d.channel == "loudspeaker"} == villages_of(h, DROPPED)
    for d in lifted:
        assert "解除" in d.text and "7月15日14时30分" in d.text, d.text
        if d.target_kind is TargetKind.PERSON:
            assert "鲇鱼须镇" in d.text and "章华镇" not in d.text, d.text
        assert not ASKS.search(d.text) and "立即转移" not in d.text, d.text
    # Those still in the area read 更新 and what changed.
    updates = [d for d in h.sent() if d.kind is DeliveryKind.UPDATE]
    assert updates and not {d.target_id for d in updates} & dropped_people
    for d in updates:
        assert "更新" in d.text and "不再包括：鲇鱼须镇" in d.text, d.text
    grids = await h.ctx.store.grids(cid)
    town_grids = {g for g in grids if h.ctx.registry.data.grids[g].village[:9] == DROPPED[:9]}
    assert town_grids and all(grids[g].state is GridState.DROPPED for g in town_grids)
    # A second Update that leaves it out too, then the Cancel: the dropped area hears no
    # more (its 解除 came once).
    upd2 = cap_alert("43062304100000_20260715093000_4", msg_type=MsgType.UPDATE, codes=(KEPT,),
                     references=(ref_of(upd),), sent=LIFTED_AT + timedelta(minutes=30))
    await accept(h.ctx, upd2, ENGINE)
    await h.drain()
    cancel = cap_alert("43062304100000_20260715143000_3", msg_type=MsgType.CANCEL,
                       codes=(KEPT,), references=(ref_of(upd2),),
                       sent=LIFTED_AT + timedelta(hours=1))
    await accept(h.ctx, cancel, ENGINE)
    await h.drain()
    to_dropped = [d for d in h.sent() if d.target_id in dropped_people
                  or d.address in villages_of(h, DROPPED)]
    assert {d.alert_id for d in to_dropped if d.kind is DeliveryKind.CANCEL} == {upd.alert_id}
    assert not [d for d in to_dropped if d.alert_id in (upd2.alert_id, cancel.alert_id)]


async def test_a_card_links_to_the_full_text_on_the_ack_page(redis_url: str) -> None:
    """The WeCom card of a warning carries 160 characters: the text is planned within them,
    with the figures' beginning and the instruction, and the card's link opens the person's
    ack page, which shows the whole description."""
    h = await make_harness(redis_url, max_length={"wecom": CARD_TEXT_MAX})
    figures = "".join(f"第{i}站累计降雨量{100 + i}毫米，" for i in range(30)) + "山洪风险极高。"
    base = cap_alert(codes=(KEPT,))
    alert = msgspec.structs.replace(base, infos=(msgspec.structs.replace(
        base.infos[0], description=figures),))
    await accept(h.ctx, alert, ENGINE)
    await h.drain()
    d = next(d for d in h.sent("wecom") if d.kind is DeliveryKind.WARNING)
    assert d.asks_confirmation and d.ack_url and len(d.text) <= CARD_TEXT_MAX
    assert "第0站累计降雨量100毫米" in d.text and "第29站" not in d.text
    assert "危险区域人员立即转移" in d.text and d.text.endswith("请点击“确认收到”")
    wecom = WeCom.from_config("wecom", {
        "type": "wecom", "corp_id": "ww5f3c1a2b4d6e8f90", "corp_secret": "s", "agent_id": 1,
        "token": "t", "encoding_aes_key": "kWxPEV2UEDyxWpmPdKC3F0dgV3b0sBsP3xYkAeDPeSU",
        "api_base": "http://127.0.0.1:9"})
    card = wecom.build_message(d)["template_card"]
    [link] = card["horizontal_content_list"]
    assert link["url"] == d.ack_url and card["card_action"]["url"] == d.ack_url
    async with web_client(h) as client:
        r = await client.get(d.ack_url.removeprefix("http://test"))
        page = await r.text()
        assert r.status == 200 and figures in page and "危险区域人员立即转移" in page
        assert "确认收到" in page


@pytest.fixture
def confirm_policy(tmp_path: Path) -> Path:
    """The bundled policy, with a red 解除 that asks for a confirmation, by call too."""
    text = (Path(__file__).resolve().parents[2] / "rules" / "policy.toml").read_text("utf-8")
    text = text.replace('cancel_channels = ["sms", "wecom"]\nspeaker_deadline_s = 180',
                        'cancel_channels = ["voice", "sms", "wecom"]\ncancel_confirm = true\n'
                        'speaker_deadline_s = 180', 1)
    assert "cancel_confirm = true" in text
    path = tmp_path / "policy.toml"
    path.write_text(text, "utf-8")
    return path


async def test_a_cancel_the_policy_wants_confirmed_is_confirmed_after_the_end(
        redis_url: str, confirm_policy: Path) -> None:
    h = await make_harness(redis_url, policy=str(confirm_policy))
    try:
        first = cap_alert(codes=(KEPT,))
        res = await accept(h.ctx, first, ENGINE)
        await h.drain()
        cid = res.campaign_id
        confirmed_early = sorted(primaries_of(h, KEPT))[0]
        assert (await record_ack(h.ctx, cid, confirmed_early, AckVia.LINK)).recorded
        cancel = cap_alert("43062304100000_20260715143000_3", msg_type=MsgType.CANCEL,
                           codes=(KEPT,), references=(ref_of(first),), sent=LIFTED_AT)
        await accept(h.ctx, cancel, ENGINE)
        await h.drain()
        lifts = [d for d in h.sent() if d.kind is DeliveryKind.CANCEL
                 and d.target_kind is TargetKind.PERSON]
        voice = [d for d in lifts if d.channel == "voice"]
        assert voice and all("按1" in d.text and d.asks_confirmation for d in voice)
        assert all(d.ack_url for d in lifts if d.channel == "sms")
        # A key on the 解除 call: kept as a confirmation after the end, also from someone
        # who had confirmed the warning in time; the caller hears the warning is lifted.
        call = next(d for d in voice if d.target_id == confirmed_early)
        got = await h.app.engine.sink.confirm(cid, call.target_id, AckVia.DTMF, call.id)
        assert got is Confirmation.LIFTED and not got
        late = [e for e in await h.ctx.store.audit(cid) if e.get("ev") == "late"]
        assert [(e["tg"], e["d"]) for e in late] == [(confirmed_early, call.id)]
        # The ack link asks for the 解除 and shows it.
        sms = next(d for d in lifts if d.channel == "sms")
        async with web_client(h) as client:
            r = await client.get(sms.ack_url.removeprefix("http://test"))  # type: ignore[union-attr]
            page = await r.text()
            assert "确认收到解除通知" in page and "<button" in page
            r = await client.post(sms.ack_url.removeprefix("http://test"),  # type: ignore[union-attr]
                                  headers={"Accept": "text/html"})
            assert "已确认收到解除通知" in await r.text()
    finally:
        await h.app.close()


async def test_a_confirmation_from_the_dropped_area_is_late_as_after_a_cancel(
        h: Harness) -> None:
    """Whoever an Update dropped got their area's 解除: a key, a click or the ack link of
    the warning then (a call or card of before) is late, never confirmed as in time."""
    first = cap_alert(codes=TOWNS)
    res = await accept(h.ctx, first, ENGINE)
    await h.drain()
    cid = res.campaign_id
    dropped_people = sorted(primaries_of(h, DROPPED) - primaries_of(h, KEPT))
    kept_person = sorted(primaries_of(h, KEPT) - primaries_of(h, DROPPED))[0]
    upd = cap_alert("43062304100000_20260715083000_2", msg_type=MsgType.UPDATE, codes=(KEPT,),
                    references=(ref_of(first),), sent=LIFTED_AT)
    await accept(h.ctx, upd, ENGINE)
    await h.drain()
    pid, link_pid = dropped_people[0], dropped_people[1]
    call = next(d for d in h.sent() if d.target_id == pid and d.kind is DeliveryKind.WARNING)
    got = await h.app.engine.sink.confirm(cid, pid, AckVia.DTMF, call.id)
    assert got is Confirmation.LIFTED and not got
    assert not await h.ctx.store.is_acked(cid, pid)
    late = [e for e in await h.ctx.store.audit(cid) if e.get("ev") == "late"]
    assert [(e["tg"], e["s"]) for e in late] == [(pid, "dropped")]
    # The ack link of the warning says the area's warning was lifted, and asks nothing.
    link = h.app.links.token(cid, link_pid, h.clock.now())
    async with web_client(h) as client:
        page = await (await client.get(f"/ack/{link}")).text()
        assert "您所在区域的预警已解除，无需确认" in page and "<button" not in page, page
        r = await client.post(f"/ack/{link}", headers={"Accept": "text/html"})
        assert "您所在区域的预警已解除" in await r.text()
    assert not await h.ctx.store.is_acked(cid, link_pid)
    # Those still in the area confirm as before.
    got = await h.app.engine.sink.confirm(cid, kept_person, AckVia.WECOM)
    assert got is Confirmation.RECORDED and await h.ctx.store.is_acked(cid, kept_person)


async def test_an_area_an_update_puts_back_is_warned_and_called_again(h: Harness) -> None:
    """Dropped, then put back by a later Update: its persons (who heard the 解除) get the
    warning again, asking to confirm; their grids call again (redials come), and a key
    confirms in time, not late as for a dropped area."""
    first = cap_alert(codes=TOWNS)
    res = await accept(h.ctx, first, ENGINE)
    await h.drain()
    cid = res.campaign_id
    narrow = cap_alert("43062304100000_20260715083000_2", msg_type=MsgType.UPDATE,
                       codes=(KEPT,), references=(ref_of(first),), sent=LIFTED_AT)
    await accept(h.ctx, narrow, ENGINE)
    await h.drain()
    for _ in range(3):  # the first chain's deadlines pass (nothing for the dropped area)
        h.clock.advance(600)
        await h.drain()
    back = cap_alert("43062304100000_20260715093000_4", msg_type=MsgType.UPDATE, codes=TOWNS,
                     references=(ref_of(narrow),), sent=LIFTED_AT + timedelta(minutes=30))
    await accept(h.ctx, back, ENGINE)
    await h.drain()
    returning = sorted(primaries_of(h, DROPPED) - primaries_of(h, KEPT))
    warned = {d.target_id for d in h.sent() if d.alert_id == back.alert_id
              and d.kind is DeliveryKind.WARNING and d.asks_confirmation}
    assert set(returning) <= warned
    grids = await h.ctx.store.grids(cid)
    town_grids = [g for g in grids if h.ctx.registry.data.grids[g].village[:9] == DROPPED[:9]]
    assert town_grids and all(grids[g].state is GridState.CALLING for g in town_grids)
    # Their deadlines count from now: a redial at the level's ack deadline, not at once.
    policy = h.ctx.rules.policy_for(Level.RED)
    def redials() -> dict[str, set[int]]:
        out: dict[str, set[int]] = {}
        for d in h.sent():
            if d.kind is DeliveryKind.REDIAL and d.alert_id == back.alert_id:
                out.setdefault(d.target_id, set()).add(int(d.step))
        return out

    h.clock.advance((policy.ack_deadline_s or 0) - 1)
    await h.drain()
    assert not set(redials()) & set(returning)
    h.clock.advance(2)
    await h.drain()
    # The first redial, once each (a chain counted from the first wave long ago would
    # have run all its redials at once).
    assert {pid: redials().get(pid) for pid in returning} == {
        pid: {int(Step.redial(1))} for pid in returning}
    got = await h.app.engine.sink.confirm(cid, returning[0], AckVia.WECOM)
    assert got is Confirmation.RECORDED and await h.ctx.store.is_acked(cid, returning[0])
