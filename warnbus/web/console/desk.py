"""The duty officer's desk: live campaigns with their progress, and what needs attention now.

Every console page that listens (the home page, a board) learns of each new message (an
alert from a feed, an API token or the console, an Update, a Cancel) and each draft waiting
for approval from `DeskWatch`, and raises a visible and audible notice (static/console.js).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from warnbus.domain.meta import CampaignMeta
from warnbus.domain.states import GridState, TargetState
from warnbus.flow.record import site_states
from warnbus.runtime.context import Context
from warnbus.web.console import html
from warnbus.web.console.auth import Users
from warnbus.web.console.base import PREFIX
from warnbus.web.console.board import ended_as, state_zh
from warnbus.web.console.drafts import Drafts
from warnbus.web.console.html import esc
from warnbus.web.console.shared import Shared

#: Newest messages and drafts a desk looks at (a notice for each one it has not seen).
WATCHED = 8


async def known(ctx: Context) -> str:
    """The messages and drafts a page already shows when it is served (`data-known`): its
    notices are for the ones that come after."""
    ids = [aid for aid, _at in await ctx.store.messages.newest(0, WATCHED)]
    ids += [d["id"] for d in await pending_drafts(ctx)]
    return esc(" ".join(ids))


def notices_bar(known_ids: str) -> str:
    """Where notices appear (for messages and drafts not in `known_ids`), and the switch of
    their sound (browsers play none before a click on the page)."""
    return (f'<div id="notices" aria-live="assertive" data-known="{known_ids}"></div>'
            '<p class="sound noprint"><button type="button" id="sound-btn">开启声音提示</button>'
            '<span id="sound-state" class="muted">新预警、待审批时响铃</span></p>')


@dataclass
class DeskWatch:
    """What is new at the desk; it reads the messages' details only when the newest change.
    Shared by every stream of the process (`shared`): one look per `ttl_s` for all."""

    approver: bool  # sees the drafts waiting for approval
    shared: Shared = field(default_factory=Shared)
    ttl_s: float = 0.0
    since: float = 0.0  # its stream's opening: nothing older is sent (`Shared.get`)

    async def poll(self, ctx: Context) -> dict[str, Any]:
        return dict(await self.shared.get(("desk", self.approver), self.ttl_s,
                                          lambda: self._look(ctx), since=self.since))

    async def _look(self, ctx: Context) -> dict[str, Any]:
        newest = await ctx.store.messages.newest(0, WATCHED)
        msgs = await self.shared.get(("msgs", tuple(newest)), 3600.0,
                                     lambda: messages(ctx, newest))
        drafts = await pending_drafts(ctx) if self.approver else []
        return {"msgs": msgs, "drafts": drafts}


async def messages(ctx: Context, newest: list[tuple[str, float]]) -> list[dict[str, Any]]:
    """The newest accepted messages, as a notice says them."""
    ids = [aid for aid, _at in newest]
    cids = await ctx.store.messages.campaigns_of(ids)
    alerts = await ctx.store.messages.alerts(list(zip(cids, ids, strict=True)))
    out = []
    for (aid, at), cid, alert in zip(newest, cids, alerts, strict=True):
        if alert is None:
            continue
        info = alert.primary_info()
        source = (await ctx.store.messages.sources(cid)).get(aid, "")
        out.append({"id": aid, "cid": cid, "at": at, "type": alert.msg_type.value,
                    "headline": (info.headline if info else "") or alert.identifier,
                    "level": ctx.rules.level_of(alert).value if info else "",
                    "drill": alert.is_drill, "source": html.source_zh(source)})
    return out


async def pending_drafts(ctx: Context) -> list[dict[str, Any]]:
    """The drafts waiting for approval; who drafted each by login (`by`) and 姓名 (`name`)."""
    names = await Users(ctx.redis).displays()
    return [{"id": d.id, "at": d.drafted_at, "kind": d.kind, "level": d.level,
             "headline": d.form.headline, "by": d.drafted_by,
             "name": names.get(d.drafted_by, d.drafted_by)}
            for d in await Drafts(ctx.redis).recent(20) if d.state == "pending"]


@dataclass(frozen=True)
class LiveRow:
    meta: CampaignMeta
    persons: int  # everyone who answers for a grid
    source: str
    stopped: bool  # a duty officer stopped its calling
    #: The sites' share of `meta.grid_counts` (they are tracked like grids, counted apart).
    sites: Counter[GridState] = field(default_factory=Counter)

    def grids(self) -> Counter[GridState]:
        """The grid states of the campaign without its sites."""
        return Counter(self.meta.grid_counts) - self.sites


async def live_rows(ctx: Context) -> list[LiveRow]:
    """The campaigns being carried out now, newest first."""
    cids = list(reversed(await ctx.store.active_campaigns()))
    persons = await ctx.store.board.persons(cids)
    out = []
    for cid, n in zip(cids, persons, strict=True):
        meta = await ctx.store.meta(cid)
        if meta is None:
            continue
        source = (await ctx.store.messages.sources(cid)).get(meta.root, "")
        stopped = await ctx.store.console.calls_stopped(cid) is not None
        out.append(LiveRow(meta, n, source, stopped, await site_states(ctx, cid)))
    return out


def live_html(rows: list[LiveRow], now: float) -> str:
    """The live campaigns as cards: level, headline, where from, how far the 叫应 got."""
    if not rows:
        return '<p class="muted" id="no-live">当前没有进行中的预警。</p>'
    out = []
    for r in rows:
        m = r.meta
        states = r.grids()
        grids = sum(states.values())
        # Past its expiry before the expiry timer has said so (or lifted, its index entry not
        # yet gone): over, every grid has ended and nobody is called.
        over = ended_as(m, now) is not None
        closed = grids if over else sum(n for st, n in states.items() if st in GridState.CLOSED)
        calling = 0 if over else sum(n for st, n in states.items() if st in GridState.OPEN)
        acked = m.target_count(TargetState.ACKED)
        pct = int(100 * acked / r.persons) if r.persons else 0
        t0 = m.t0 or m.created_at or now
        until = (m.ended_at or m.expires_at or now) if over else now
        flags = html.drill_badge(m.drill) + (
            '<span class="stopped-tag">已停止叫应</span>' if r.stopped else "") + (
            f'<span class="stopped-tag">{state_zh(m, now)}</span>' if over else "")
        out.append(
            f'<a class="live-card" href="{PREFIX}/campaigns/{esc(m.campaign_id)}" '
            f'data-cid="{esc(m.campaign_id)}">'
            f'<div class="lc-head">{html.level_badge(m.level.value if m.level else "")}{flags}'
            f'<b>{esc(m.headline or m.campaign_id)}</b></div>'
            f'<div class="muted">{esc(html.source_zh(r.source))} · {esc(m.area[:40])} · '
            f'{html.bj(t0, "%H:%M")} 起，已用时 {html.duration(until - t0)}</div>'
            f'<div class="bar"><i style="width:{pct}%"></i></div>'
            f'<div class="lc-counts">叫应对象 <b>{acked}</b>/{r.persons} 人已确认 · '
            f'网格 {closed}/{grids} 已结束 · 未叫醒 <b class="errc">'
            f'{states[GridState.UNREACHED]}</b> · 叫应中 {calling}'
            + _sites_line(r.sites, over) + '</div></a>')
    return "".join(out)


def _sites_line(sites: Counter[GridState], over: bool = False) -> str:
    """The sites' part of a live card, when the hazard calls any (`over`: all have ended)."""
    if not sites:
        return ""
    closed = (sum(sites.values()) if over
              else sum(n for st, n in sites.items() if st in GridState.CLOSED))
    return (f' · 隐患点等 {closed}/{sum(sites.values())} 处已结束 · 未叫醒 '
            f'<b class="errc">{sites[GridState.UNREACHED]}</b>')


def drafts_html(drafts: list[dict[str, Any]]) -> str:
    if not drafts:
        return '<p class="muted">没有等待审批的预警。</p>'
    return "".join(
        f'<p class="warn"><a href="{PREFIX}/drafts/{esc(d["id"])}">'
        f'{html.level_badge(d["level"])} {esc(html.KIND_ZH.get(d["kind"], d["kind"]))}：'
        f'{esc(d["headline"])}</a>（起草 {html.user(d["by"], {d["by"]: d.get("name", "")})}，'
        f'{html.bj(d["at"], "%H:%M")}）</p>'
        for d in drafts)
