"""The grids of a campaign as cases: who answers for each, where each person stands, every
call to them, and the grid's door-to-door order and result.

The pending list (待确认名单) is the cases of the grids nobody has answered for yet, from the
first minute on: grids still calling their officer, escalated, on the 未叫醒 list, or waiting
for a door-to-door result; none once the campaign is over (lifted, expired: nobody waits for
an answer any more, `Cases.ended` says why). The grid page is one case with its whole history.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from warnbus.domain.doors import DoorResult
from warnbus.domain.duty import DutyBook
from warnbus.domain.meta import CampaignMeta
from warnbus.domain.models import CHAIN_ORDER, SITE_CHAIN_ORDER, Ack, Grid, Site
from warnbus.domain.states import CampaignState, GridView
from warnbus.registry import Registry
from warnbus.runtime.context import Context
from warnbus.state.boardreads import Live
from warnbus.state.consolebook import DoorOrder, StopOrder
from warnbus.web.console.board import WAITING, displays, ended_as
from warnbus.web.console.history import Digest, Event, Histories
from warnbus.web.console.html import PERSON_ROLE_ZH
from warnbus.web.console.people import PersonLine, PersonState, Planner, person_state

#: Cases the pending list shows at once (the rest: drill down to a township or village).
SHOWN = 60
#: Display states first on the list: the most urgent first.
_ORDER = {"unreached": 0, "door": 1, "escalated": 2, "delivered": 3, "sent": 3, "pending": 3}


@dataclass
class GridCase:
    grid_id: str
    name: str
    village: str
    town: str
    display: str
    view: GridView
    since: float  # the first wave of its officer (an area added by an Update: when added)
    people: list[PersonLine] = field(default_factory=list)
    door: DoorOrder | None = None
    result: DoorResult | None = None
    events: list[Event] = field(default_factory=list)
    over: bool = False  # the campaign is over (lifted, expired): nobody is called for it


@dataclass
class Cases:
    """What the pending list or a grid page shows, with what it was built from."""

    cases: list[GridCase]
    total: int  # cases before SHOWN cut the list
    now: float
    stop: StopOrder | None
    digest: Digest
    #: How the campaign ended, when it is over (`board.ended_as`): lifted or expired.
    ended: CampaignState | None = None


def within(reg: Registry, grid_id: str, region: str) -> bool:
    """Whether a grid or site lies in a township or village code ("" for the whole county)."""
    grid: Grid | Site | None = reg.data.grids.get(grid_id) or reg.data.sites.get(grid_id)
    if grid is None:  # removed from the registry while the campaign held it: in no region
        return not region
    return not region or grid.village.startswith(region[:9] if region.endswith("000") else region)


async def build(ctx: Context, histories: Histories, cid: str, meta: CampaignMeta, *,
                region: str = "", grid: str = "", shown: int = SHOWN) -> Cases:
    """The cases of the grids still waiting (in `region`), or the one `grid`."""
    reg = ctx.registry
    live = await ctx.store.board.live(cid)
    doors = await ctx.store.console.door_orders(cid)
    results = await ctx.store.console.door_results(cid)
    now = ctx.clock.now()
    ended = ended_as(meta, now)
    over = ended is not None
    display = displays(live, doors, over)
    if grid:
        ids = [grid] if grid in live.grids else []
    elif over:
        ids = []  # nobody waits for an answer on a campaign that is over
    else:
        ids = [g for g, st in display.items() if st in WAITING and within(reg, g, region)]
    first = await ctx.store.board.first_waves(cid)
    t0 = meta.t0 or meta.created_at or 0.0

    def since(gid: str) -> float:
        g = reg.data.grids.get(gid)
        return first.get(g.primary, t0) if g else t0

    ids.sort(key=lambda g: (_ORDER.get(display[g], 9), since(g), g))
    digest = await histories.of(ctx, cid)
    acks = await ctx.store.acks(cid) if ids else {}
    policy = ctx.rules.policy_for(meta.level) if meta.level else None
    site_policy = ctx.rules.site_policy_for(meta.level) if meta.level else None
    book = await ctx.duty_book()
    planner = Planner(policy, reg, digest, first, t0, site_policy, book)
    cases = []
    for gid in ids[:shown]:
        g: Grid | Site | None = reg.data.grids.get(gid) or reg.data.sites.get(gid)
        village = reg.data.regions.get(g.village) if g else None
        town = reg.data.regions.get(reg.township_of(g.village) or "") if g else None
        # A grid removed from the registry while the campaign held it is still a 叫应 nobody
        # answered: listed under its id, with whoever was called for it.
        case = GridCase(gid, g.name if g else f"{gid}（已从台账删除）",
                        (village.name if village else g.village) if g else "",
                        town.name if town else "", display[gid], live.grids[gid], since(gid),
                        door=doors.get(gid), result=results.get(gid),
                        events=list(digest.of_grid.get(gid, ())), over=over)
        case.people = [_line(ctx, planner, live, acks, case, pid, role, now, over)
                       for pid, role in _people(reg, gid, digest, live.grids[gid].holder,
                                                now, book)]
        cases.append(case)
    return Cases(cases, len(ids), now, await ctx.store.console.calls_stopped(cid), digest,
                 ended)


def _people(reg: Registry, grid_id: str, digest: Digest, holder: str, at: float,
            duty: DutyBook) -> list[tuple[str, str]]:
    """Who answers for a grid or site, with the role they answer at: its officers (a site's
    first person), then everyone the chain moved it to (duty roles: whoever is on duty at
    `at`), then whoever was sent door to door (each once); for a grid removed from the
    registry, whoever was called for it and its holder."""
    known = grid_id in reg.data.grids or reg.is_site(grid_id)
    chain = reg.chain_of(grid_id, at=at, duty=duty) if known else ()
    order = SITE_CHAIN_ORDER if reg.is_site(grid_id) else CHAIN_ORDER

    def role_at(lv: int) -> str:
        role = order[lv] if lv < len(order) else None
        return role.value if role is not None else ""

    out: dict[str, str] = {}
    if not chain and holder:
        out[holder] = ""
    for lv, pid in enumerate(chain[:2]):
        if pid:
            out.setdefault(pid, role_at(lv))
    for pid in digest.called_for(grid_id):
        role = next((role_at(lv) for lv, p in enumerate(chain) if p == pid), "")
        out.setdefault(pid, role)
    return list(out.items())


def _line(ctx: Context, planner: Planner, live: Live, acks: dict[str, Ack], case: GridCase,
          pid: str, role: str, now: float, over: bool) -> PersonLine:
    p = ctx.person(pid)
    # Where they stand for this grid (a duty officer answers for many).
    held = tuple(h for h in live.holds.get(pid, ()) if h[0] == case.grid_id)
    calls = planner.digest.calls.get(pid, [])
    state = (person_state(pid, held, live, over) if held or pid in live.acked
             else PersonState.NOT_CALLED)
    line = PersonLine(pid, p.name if p else pid, role or (p.role.value if p else ""),
                      (p.phone or "") if p else "", state, acks.get(pid), calls,
                      len({c.step for c in calls}))
    g = case.view
    if state is PersonState.PENDING and g.holder == pid:
        line.next = planner.next_step(case.grid_id, g.level, pid, calls, now)
    elif state is PersonState.ESCALATED and g.holder != pid and g.holder:
        h = ctx.person(g.holder)
        order = SITE_CHAIN_ORDER if ctx.registry.is_site(case.grid_id) else CHAIN_ORDER
        at_level = order[g.level] if g.level < len(order) else None
        role_zh = PERSON_ROLE_ZH[at_level.value] if at_level is not None else ""
        line.moved_to = f"{h.name}（{role_zh}）" if h else g.holder
    return line
