"""The console's duty changes and roster approvals, in Redis for every process.

An override or swap of a shift (`domain.duty.DutyChange`) and an approval of a roster version
(`domain.duty.Approval`) are written with an entry in the duty audit stream and a new
generation in one MULTI, so the next look of every process (`DutyDesk.book`: one GET while
nothing changed) answers with them: no restart. A change is written only if each shift it
touches is still held by whom the person making it saw (WATCH on the generation; otherwise
`DutyConflict`): two people swapping the same shift at once cannot both win unseen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec
from redis.exceptions import WatchError

from warnbus.domain.duty import Approval, DutyBook, DutyChange, parse_day
from warnbus.errors import DutyConflict
from warnbus.state import keys
from warnbus.state.client import RedisClient
from warnbus.state.replies import text_of

#: Audit entries kept (about 30 years of a county's daily changes).
AUDIT_MAX = 100_000
_change = msgspec.json.Decoder(DutyChange)
_approval = msgspec.json.Decoder(Approval)
_APPROVE = "approve"  # the audit event of an approval (a change's is its kind)


def change_field(change: DutyChange) -> str:
    return f"{change.region}|{change.role.value}|{change.day}"


class DutyDesk:
    """Reads and writes the console's part of who is on duty."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis: Any = redis
        self._cached: tuple[int, DutyBook, DutyBook] | None = None

    async def generation(self) -> int:
        return int(text_of(await self._redis.get(keys.DUTY_GEN)) or 0)

    async def book(self, base: DutyBook) -> DutyBook:
        """`base` (the registry's rosters) with the console's approvals and changes now."""
        gen = await self.generation()
        hit = self._cached
        if hit is not None and hit[0] == gen and hit[1] is base:
            return hit[2]
        gen, book = await self._read(base)
        self._cached = (gen, base, book)
        return book

    async def _read(self, base: DutyBook) -> tuple[int, DutyBook]:
        pipe = self._redis.pipeline(transaction=True)
        pipe.get(keys.DUTY_GEN)
        pipe.hgetall(keys.DUTY_CHANGES)
        pipe.hgetall(keys.DUTY_APPROVALS)
        gen, changes, approvals = await pipe.execute()
        book = base.with_state({text_of(k): _approval.decode(v) for k, v in approvals.items()},
                               [_change.decode(v) for v in changes.values()])
        return int(text_of(gen) or 0), book

    async def change(self, base: DutyBook, changes: Sequence[DutyChange]) -> None:
        """Write overrides or swaps, each on a shift still held by its `was`."""
        shifts = []
        for c in changes:
            day = parse_day(c.day)
            if day is None:
                raise ValueError(f"not a day: {c.day!r}")
            shifts.append((c, day))
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(keys.DUTY_GEN)
                _gen, book = await self._read(base)
                for c, day in shifts:
                    now = book.shift(c.region, c.role, day).person
                    if now != c.was:
                        raise DutyConflict(f"{c.day} 的班次已由他人改为 {now or '无人'}，"
                                           "请刷新后重试", day=c.day, holder=now)
                pipe.multi()
                for c in changes:
                    blob = msgspec.json.encode(c)
                    pipe.hset(keys.DUTY_CHANGES, change_field(c), blob)
                    pipe.xadd(keys.DUTY_AUDIT, {"ev": c.kind.value, "j": blob},
                              maxlen=AUDIT_MAX, approximate=True)
                pipe.incr(keys.DUTY_GEN)
                await pipe.execute()
            except WatchError:
                raise DutyConflict("值班安排刚被他人修改，请刷新后重试") from None

    async def approve(self, roster_id: str, approval: Approval) -> bool:
        """Approve a roster version; False if it was approved already as it is (the first
        stays). An approval of other shifts (the version changed since) is replaced."""
        blob = msgspec.json.encode(approval)
        async with self._redis.pipeline(transaction=True) as pipe:
            await pipe.watch(keys.DUTY_APPROVALS)
            was = await pipe.hget(keys.DUTY_APPROVALS, roster_id)
            if was is not None and _approval.decode(was).digest in ("", approval.digest):
                return False
            pipe.multi()
            pipe.hset(keys.DUTY_APPROVALS, roster_id, blob)
            pipe.xadd(keys.DUTY_AUDIT, {"ev": _APPROVE, "roster": roster_id, "j": blob},
                      maxlen=AUDIT_MAX, approximate=True)
            pipe.incr(keys.DUTY_GEN)
            try:
                await pipe.execute()
            except WatchError:
                return False
        return True

    async def history(self, count: int = 100) -> list[tuple[DutyChange | Approval, str]]:
        """The newest audit entries, newest first: (a change, "") or (an approval, its
        roster version's id)."""
        rows = await self._redis.xrevrange(keys.DUTY_AUDIT, count=count)
        out: list[tuple[DutyChange | Approval, str]] = []
        for _id, fields in rows:
            f = {text_of(k): v for k, v in fields.items()}
            if text_of(f.get("ev")) == _APPROVE:
                out.append((_approval.decode(f["j"]), text_of(f.get("roster"))))
            else:
                out.append((_change.decode(f["j"]), ""))
        return out
