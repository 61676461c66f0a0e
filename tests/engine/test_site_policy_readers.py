"""The people called only for sites are held to the sites' own policy row wherever a policy is
read for a person, not only by the escalation: the ack page and the ack script (whether the
解除 asks a confirmation), the report deadline after the ack, the board's reports due and the
console preview's redials and deadlines. The sites' orange row here differs from the grids'
in each of these; a grid officer of the same warning stays on the grids' row."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio

from tests.engine.helpers import T0, Harness, make_harness, web_client
from tests.engine.test_sites_campaign import GAUGE, warning
from warnbus.domain.models import (
    AckVia,
    Area,
    Category,
    Delivery,
    Level,
    MsgType,
    Reference,
    Role,
)
from warnbus.flow.acks import record_ack
from warnbus.flow.credentials import ENGINE
from warnbus.flow.feedback_view import feedback_tallies
from warnbus.flow.intake import accept
from warnbus.plugin import Medium
from warnbus.web.console.actions import stop_calling
from warnbus.web.console.base import ConsoleSettings
from warnbus.web.console.preview import (
    VOICE_CHARS_PER_MIN,
    continuation_preview,
    preview,
    sms_segments,
)

RULES = Path(__file__).resolve().parents[2] / "rules" / "sites.toml"
#: The sites' orange row: a 解除 to confirm, reports due in 30 min, no redials.
SITES_ORANGE = """[levels.orange]
channels = ["voice", "sms", "wecom"]
ack_deadline_s = 300
redials = 0
chain = ["primary", "village_head", "township_duty"]
step_deadline_s = 300
escalation_channels = ["voice", "sms", "wecom"]
cancel_channels = ["sms", "wecom"]
cancel_confirm = true
feedback_village_s = 1800
feedback_township_s = 3600
feedback_remind_s = 600
feedback_channels = ["sms"]
"""


def _sites_file(tmp: Path, orange: str) -> str:
    text = re.sub(r"\[levels\.orange\]\n.*?(?=\n\[levels\.yellow\])", orange, RULES.read_text(),
                  flags=re.S)
    path = tmp / "sites.toml"
    path.write_text(text)
    return str(path)


@pytest_asyncio.fixture
async def h(redis_url: str, tmp_path: Path) -> AsyncIterator[Harness]:
    harness = await make_harness(redis_url, sites=_sites_file(tmp_path, SITES_ORANGE))
    yield harness
    await harness.app.close()


FLOOD = warning("洪水", Category.ENV, Area("治河渡站周边20公里", circles=(GAUGE,)))


async def _flood(h: Harness) -> tuple[str, str, str]:
    """The campaign, a person called only for sites and a grid officer, both in villages."""
    res = await accept(h.ctx, FLOOD, ENGINE)
    await h.drain(rounds=1000)
    reg, cid = h.ctx.registry, res.campaign_id
    held = await h.ctx.store.board.holds(cid)
    village = {p for p, x in reg.data.persons.items() if x.region in reg.data.regions
               and reg.data.regions[x.region].level.value == "village"}
    sited = sorted(p for p, keys in held.items() if p in village and keys
                   and all(reg.is_site(g) for g, _lv in keys))
    gridded = sorted(p for p, keys in held.items() if p in village and keys
                     and not any(reg.is_site(g) for g, _lv in keys))
    assert sited and gridded
    return cid, sited[0], gridded[0]


def _link(h: Harness, pid: str) -> str:
    url = next(d.ack_url for d in h.sent("sms") if d.target_id == pid and d.ack_url)
    return url.replace("http://test", "")


async def test_the_ack_page_and_script_ask_the_sites_people_to_confirm_the_lift(
        h: Harness) -> None:
    cid, site_person, officer = await _flood(h)
    cancel = msgspec.structs.replace(
        FLOOD, identifier="43062300000000_20260715063000_cancel", msg_type=MsgType.CANCEL,
        references=(Reference(FLOOD.sender, FLOOD.identifier, "2026-07-15T05:30:00+08:00"),))
    assert (await accept(h.ctx, cancel, ENGINE)).campaign_id == cid
    await h.drain(rounds=1000)
    async with web_client(h) as client:
        html = {"Accept": "text/html"}
        page = await (await client.get(_link(h, site_person))).text()
        assert "确认收到解除通知" in page  # the sites' row: cancel_confirm
        said = await (await client.post(_link(h, site_person), headers=html)).text()
        assert "已确认收到解除通知" in said
        page = await (await client.get(_link(h, officer))).text()
        assert "无需确认" in page and "确认收到解除通知" not in page  # the grids' row
        said = await (await client.post(_link(h, officer), headers=html)).text()
        assert "已确认收到解除通知" not in said


async def test_a_sites_persons_report_is_due_by_the_sites_row(h: Harness) -> None:
    cid, site_person, officer = await _flood(h)
    t = T0.timestamp() + 10
    h.clock.set(t)
    await record_ack(h.ctx, cid, site_person, AckVia.SMS)
    await record_ack(h.ctx, cid, officer, AckVia.SMS)
    await stop_calling(h.ctx, cid, "值班员", "测试：只看反馈")  # no redials to wade through
    # The reminder 600 s before the sites' 1800 s, by the sites' feedback channels.
    h.clock.set(t + 1800 - 600)
    await h.drain(rounds=1000)
    reminded = [d for d in h.sent() if d.kind.value == "feedback"]
    assert [(d.target_id, d.channel) for d in reminded] == [(site_person, "sms")]
    h.clock.set(t + 1800)
    await h.drain(rounds=1000)
    assert (await h.ctx.store.feedback.latest_of(cid, site_person)).overdue == t + 1800
    assert (await h.ctx.store.feedback.latest_of(cid, officer)).overdue is None  # 3600 s
    h.clock.set(t + 3600)
    await h.drain(rounds=1000)
    assert (await h.ctx.store.feedback.latest_of(cid, officer)).overdue == t + 3600
    tallies = await feedback_tallies(h.ctx, cid)
    assert tallies[""].overdue == 2


async def test_the_board_counts_no_report_due_where_the_sites_row_asks_none(
        redis_url: str, tmp_path: Path) -> None:
    orange = re.sub(r"feedback_\w+ = .*\n", "", SITES_ORANGE)
    h = await make_harness(redis_url, sites=_sites_file(tmp_path, orange))
    try:
        cid, site_person, officer = await _flood(h)
        await record_ack(h.ctx, cid, site_person, AckVia.SMS)
        await record_ack(h.ctx, cid, officer, AckVia.SMS)
        await stop_calling(h.ctx, cid, "值班员", "测试：只看反馈")
        assert (await feedback_tallies(h.ctx, cid))[""].due == 1  # the officer only
        h.clock.set(T0.timestamp() + 7200)
        await h.drain(rounds=1000)
        assert (await h.ctx.store.feedback.latest_of(cid, site_person)).overdue is None
    finally:
        await h.app.close()


@pytest.mark.parametrize("redials", [0, 2])
async def test_the_preview_prices_the_sites_people_on_their_row(
        redis_url: str, tmp_path: Path, redials: int) -> None:
    """The same warning, the sites' row with no redials or the grids' two: the first round
    costs the same, the most it can cost differs by the site people's redials alone."""
    orange = SITES_ORANGE.replace("redials = 0\n", f"redials = {redials}\nredial_window_s = 600"
                                  '\nredial_channels = ["voice", "sms"]\n')
    h = await make_harness(redis_url, sites=_sites_file(tmp_path, orange))
    try:
        p = preview(h.ctx, FLOOD, ConsoleSettings())
        grid = h.ctx.rules.policy_for(Level.ORANGE)
        assert (p["redials"], p["deadline"]) == (grid.redials,
                                                 "5分钟内须确认，未确认重拨2次后逐级升级")
        assert p["site_persons"] > 0 and p["site_redials"] == redials
        assert p["site_deadline"] == f"5分钟内须确认，未确认重拨{redials}次后逐级升级"
        res = await accept(h.ctx, FLOOD, ENGINE)
        await h.drain(rounds=1000)
        sited = {t.id for t in (await h.ctx.store.targets(res.campaign_id)).values()
                 if t.role is Role.SITE}
        first = [d for d in h.sent() if d.kind.value == "warning" and d.asks_confirmation]
        s = ConsoleSettings()

        def price(d: Delivery) -> float:
            medium = h.ctx.channels[d.channel].medium
            if medium is Medium.VOICE:
                return s.voice_price * math.ceil(len(d.text) / VOICE_CHARS_PER_MIN)
            return s.sms_price * sms_segments(d.text) if medium is Medium.SMS else 0.0

        site_redial_cost = sum(price(d) * redials for d in first
                               if d.target_id in sited and d.channel in ("voice", "sms"))
        grid_redial_cost = sum(price(d) * grid.redials for d in first
                               if d.target_id not in sited and d.channel in grid.redial_channels)
        assert p["cost_max"] == pytest.approx(p["cost"] + site_redial_cost + grid_redial_cost,
                                              abs=0.02 * len(first))
        # The Update's preview, on the campaign: the same rows for the same people.
        update = msgspec.structs.replace(
            FLOOD, identifier="43062300000000_20260715063000_update", msg_type=MsgType.UPDATE,
            references=(Reference(FLOOD.sender, FLOOD.identifier,
                                  "2026-07-15T05:30:00+08:00"),))
        u = await continuation_preview(h.ctx, update, ConsoleSettings(), res.campaign_id)
        assert u["site_persons"] > 0 and u["site_redials"] == redials
    finally:
        await h.app.close()
