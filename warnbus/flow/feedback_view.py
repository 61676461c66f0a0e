"""Read views of the feedback after the ack: the record's feedback section and the board's totals.

The record lists every report (Beijing time, how it came, who entered it for the person);
the board adds up each person's latest counts per village, township and the county: 已转移
N 人 (each person's latest count: a report gives the total so far), reports made, due (the
person confirmed, has a deadline, and has not reported yet), overdue, and 险情 reported.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import UTC, datetime

from rules.wording import BEIJING
from warnbus.domain.feedback import FEEDBACK_ZH, FeedbackState
from warnbus.domain.models import RegionLevel
from warnbus.flow.feedback import region_level
from warnbus.flow.person_policy import policy_of_held
from warnbus.flow.record import write_csv
from warnbus.runtime.context import Context

FEEDBACK_COLUMNS = ("person_id", "name", "region", "reported_at", "kind", "report", "count",
                    "text", "photo", "via", "entered_by")
FEEDBACK_COLUMNS_ZH = ("人员编号", "姓名", "所在地区", "报送时间（北京时间）", "类型", "报送内容",
                       "转移人数", "险情/灾情", "照片链接", "报送方式", "录入人")


def bj(t: float | None) -> str:
    """Beijing time as the record shows it: 2026-07-15 13:30:05."""
    if t is None:
        return ""
    return datetime.fromtimestamp(t, UTC).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


async def feedback_rows(ctx: Context, campaign_id: str) -> list[dict[str, str]]:
    """Every report of a campaign, oldest first, as the record's feedback section."""
    regions = ctx.registry.data.regions
    out: list[dict[str, str]] = []
    for f in await ctx.store.feedback.history(campaign_id):
        p = ctx.person(f.person_id)
        where = regions.get(p.region) if p else None
        r = f.report
        out.append({
            "person_id": f.person_id, "name": p.name if p else "",
            "region": where.name if where else (p.region if p else ""),
            "reported_at": bj(f.at), "kind": FEEDBACK_ZH[r.kind], "report": r.zh,
            "count": "" if r.count is None else str(r.count), "text": r.text, "photo": r.photo,
            "via": f.via, "entered_by": f.by,
        })
    return out


def feedback_csv(rows: list[dict[str, str]]) -> str:
    """The feedback section as CSV, with Chinese headers (cells neutralised as the record's)."""
    buf = io.StringIO()
    write_csv(buf, FEEDBACK_COLUMNS_ZH, ([row.get(c, "") for c in FEEDBACK_COLUMNS]
                                        for row in rows))
    return buf.getvalue()


@dataclass
class Tally:
    """What the reports of one region add up to."""

    evacuated: int = 0  # 已转移 N 人
    reported: int = 0  # people who reported
    due: int = 0  # confirmed, with a deadline, not reported yet, not overdue
    overdue: int = 0
    hazards: int = 0  # 险情 reports
    hazard_texts: list[str] = field(default_factory=list)

    def add(self, st: FeedbackState | None, has_deadline: bool) -> None:
        if st is not None and st.n > 0:
            self.reported += 1
            self.evacuated += st.evacuated or 0
            self.hazards += st.hazards
            if st.hazard_text and len(self.hazard_texts) < 20:
                self.hazard_texts.append(st.hazard_text)
        elif st is not None and st.overdue is not None:
            self.overdue += 1
        elif has_deadline:
            self.due += 1


async def feedback_tallies(ctx: Context, campaign_id: str) -> dict[str, Tally]:
    """Per region code (each village, township and the county) of the people who confirmed
    or reported: what their reports add up to. Key "" is the whole campaign."""
    reg = ctx.registry
    latest = await ctx.store.feedback.latest(campaign_id)
    acked = await ctx.store.acks(campaign_id)
    meta = await ctx.store.meta(campaign_id)
    holds = await ctx.store.board.holds(campaign_id)
    out: dict[str, Tally] = {}
    for pid in sorted(set(latest) | set(acked)):
        person = ctx.person(pid)
        if person is None:
            continue
        # Due by the person's own row: the sites' for the people of sites only.
        policy = (policy_of_held(ctx, meta.level, [g for g, _lv in holds.get(pid, ())])
                  if meta is not None and meta.level else None)
        level = region_level(reg, person)
        has_deadline = bool(policy and level is not None
                            and policy.feedback_deadline_s(level) is not None and pid in acked)
        code: str | None = person.region
        codes = [""]
        while code is not None and code in reg.data.regions:
            codes.append(code)
            code = reg.data.regions[code].parent
        for c in codes:
            out.setdefault(c, Tally()).add(latest.get(pid), has_deadline)
    return out


def level_of(ctx: Context, code: str) -> RegionLevel | None:
    region = ctx.registry.data.regions.get(code)
    return region.level if region else None
