"""The filed record agrees, row by row, with what the providers' simulators logged.

A red rainstorm warning for one township of the sample county (48 grids, and any site the
rainstorm calls), once on the mainland provider set (`--providers cn`: voice by Aliyun and
Tencent Cloud, SMS by Tencent Cloud, WeCom cards) and once on the Twilio set (Twilio voice
and SMS, WeCom), through real HTTP, on a ManualClock run to the end of the chain (20
minutes). The simulated officers behave variously: scripted ones press 1,
listen without a key, miss the first call and press 1 on a redial, are busy, are powered off,
confirm by an SMS reply or a WeCom card; the rest follow a seeded model (some never confirm,
so the chain escalates to backups, village heads and duty officers).

Then every row of the API's CSV and of the console's CSV (the same record) is compared with
the simulators' own logs: who was called (the number or WeCom user the simulator received,
against the row's person), on which channel, when, how often (第几次 counts a person's calls
per medium, 1..n in time order, whichever account carried them), the outcome in words, the
confirmation (how and when); and each escalation against what the grid's earlier people
had done by the simulators' logs. Every disagreement names its row. The simulators' logs are
read by `simlog`, with outcome words of its own.
"""

from __future__ import annotations

import csv
import io
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

import pytest
from console_kit import add_users, open_session

from channels.sim.officers import OfficerModel, Script
from tests.console.drill_kit import TOKEN, Drill, drill
from tests.console.simlog import SimCall, agrees, sim_calls
from tests.engine.helpers import cap_alert
from warnbus.domain.models import Person, RegistryData
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.tools.cn_world import CnWorld
from warnbus.tools.simulation import SimulatedWorld

TOWN = "430623102000"  # 华容县's smallest township: 48 grids
BJ = timezone(timedelta(hours=8))
END_S = 1300  # past the red chain's end (未叫醒 at 1,200 s)
BACKUP_AT_S = 480  # the red chain's first step: rules/policy.toml
CHANNEL_ZH = {"voice": "语音电话", "sms": "短信", "wecom": "企业微信"}
VIA = {"dtmf": "电话按键", "sms": "短信回复", "wecom": "企业微信按钮"}
#: The same words in the API's CSV and the console's.
API_WORDS = ("name", "channel_zh", "call_no", "step_zh", "sent_at_bj", "outcome_zh",
             "confirmed_at_bj")
CONSOLE_WORDS = ("责任人", "渠道", "第几次", "步骤", "发送时间（北京时间（UTC+8））", "结果",
                 "确认时间（北京时间（UTC+8））")
#: Scripted primaries, in grid order: what each does with calls, SMS and cards, in turn.
SCRIPTS = (
    Script(calls=("confirm",)),  # answers and presses 1
    Script(calls=("heard",), sms=("ignore", "confirm")),  # no key; replies to the 2nd SMS
    Script(calls=("no-answer", "confirm")),  # misses the first call, presses 1 on a redial
    Script(calls=("busy",), sms=("ignore",), cards=("ignore",)),  # never: escalated
    Script(calls=("off",), sms=("off",), cards=("ignore",)),  # powered off: escalated
    Script(calls=("no-answer",), sms=("confirm",)),  # confirms by SMS reply
    Script(calls=("no-answer",), cards=("click",)),  # confirms on the WeCom card
    Script(calls=("hangup", "voicemail"), sms=("ignore",), cards=("ignore",)),  # never
)


def bj(ts: float) -> str:
    return datetime.fromtimestamp(ts, BJ).strftime("%Y-%m-%d %H:%M:%S")


def _rows(text: str) -> list[dict[str, str]]:
    assert text.startswith("\ufeff"), "a BOM, for spreadsheet programs"
    return list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline="")))


def _script(d: Drill) -> list[str]:
    """Script the first primaries of the township at every simulator; their grids."""
    world = d.world
    data = d.registry.data
    grids = sorted(g for g, x in data.grids.items() if d.registry.township_of(x.village) == TOWN
                   and data.persons[x.primary].wecom)  # everyone's channels
    for g, script in zip(grids, SCRIPTS, strict=False):
        p = data.persons[data.grids[g].primary]
        assert p.phone and p.wecom
        if isinstance(world, CnWorld):
            world.aliyun.scripted[p.phone.removeprefix("+86")] = script
            world.tencent.scripted[p.phone] = script
        elif isinstance(world, SimulatedWorld):
            world.twilio.scripted[p.phone] = script
        world.wecom.scripted[p.wecom] = script
    return grids[: len(SCRIPTS)]


async def _records(d: Drill, alert_id: str, cid: str) -> tuple[list[dict[str, str]],
                                                               list[dict[str, str]]]:
    """The API's CSV and the console's, as a county office downloads them."""
    async with d.http() as http:
        r = await http.get(f"/api/v1/alerts/{alert_id}/record", params={"format": "csv"},
                           headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status == 200
        api = _rows(await r.text())
        await add_users(d.h)
        await open_session(http, "dora")
        r = await http.get(f"/console/campaigns/{cid}/record.csv")
        assert r.status == 200
        return api, _rows(await r.text())


@pytest.mark.parametrize("providers", ["cn", "twilio"])
async def test_every_row_of_the_record_agrees_with_the_providers_logs(redis_url: str,
                                                                      providers: str) -> None:
    officers = OfficerModel(seed=5, responsive=0.6, per_message=0.5, unreachable=0.04,
                            delay_s=(0.01, 0.03))
    async with drill(redis_url, officers, providers) as d:
        scripted = _script(d)
        t0 = d.clock.now()
        res = await accept(d.h.ctx, cap_alert(codes=(TOWN,)), ENGINE)
        await d.settle()
        await d.run_until(t0 + END_S)
        api, console = await _records(d, res.alert_id, res.campaign_id)
        grids = await d.h.ctx.store.grids(res.campaign_id)
        speakers = d.h.sent("loudspeaker")
    check = Check(d.registry.data.persons)
    check.same_record(api, console)
    calls = [r for r in api if r["call_no"] and r["channel"] != "loudspeaker"]
    matched = check.calls(calls, sim_calls(d.world))
    check.numbering(calls, matched)
    first = check.confirmations(api, calls, matched)
    _escalations(d, t0, [g for g in grids if g in d.registry.data.grids], calls, first, check)
    # The scripted behaviours all happened, and the loudspeakers' rows are their commands.
    outcomes = Counter(s.said for s in matched.values())
    said = {"已确认", "已接通（未按键确认）", "未接", "忙", "已送达"}
    said |= {"关机"} if providers == "cn" else set()  # Twilio says no-answer for it
    assert said <= set(outcomes), outcomes
    assert {how for _at, how in first.values()} == set(VIA)
    assert len([r for r in api if r["channel"] == "loudspeaker"]) == len(speakers)
    assert {g.state.value for g in grids.values()} >= {"confirmed", "taken_over"}
    assert all(g in grids for g in scripted)
    assert not check.problems, f"{len(check.problems)} disagreements:\n" + "\n".join(
        check.problems[:40])


@dataclass
class Check:
    """The record against the simulators' logs; each disagreement names its row."""

    people: Mapping[str, Person]
    problems: list[str] = field(default_factory=list)

    def bad(self, row: Mapping[str, str], what: str) -> None:
        self.problems.append(f"row {row['name']} {row['channel']} {row['step_zh']} "
                             f"{row['sent_at_bj']} ({row['delivery_id']}): {what}")

    def same_record(self, api: list[dict[str, str]], console: list[dict[str, str]]) -> None:
        """The console's CSV is the same record as the API's, in the same words."""
        api_words = Counter(tuple(r[c] for c in API_WORDS) for r in api)
        console_words = Counter(tuple(r[c] for c in CONSOLE_WORDS) for r in console)
        for w in (api_words - console_words) + (console_words - api_words):
            self.problems.append(f"the API's CSV and the console's differ on {w}")

    def calls(self, calls: list[dict[str, str]], sims: list[SimCall]) -> dict[int, SimCall]:
        """Each call row is exactly one thing a simulator received (a delivery's attempts in
        the order the simulator got them): the same person, channel, time and outcome."""
        by_address = {a: p for p in self.people.values() for a in (p.phone, p.wecom) if a}
        unmatched = list(sims)
        matched: dict[int, SimCall] = {}
        for i, r in enumerate(calls):
            user = self.people[r["person_id"]].wecom or ""
            sim = next((s for s in unmatched if s.channel == r["channel"]
                        and s.carries(r["delivery_id"], user)), None)
            if sim is None:
                self.bad(r, "no simulator received this call")
                continue
            unmatched.remove(sim)
            matched[i] = sim
            if bj(sim.at) != r["sent_at_bj"]:
                self.bad(r, f"sent at {r['sent_at_bj']}, the simulator got it at {bj(sim.at)}")
            person = by_address.get(sim.address)
            if person is None or person.id != r["person_id"] or person.name != r["name"]:
                self.bad(r, f"the simulator called {sim.address} "
                            f"({person.name if person else '?'})")
            if r["channel_zh"] != CHANNEL_ZH[sim.medium]:
                self.bad(r, f"channel {r['channel_zh']}, the simulator is {sim.medium}")
            if not agrees(sim.said, r["outcome_zh"]):
                self.bad(r, f"outcome {r['outcome_zh']!r}, the simulator says {sim.said!r}")
        for s in unmatched:
            self.problems.append(f"the record has no row for {s.channel} to {s.address} at "
                                 f"{bj(s.at)} ({s.said})")
        return matched

    def numbering(self, calls: list[dict[str, str]], matched: dict[int, SimCall]) -> None:
        """第几次: a person's calls per medium, 1..n in time order, whichever account carried
        them; a row that is no call (a re-route, a fallback not needed) has none."""
        per: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
        for i, s in matched.items():
            per[(calls[i]["person_id"], s.medium)].append((s.at, i))
        for got in per.values():
            for n, (_at, i) in enumerate(sorted(got), 1):
                if calls[i]["call_no"] != f"第{n}次":
                    self.bad(calls[i], f"第几次 {calls[i]['call_no']}, the simulators' {n}th")

    def confirmations(self, api: list[dict[str, str]], calls: list[dict[str, str]],
                      matched: dict[int, SimCall]) -> dict[str, tuple[float, str]]:
        """How and when each person confirmed, as the simulators saw it first; every row of
        the person says so. Returns person -> (when, how). The clock stands still while the
        simulators run: confirmations by two channels at one instant are each the first."""
        seen: dict[str, list[tuple[float, str]]] = defaultdict(list)
        for i, s in matched.items():
            if s.confirmed:
                how, at = s.confirmed
                seen[calls[i]["person_id"]].append((at, how))
        first = {pid: min(x) for pid, x in seen.items()}
        for r in api:
            if r["channel"] == "loudspeaker":
                continue
            at = first[r["person_id"]][0] if r["person_id"] in first else None
            hows = {how for t, how in seen.get(r["person_id"], ()) if t == at}
            got = (r["confirmed_at_bj"], r["confirmed_via"])
            if (at is not None and (got[0] != bj(at) or got[1] not in hows)) or (
                    at is None and any(got)):
                self.bad(r, f"confirmed {got}, the simulators saw "
                            f"{at and (bj(at), sorted(hows))}")
        return first


def _escalations(d: Drill, t0: float, grids: list[str], calls: list[dict[str, str]],
                 first: dict[str, tuple[float, str]], check: Check) -> None:
    """A grid's backup is called (升级至备岗网格员, at the chain's first step) exactly when the
    simulators saw its primary confirm nothing before that step."""
    data = d.registry.data
    step = t0 + BACKUP_AT_S
    for gid in grids:
        grid = data.grids[gid]
        confirmed = first.get(grid.primary)
        want = confirmed is None or confirmed[0] >= step
        up = [r for r in calls if r["person_id"] == grid.backup
              and r["step_zh"] == "升级至备岗网格员"]
        if want and not any(r["sent_at_bj"] == bj(step) for r in up):
            check.problems.append(f"grid {grid.name}: its primary confirmed nothing by the "
                            f"simulators' logs, and its backup was not called at {bj(step)}")
        if not want and not _holds_another(data, grid.backup, gid):
            for r in up:
                check.bad(r, f"grid {grid.name}'s primary had confirmed ({first[grid.primary]})")


def _holds_another(data: RegistryData, person: str | None, gid: str) -> bool:
    """Whether `person` is the primary or backup of a grid other than `gid`."""
    return any(g != gid and person in (x.primary, x.backup) for g, x in data.grids.items())
