"""Read views: an alert's campaign state and counts, and the auditable 叫应 record."""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from warnbus.domain.meta import CampaignMeta
from warnbus.domain.models import TargetKind
from warnbus.domain.states import (
    AuditEvent,
    CampaignState,
    DeliveryState,
    GridState,
    TargetState,
)
from warnbus.domain.targets import AREA_PREFIX, RefKind, kind_of
from warnbus.errors import NotFoundError
from warnbus.runtime.context import Context

RECORD_COLUMNS = (
    "person_id", "name", "role", "grids", "channel", "step", "kind", "attempt", "sent_at",
    "outcome", "state", "detail", "confirmed_at", "confirmed_via", "confirmed_by", "reason",
    "delivery_id",
)


def _ts(x: float | str | None) -> str:
    if x is None or x == "":
        return ""
    return datetime.fromtimestamp(float(x), UTC).astimezone().isoformat(timespec="seconds")


async def alert_view(ctx: Context, alert_id: str) -> dict[str, Any]:
    cid = await ctx.store.campaign_of(alert_id)
    if not cid:
        raise NotFoundError(f"no alert {alert_id}")
    alert = await ctx.alert(cid, alert_id)
    meta = await ctx.store.meta(cid) or CampaignMeta(campaign_id=cid)
    grid = meta.grid_count
    acked = meta.target_count(TargetState.ACKED)
    counts = {
        "targets": meta.targets,
        "sent": meta.target_count(TargetState.SENT) + meta.target_count(TargetState.DELIVERED)
        + acked,
        "delivered": meta.target_count(TargetState.DELIVERED),
        "acknowledged": acked,
        "pending": sum(grid(g) for g in GridState.OPEN),
        "escalated": grid(GridState.ESCALATED) + grid(GridState.TAKEN_OVER),
        "unreached": grid(GridState.UNREACHED),
        "failed": meta.target_count(TargetState.FAILED),
        "attempts": meta.attempts,
        "duplicates": meta.duplicates,
        # grids moved on past a person no message had reached (audit: escalate, nc=1)
        "uncontacted": meta.uncontacted,
    }
    sites = await site_states(ctx, cid)
    grids = Counter(meta.grid_counts) - sites
    return {
        "alert_id": alert_id,
        "campaign_id": cid,
        "alert": msgspec.to_builtins(alert) if alert else None,
        "campaign": {
            "state": meta.state.value,
            "level": meta.level.value if meta.level else None,
            "root_alert_id": meta.root or None,
            "latest_alert_id": meta.latest or None,
            "created_at": _ts(meta.created_at),
            "expires_at": _ts(meta.expires_at),
            "headline": meta.headline if meta.state is not CampaignState.PLANNING else None,
        },
        "counts": counts,
        # Grids and sites are tracked alike and counted apart (the counts above are both's).
        "grids": {g.value: n for g, n in sorted(grids.items()) if n},
        "sites": {g.value: n for g, n in sorted(sites.items()) if n},
    }


async def site_states(ctx: Context, campaign_id: str) -> Counter[GridState]:
    """The 叫应 states of a campaign's sites (the rest of its grid keys are grids)."""
    return Counter(g.state for k, g in (await ctx.store.grids(campaign_id)).items()
                   if ctx.registry.is_site(k))


async def unreached(ctx: Context, campaign_id: str) -> list[dict[str, str]]:
    """The 未叫醒 list: grids (and sites) whose whole chain did not confirm, and who was last
    called; a site's officer is its first person."""
    out = []
    reg = ctx.registry
    for g in (await ctx.store.grids(campaign_id)).values():
        if g.state is GridState.UNREACHED:
            grid = reg.data.grids.get(g.grid_id)
            site = reg.data.sites.get(g.grid_id)
            person = ctx.person(g.holder)
            first = grid.primary if grid else site.people[0].person if site and site.people else ""
            officer = ctx.person(first)
            out.append({
                "grid_id": g.grid_id, "grid": reg.name_of(g.grid_id) if grid or site else "",
                "village": grid.village if grid else site.village if site else "",
                "officer": officer.id if officer else "",
                "officer_name": officer.name if officer else "",
                "officer_phone": (officer.phone or "") if officer else "",
                "last_called": g.holder, "last_called_name": person.name if person else "",
            })
    return sorted(out, key=lambda r: r["grid_id"])


async def record_rows(ctx: Context, alert_id: str) -> list[dict[str, str]]:
    """The 叫应 record: one row per provider call (and per person never called).

    A call is recorded when its outcome is stored; one whose worker died (or lost Redis)
    between the provider's accept and that record, or that is being made now, is a row all
    the same: its claim counted it (`Store.claimed`), and a row says its outcome is unknown
    (`UNKNOWN`), with the delivery's state as a provider's report may have settled it. Rows
    also say what was not a call: a fallback not needed (skipped), a delivery given up at its
    deadline while its provider was refused, a grid moved on past someone never reached."""
    cid = await ctx.store.campaign_of(alert_id)
    if not cid:
        raise NotFoundError(f"no alert {alert_id}")
    targets = await ctx.store.targets(cid)
    acks = await ctx.store.acks(cid)
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    calls: set[tuple[str, str]] = set()

    def person_cols(pid: str) -> dict[str, str]:
        p = ctx.person(pid)
        t = targets.get(pid)
        a = acks.get(pid)
        return {
            "person_id": pid, "name": p.name if p else speakers_name(ctx, pid),
            "role": (t.role.value if t and t.role else (p.role.value if p else "device")),
            "grids": " ".join(t.grids) if t else "",
            "confirmed_at": _ts(a.at) if a else "", "confirmed_via": a.via.value if a else "",
            "confirmed_by": (a.by or "") if a else "", "reason": (a.reason or "") if a else "",
        }

    def add(pid: str, **cols: str) -> None:
        seen.add(pid)
        row = dict.fromkeys(RECORD_COLUMNS, "")
        row.update(person_cols(pid))
        row.update(cols)
        rows.append(row)

    for ev in await ctx.store.audit(cid):
        kind = ev.get("ev")
        if kind == AuditEvent.ATTEMPT:
            calls.add((ev.get("d", ""), ev.get("n", "")))
            add(ev.get("tg", ""), delivery_id=ev.get("d", ""), channel=ev.get("ch", ""),
                step=ev.get("st", ""),
                kind=ev.get("k", ""), attempt=ev.get("n", ""), sent_at=_ts(ev.get("at")),
                outcome=ev.get("o", ""), state=ev.get("s", ""), detail=ev.get("x", ""))
        elif kind in _NOT_CALLS and (kind != AuditEvent.ESCALATE or ev.get("nc")):
            add(**_not_a_call(ev))
    lease_s = ctx.settings.engine.lease_s
    for c in sorted(await ctx.store.claimed(cid), key=lambda c: c.delivery_id):
        for n in range(1, c.attempts + 1):
            if (c.delivery_id, str(n)) in calls:
                continue
            now_sending = n == c.attempts and c.state is DeliveryState.SENDING
            add(c.info.get("target_id", ""), delivery_id=c.delivery_id,
                channel=c.info.get("channel", ""),
                step=c.info.get("step", ""), kind=c.info.get("kind", ""), attempt=str(n),
                sent_at=_ts(c.lease_until - lease_s) if now_sending else "", outcome=UNKNOWN,
                state=DeliveryState.SENDING.value if now_sending else c.state.value,
                detail=_UNKNOWN_ZH[now_sending])
    for pid, t in sorted(targets.items()):
        if pid not in seen and t.kind is TargetKind.PERSON:
            row = dict.fromkeys(RECORD_COLUMNS, "")
            row.update(person_cols(pid))
            rows.append(row)
    return rows


def speakers_name(ctx: Context, target_id: str) -> str:
    """What a record calls a village's loudspeakers (an area target): "X村应急广播"; else ""."""
    if kind_of(target_id) is not RefKind.AREA:
        return ""
    code = target_id[len(AREA_PREFIX):]
    region = ctx.registry.data.regions.get(code)
    return f"{region.name if region else code}应急广播"


#: The outcome of a provider call that was made (claimed and handed to the provider) but
#: whose outcome was never recorded.
UNKNOWN = "unknown"
_UNKNOWN_ZH = {
    True: "发送中：结果未知（正在发送，或工作进程在记录结果前中止）",
    False: "结果未知：工作进程在记录结果前中止（之后已重发或已由回执更新状态）",
}
_NOT_CALLS = frozenset({AuditEvent.FALLBACK, AuditEvent.GAVE_UP, AuditEvent.ESCALATE})


def _not_a_call(ev: dict[str, str]) -> dict[str, str]:
    """The record row of an audit event that is not a provider call (`pid`: whose)."""
    at = _ts(ev.get("at"))
    if ev["ev"] == AuditEvent.FALLBACK:
        return {"pid": ev.get("tg", ""), "delivery_id": ev.get("d", ""),
                "channel": ev.get("ch", ""), "step": ev.get("st", ""),
                "kind": ev.get("k", ""), "sent_at": at, "outcome": "skipped",
                "state": DeliveryState.CANCELLED.value,
                "detail": f"无需补发：本步{ev.get('ch', '')}消息已送达或正在发送"
                          f"（{ev.get('s', '')}）"}
    if ev["ev"] == AuditEvent.GAVE_UP:
        return {"pid": ev.get("tg", ""), "delivery_id": ev.get("d", ""),
                "channel": ev.get("ch", ""), "step": ev.get("st", ""),
                "kind": ev.get("k", ""), "sent_at": at, "outcome": "gave-up",
                "state": DeliveryState.DEAD.value,
                "detail": "服务商持续故障至本步截止时间，未发送（熔断中），转其他渠道："
                          + ev.get("x", "")}
    return {"pid": ev.get("from", ""), "kind": "escalation", "sent_at": at,
            "outcome": "uncontacted",
            "detail": f"网格{ev.get('g', '')}已转交{ev.get('to') or '未叫醒名单'}："
                      "此前未能联系到本人"}


#: What makes a spreadsheet read a cell as a formula when it comes first (OWASP, CSV
#: Injection), and the full-width forms a Chinese input method types for them.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")


def csv_cell(value: str) -> str:
    """`value` as a spreadsheet reads it as text: a formula's first character gets a "'"."""
    return "'" + value if value.startswith(FORMULA_START) else value


def write_csv(buf: io.StringIO, header: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    """Write a CSV table that spreadsheet programs open without running anything in it.

    Every cell is neutralised (`csv_cell`) and quoted: a quoted cell stays one cell also
    where a spreadsheet splits at ";" (OWASP: prefix, escape quotes, quote every field)."""
    w = csv.writer(buf, lineterminator="\n", quoting=csv.QUOTE_ALL)
    w.writerow([csv_cell(h) for h in header])
    w.writerows([csv_cell(str(v)) for v in row] for row in rows)


def rows_csv(rows: list[dict[str, str]]) -> str:
    """The 叫应 record as CSV (the API, the console and `warnbus record` all write this)."""
    buf = io.StringIO()
    write_csv(buf, RECORD_COLUMNS, ([row.get(c, "") for c in RECORD_COLUMNS] for row in rows))
    return buf.getvalue()


async def summary(ctx: Context, alert_id: str) -> dict[str, Any]:
    """The 叫应 summary: confirmed per township, time to confirm, the 未叫醒 list."""
    cid = await ctx.store.campaign_of(alert_id)
    if not cid:
        raise NotFoundError(f"no alert {alert_id}")
    meta = await ctx.store.meta(cid)
    t0 = (meta.t0 if meta else None) or 0.0
    acks = await ctx.store.acks(cid)
    delays = sorted(a.at - t0 for a in acks.values())
    per_town: dict[str, dict[str, int]] = {}
    reg = ctx.registry
    sites = {"sites": 0, "confirmed": 0, "taken_over": 0, "unreached": 0}
    for g in (await ctx.store.grids(cid)).values():
        if reg.is_site(g.grid_id):  # counted apart: per township are grids
            sites["sites"] += 1
            if g.state.value in sites:
                sites[g.state.value] += 1
            continue
        grid = reg.data.grids.get(g.grid_id)
        town = reg.township_of(grid.village) if grid else None
        name = reg.data.regions[town].name if town and town in reg.data.regions else "?"
        row = per_town.setdefault(name, {"grids": 0, "confirmed": 0, "taken_over": 0,
                                         "unreached": 0})
        row["grids"] += 1
        if g.state.value in row:
            row[g.state.value] += 1
    return {
        "alert_id": alert_id,
        "campaign_id": cid,
        "confirmed": len(acks),
        "time_to_confirm_s": {
            "median": statistics.median(delays) if delays else None,
            "p90": delays[int(0.9 * (len(delays) - 1))] if delays else None,
        },
        "per_township": dict(sorted(per_town.items())),
        "sites": sites,
        "unreached": await unreached(ctx, cid),
    }
