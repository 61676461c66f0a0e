"""Drafts of console messages (alert, update, cancel) and their approval, in Redis.

A draft moves pending -> publishing -> published (or failed), or pending -> rejected, each
move one compare-and-set, so two approvers clicking at once publish it once. Who drafted and
who approved each published message is kept with the campaign, by the store
(`Store.console.record_provenance`).
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from warnbus.state import keys
from warnbus.state.replies import s
from warnbus.web.console.compose import DraftForm

# KEYS: draft hash. ARGV: from_state, to_state, then field/value pairs.
_MOVE = r"""
if redis.call('HGET', KEYS[1], 'state') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
return 1
"""
_form_dec = msgspec.json.Decoder(DraftForm)


class Draft(msgspec.Struct, frozen=True):
    id: str
    kind: str  # alert | update | cancel
    state: str  # pending | publishing | published | rejected | failed
    level: str
    form: DraftForm
    drafted_by: str
    drafted_at: float
    campaign_id: str = ""  # the thread an update/cancel continues; set on publish for alerts
    approved_by: str = ""
    approved_at: float = 0.0
    rejected_by: str = ""
    reason: str = ""  # why it was rejected, or the error publishing met
    alert_id: str = ""


class Drafts:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._move = redis.register_script(_MOVE)

    async def create(self, kind: str, level: str, form: DraftForm, by: str, now: float,
                     campaign_id: str = "") -> Draft:
        d = Draft("df_" + secrets.token_hex(8), kind, "pending", level, form, by, now,
                  campaign_id)
        mapping = {k: v for k, v in msgspec.structs.asdict(d).items() if k != "form"}
        mapping["form"] = msgspec.json.encode(form).decode()
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.console_draft(d.id), mapping=mapping)
        pipe.zadd(keys.CONSOLE_DRAFTS, {d.id: now})
        await pipe.execute()
        return d

    async def get(self, draft_id: str) -> Draft | None:
        raw = {s(k): s(v) for k, v in (await self.redis.hgetall(keys.console_draft(draft_id))).items()}
        if not raw:
            return None
        return Draft(
            id=raw["id"], kind=raw["kind"], state=raw["state"], level=raw["level"],
            form=_form_dec.decode(raw["form"]), drafted_by=raw["drafted_by"],
            drafted_at=float(raw["drafted_at"]), campaign_id=raw.get("campaign_id", ""),
            approved_by=raw.get("approved_by", ""),
            approved_at=float(raw.get("approved_at") or 0), rejected_by=raw.get("rejected_by", ""),
            reason=raw.get("reason", ""), alert_id=raw.get("alert_id", ""),
        )

    async def recent(self, limit: int = 100) -> list[Draft]:
        ids = await self.redis.zrevrange(keys.CONSOLE_DRAFTS, 0, limit - 1)
        out = [await self.get(s(i)) for i in ids]
        return [d for d in out if d is not None]

    async def move(self, draft_id: str, from_state: str, to_state: str,
                   **fields: str | float) -> bool:
        args: list[Any] = [from_state, to_state]
        for k, v in fields.items():
            args += [k, v]
        return bool(int(await self._move(keys=[keys.console_draft(draft_id)], args=args)))

