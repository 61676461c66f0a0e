"""The 叫应 record as a county files it: in Chinese, in Beijing time, outcomes in words.

`record.record_rows` is the record as the engine keeps it (one row per provider call, raw
step codes and states, ISO times). This module reads it for people: each person's calls in
time order, numbered per channel (第几次), the step in words (首次, 第2次重拨, 升级至村负责人,
喇叭未播通知, 入户叫应), the channel in Chinese, and the outcome in words from the call and the
provider's later reports on it (已送达, 已接通, 未接, 忙, 关机, 发送失败, 结果未知 ...). A report
belongs to the last call of its delivery before it (the audit stream is in time order).
The escalations (to whom, when; someone passed over whom nothing had reached says so) come
from the same stream.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from warnbus.domain.models import CHAIN_ORDER, SITE_CHAIN_ORDER, Role
from warnbus.domain.sites import SITE_ROLE_ZH
from warnbus.domain.states import AuditEvent, DeliveryReport
from warnbus.domain.steps import Step
from warnbus.domain.targets import AREA_PREFIX, RefKind, kind_of
from warnbus.flow.record import RECORD_COLUMNS, speakers_name, write_csv
from warnbus.runtime.context import Context

BEIJING = timezone(timedelta(hours=8))
ZONE_ZH = "北京时间（UTC+8）"
ROLE_ZH = {Role.PRIMARY: "网格员", Role.BACKUP: "备岗网格员", Role.VILLAGE_HEAD: "村负责人",
           Role.TOWNSHIP_DUTY: "乡镇值班员", Role.COUNTY_DUTY: "县值班员",
           Role.TOWNSHIP_LEADER: "乡镇带班领导", Role.COUNTY_LEADER: "县带班领导",
           Role.SITE: "隐患点等责任人"}
ROLE_VALUE_ZH = {r.value: z for r, z in ROLE_ZH.items()} | {"device": "应急广播"}
MEDIUM_ZH = {"voice": "语音电话", "sms": "短信", "wecom": "企业微信", "loudspeaker": "应急广播"}
VIA_ZH = {"dtmf": "电话按键", "sms": "短信回复", "wecom": "企业微信按钮", "link": "确认链接",
          "console": "人工确认", "device": "设备"}
KIND_ZH = {"cancel": "解除通知", "update": "更新通知"}
#: A call's own outcome (`Outcome`, and the record's rows that were not a call), in words.
OUTCOME_ZH = {"accepted": "已发出（未收到回执）", "delivered": "已送达",
              "failed-temp": "发送失败（将重试）", "failed-perm": "发送失败",
              "unknown": "结果未知", "skipped": "无需补发", "gave-up": "未发送（服务商故障）",
              "uncontacted": "未联系上，已转交", "limited": "未发送（号码频次限制），已改其他线路"}
#: Record rows that are no call to the person: no 第几次, and their reason is said.
NOT_CALLS = frozenset({"skipped", "gave-up", "uncontacted", "limited", ""})
#: The columns of the console's CSV and the printed record (the time columns say the zone).
COLUMNS = ("乡镇", "村/社区", "网格", "责任人", "角色", "渠道", "第几次", "步骤",
           f"发送时间（{ZONE_ZH}）", "结果", f"回执时间（{ZONE_ZH}）", "是否确认",
           f"确认时间（{ZONE_ZH}）", "确认方式", "确认人", "原因/说明")


def bj(value: float | str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A timestamp (epoch seconds, or ISO 8601 with its offset) in Beijing time."""
    if value in (None, ""):
        return ""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).astimezone(BEIJING).strftime(fmt)
        except ValueError:
            value = float(value)
    return datetime.fromtimestamp(float(value), BEIJING).strftime(fmt)


def step_zh(step: str, kind: str = "") -> str:
    """A delivery step in words: 首次, 第2次重拨, 升级至村负责人, 喇叭未播通知, 入户叫应."""
    if kind in KIND_ZH:
        return KIND_ZH[kind]
    try:
        st = Step.of(int(step))
    except ValueError:
        return step
    if st == Step.NOTICE:
        return "喇叭未播通知"
    if st == Step.DOOR_TO_DOOR:
        return "入户叫应"
    again = f"第{st.redials}次重拨" if st.redials else ""
    if st.level == 0:
        return again or "首次"
    role = role_at(st.level)
    return f"升级至{ROLE_ZH.get(role, '上一级') if role else '上一级'}" + (
        f"·{again}" if again else "")


def role_at(level: int, site: bool = False) -> Role | None:
    """The role a chain level calls: a grid's chain, or a site's (`SITE_CHAIN_ORDER`, whose
    levels past a grid's call the officer of the site's grid)."""
    order: tuple[Role | None, ...] = SITE_CHAIN_ORDER if site else CHAIN_ORDER
    if not site and level >= len(order):
        order = SITE_CHAIN_ORDER  # only a site's chain goes that far
    return order[level] if 0 <= level < len(order) else None


#: What a call that reached nobody says, by the words of the provider's detail (Twilio's
#: CallStatus, Aliyun's and Tencent's codes as channels/cn_outcomes.py words them).
NO_ANSWER_ZH: tuple[tuple[tuple[str, ...], str], ...] = (
    (("answered without", "接听未按键"), "已接通（未按键确认）"),
    (("busy", "占线"), "忙"),
    (("关机", "power off", "poweroff"), "关机"),
    (("不在服务区", "out of reach", "unreachable"), "不在服务区"),
    (("信箱", "助理", "呼叫转移", "machine", "voicemail"), "语音信箱/转接（未接通本人）"),
    (("无法接通",), "无法接通"),
)


@dataclass
class Report:
    """A provider's later report on a call (`AuditEvent.STATUS`)."""

    what: str  # a DeliveryReport value
    detail: str
    at: str


def report_zh(r: Report, medium: str) -> str:
    """What a report says, in words, for the call's medium."""
    detail = r.detail.lower()
    if r.what == DeliveryReport.DELIVERED:
        if "confirmed by" in detail:
            return "已确认"
        return {"voice": "已接通", "loudspeaker": "已播放"}.get(medium, "已送达")
    if r.what == DeliveryReport.ANSWERED:
        return "已接通（提前挂机，未按键）" if "提前挂机" in detail else "已接通（未按键确认）"
    if r.what == DeliveryReport.NO_ANSWER:
        return next((said for words, said in NO_ANSWER_ZH if any(w in detail for w in words)),
                    "未接")
    if r.what == DeliveryReport.READ:
        return "已读"
    if r.what == DeliveryReport.DEVICE_FAILED:
        return "未播放"
    return "发送失败" + (f"（{r.detail}）" if r.detail else "")


_LIMITED = re.compile(r"skipped (\S+): (\d+) \w+ (?:in (\d+) (s|min|h)|(a day)|at night "
                      r"\(([\d:-]+)\)) -> (.+)")
_UNIT_ZH = {"s": "秒", "min": "分钟", "h": "小时"}


def limited_zh(detail: str) -> str:
    """A re-route before a per-number limit ("skipped voice-tencent: 2 calls in 10 min ->
    voice-aliyun") in words; anything else as it is."""
    m = _LIMITED.fullmatch(detail)
    if m is None:
        return detail
    channel, n, span, unit, day, night, dest = m.groups()
    within = (f"{span}{_UNIT_ZH[unit]}内" if span else "每天" if day else f"夜间（{night}）")
    to = "本步已无其他线路" if dest.startswith("no path") else f"改由{dest}发送"
    return f"{channel}对同一号码{within}限{n}次，{to}"


@dataclass
class Filed:
    """The record's rows in words, and what the print page adds to them."""

    rows: list[dict[str, str]]
    escalations: list[dict[str, str]] = field(default_factory=list)


def _key(tg: str, ch: str, st: str, k: str, n: str) -> tuple[str, ...]:
    return (tg, ch, st, k, n)


def reports_by_call(audit: Iterable[Mapping[str, str]]) -> dict[tuple[str, ...], list[Report]]:
    """Each provider report, against the call it belongs to: its delivery's last call.

    A provider may report on a call before the engine has stored the call's attempt (its
    receipt raced the dispatcher's write); such a report belongs to the delivery's next call
    in the stream, never to none."""
    last: dict[str, tuple[str, ...]] = {}
    early: dict[str, list[Report]] = defaultdict(list)
    out: dict[tuple[str, ...], list[Report]] = defaultdict(list)
    for ev in audit:
        d = ev.get("d", "")
        if ev.get("ev") == AuditEvent.ATTEMPT:
            last[d] = key = _key(ev.get("tg", ""), ev.get("ch", ""), ev.get("st", ""),
                                 ev.get("k", ""), ev.get("n", ""))
            out[key].extend(early.pop(d, ()))
        elif ev.get("ev") == AuditEvent.STATUS:
            report = Report(ev.get("s", ""), ev.get("x", ""), ev.get("at", ""))
            if d in last:
                out[last[d]].append(report)
            else:
                early[d].append(report)
    return out


def escalations(ctx: Context, audit: Iterable[Mapping[str, str]]) -> list[dict[str, str]]:
    """Each grid moved on: when, from whom, to whom (or to the 未叫醒 list)."""
    out = []
    for ev in audit:
        if ev.get("ev") != AuditEvent.ESCALATE:
            continue
        key = ev.get("g", "")
        frm, to = ctx.person(ev.get("from", "")), ctx.person(ev.get("to", ""))
        lv = ev.get("lv", "")
        at = role_at(int(lv), ctx.registry.is_site(key)) if lv.isdigit() else None
        role = ROLE_ZH.get(at, "") if at is not None else ""
        out.append({
            "时间": bj(ev.get("at")), "网格": ctx.registry.name_of(key),
            "原责任人": frm.name if frm else ev.get("from", ""),
            "转交": ((f"{to.name}（{role}）" if to else "未叫醒名单") if ev.get("to")
                     else "未叫醒名单"),
            "说明": "此前未能联系到原责任人（无消息送达）" if ev.get("nc") else "超时未确认",
        })
    return out


def filed_rows(ctx: Context, rows: Sequence[Mapping[str, str]],
               audit: Sequence[Mapping[str, str]], users: Mapping[str, str], *,
               keep_order: bool = False) -> Filed:
    """The rows of `record.record_rows` in words, grouped by person, calls in time order
    (`keep_order`: in the order of `rows`, numbered all the same).

    `users`: console user name -> display name (who confirmed by hand)."""
    reports = reports_by_call(audit)
    data = ctx.registry.data
    regions = data.regions
    order: dict[str, int] = {}
    for i, r in enumerate(rows):
        order.setdefault(r["person_id"], i)
    ranked = sorted(range(len(rows)), key=lambda i: (
        order[rows[i]["person_id"]], rows[i].get("sent_at") or "~", i))
    # 第几次 counts a person's calls per medium (语音电话, 短信 ...): the accounts behind one
    # medium (voice by Aliyun, then by Tencent) are one line of calls to the person.
    nth: dict[tuple[str, str], int] = defaultdict(int)
    out: list[tuple[int, dict[str, str]]] = []
    for i in ranked:
        r = rows[i]
        pid, ch = r["person_id"], r.get("channel", "")
        info = ctx.channels.get(ch)
        medium = info.medium.value if info is not None else ch
        called = bool(ch) and r.get("outcome", "") not in NOT_CALLS
        if called:
            nth[(pid, medium)] += 1
        got = reports.get(_key(pid, ch, r.get("step", ""), r.get("kind", ""),
                               r.get("attempt", "")), [])
        words = [report_zh(x, medium) for x in got]
        result = "，".join(dict.fromkeys(words)) if words else OUTCOME_ZH.get(
            r.get("outcome", ""), r.get("outcome", "") or ("未呼叫" if not ch else ""))
        person = ctx.person(pid)
        grid_ids = (r.get("grids") or "").split()
        # A person answers for grids and sites alike (a site is named for what it is).
        places = [p for g in grid_ids if (p := data.grids.get(g) or data.sites.get(g))]
        area = pid[len(AREA_PREFIX):] if kind_of(pid) is RefKind.AREA else ""
        village = places[0].village if places else area or (person.region if person else "")
        name = r.get("name") or speakers_name(ctx, pid) or pid
        town = ctx.registry.township_of(village) if village else None
        by = r.get("confirmed_by", "")
        out.append((i, {
            "乡镇": regions[town].name if town and town in regions else "",
            "村/社区": regions[village].name if village in regions else "",
            "网格": "、".join(ctx.registry.name_of(g) for g in grid_ids),
            "责任人": name,
            "角色": _role_zh(ctx, pid, r.get("role", ""), grid_ids),
            "渠道": MEDIUM_ZH.get(medium, ch),
            "第几次": f"第{nth[(pid, medium)]}次" if called else "",
            "步骤": step_zh(r.get("step", ""), r.get("kind", "")) if ch else "",
            f"发送时间（{ZONE_ZH}）": bj(r.get("sent_at")),
            "结果": result,
            f"回执时间（{ZONE_ZH}）": bj(got[-1].at) if got else "",
            "是否确认": "已确认" if r.get("confirmed_at") else "未确认",
            f"确认时间（{ZONE_ZH}）": bj(r.get("confirmed_at")),
            "确认方式": VIA_ZH.get(r.get("confirmed_via", ""), r.get("confirmed_via", "")),
            "确认人": users.get(by, by),
            "原因/说明": r.get("reason") or limited_zh(r.get("detail", "")) if not called
            else r.get("reason", ""),
        }))
    if keep_order:
        out.sort(key=lambda x: x[0])
    return Filed([r for _i, r in out], escalations(ctx, audit))


def _role_zh(ctx: Context, pid: str, role: str, keys: Sequence[str]) -> str:
    """A row's role in words; a site's person by what they answer for there (巡查员 ...)."""
    if role == Role.SITE:
        sites = ctx.registry.data.sites
        said = dict.fromkeys(SITE_ROLE_ZH[p.role] for k in keys if k in sites
                             for p in sites[k].people if p.person == pid)
        if said:
            return "、".join(said)
    return ROLE_VALUE_ZH.get(role, role)


#: The API's record rows keep their keys (DESIGN section 9) and gain these, in words.
API_WORDS = {"call_no": "第几次", "step_zh": "步骤", "channel_zh": "渠道", "outcome_zh": "结果",
             "sent_at_bj": f"发送时间（{ZONE_ZH}）", "confirmed_at_bj": f"确认时间（{ZONE_ZH}）"}


def with_words(ctx: Context, rows: Sequence[Mapping[str, str]],
               audit: Sequence[Mapping[str, str]]) -> list[dict[str, str]]:
    """`rows` as they are, each with `API_WORDS` added (the same words as the console's)."""
    filed = filed_rows(ctx, rows, audit, {}, keep_order=True)
    return [{**r, **{k: f[zh] for k, zh in API_WORDS.items()}}
            for r, f in zip(rows, filed.rows, strict=True)]


def words_csv(rows: Sequence[Mapping[str, str]]) -> str:
    """The API's record as CSV: the record's columns, then `API_WORDS` (neutralised, quoted)."""
    head = (*RECORD_COLUMNS, *API_WORDS)
    buf = io.StringIO()
    write_csv(buf, head, ([r.get(c, "") for c in head] for r in rows))
    return buf.getvalue()
