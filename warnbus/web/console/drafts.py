"""Drafts of console messages (alert, update, cancel) and their approval, in Redis.

A draft moves pending -> publishing -> published (or failed), or pending -> rejected, each
move one compare-and-set, so two approvers clicking at once publish it once. Its drafter may
withdraw it (pending or rejected -> withdrawn) or edit and resubmit it (pending or rejected ->
pending, a new revision): an approval names the revision the approver saw, so an edit made
meanwhile is never published unseen. Every move is kept in the draft's history. Who drafted
and who approved each published message is kept with the campaign, by the store
(`Store.console.record_provenance`).
"""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Any

import msgspec

from warnbus.state import keys
from warnbus.state.replies import text_of
from warnbus.web.console.compose import DraftForm


class DraftState(StrEnum):
    PENDING = "pending"  # waiting for an approver (or being confirmed by its drafter)
    PUBLISHING = "publishing"  # being handed to the intake
    PUBLISHED = "published"
    REJECTED = "rejected"  # sent back by an approver, with a reason: may be edited
    FAILED = "failed"  # the engine refused it or publishing failed: nothing was sent
    WITHDRAWN = "withdrawn"  # its drafter took it back: nothing is sent


#: What its drafter may still change (edit and resubmit, or withdraw).
EDITABLE = frozenset({DraftState.PENDING, DraftState.REJECTED})

# KEYS: draft hash. ARGV: from_states (comma-separated), to_state, revision expected ("": any),
# a history entry (JSON, "": none), then field/value pairs.
_MOVE = r"""
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 0 end
local ok = false
for st in string.gmatch(ARGV[1], '[^,]+') do if st == state then ok = true end end
if not ok then return 0 end
if ARGV[3] ~= '' and (redis.call('HGET', KEYS[1], 'rev') or '0') ~= ARGV[3] then return 0 end
redis.call('HSET', KEYS[1], 'state', ARGV[2])
for i = 5, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
if ARGV[4] ~= '' then
  local h = redis.call('HGET', KEYS[1], 'history')
  if h and h ~= '' and h ~= '[]' then
    redis.call('HSET', KEYS[1], 'history', string.sub(h, 1, -2) .. ',' .. ARGV[4] .. ']')
  else
    redis.call('HSET', KEYS[1], 'history', '[' .. ARGV[4] .. ']')
  end
end
return 1
"""
_form_dec = msgspec.json.Decoder(DraftForm)


class DraftEvent(msgspec.Struct, frozen=True, array_like=True):
    """One step of a draft's history: when, who (user name), what (a DraftState the draft
    moved to, or "drafted" / "resubmitted"), and the reason or note."""

    at: float
    by: str
    what: str
    note: str = ""


_hist_dec = msgspec.json.Decoder(tuple[DraftEvent, ...])


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
    rev: int = 0  # revisions: each edit and resubmission adds one
    history: tuple[DraftEvent, ...] = ()  # in time order


class Drafts:
    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._move = redis.register_script(_MOVE)

    async def create(self, kind: str, level: str, form: DraftForm, by: str, now: float,
                     campaign_id: str = "") -> Draft:
        d = Draft("df_" + secrets.token_hex(8), kind, DraftState.PENDING, level, form, by, now,
                  campaign_id, history=(DraftEvent(now, by, "drafted"),))
        mapping = {k: v for k, v in msgspec.structs.asdict(d).items()
                   if k not in ("form", "history")}
        mapping["form"] = msgspec.json.encode(form).decode()
        mapping["history"] = msgspec.json.encode(d.history).decode()
        pipe = self.redis.pipeline(transaction=False)
        pipe.hset(keys.console_draft(d.id), mapping=mapping)
        pipe.zadd(keys.CONSOLE_DRAFTS, {d.id: now})
        await pipe.execute()
        return d

    async def get(self, draft_id: str) -> Draft | None:
        got = await self.redis.hgetall(keys.console_draft(draft_id))
        raw = {text_of(k): text_of(v) for k, v in got.items()}
        if not raw:
            return None
        return Draft(
            id=raw["id"], kind=raw["kind"], state=raw["state"], level=raw["level"],
            form=_form_dec.decode(raw["form"]), drafted_by=raw["drafted_by"],
            drafted_at=float(raw["drafted_at"]), campaign_id=raw.get("campaign_id", ""),
            approved_by=raw.get("approved_by", ""),
            approved_at=float(raw.get("approved_at") or 0), rejected_by=raw.get("rejected_by", ""),
            reason=raw.get("reason", ""), alert_id=raw.get("alert_id", ""),
            rev=int(raw.get("rev") or 0), history=_hist_dec.decode(raw.get("history") or "[]"),
        )

    async def recent(self, limit: int = 100) -> list[Draft]:
        ids = await self.redis.zrevrange(keys.CONSOLE_DRAFTS, 0, limit - 1)
        out = [await self.get(text_of(i)) for i in ids]
        return [d for d in out if d is not None]

    async def move(self, draft_id: str, from_state: str | frozenset[DraftState],
                   to_state: str, *, at_rev: int | None = None,
                   event: DraftEvent | None = None,
                   **fields: str | float) -> bool:
        """Move the draft from `from_state` (one, or any of a set) to `to_state`, setting
        `fields`, if it is there (and at revision `at_rev`, when given); `event` joins its
        history. False when it was not (someone else moved it first, or it was edited)."""
        froms = from_state if isinstance(from_state, str) else ",".join(sorted(from_state))
        args: list[Any] = [froms, to_state, "" if at_rev is None else str(at_rev),
                           msgspec.json.encode(event).decode() if event else ""]
        for k, v in fields.items():
            args += [k, v]
        return bool(int(await self._move(keys=[keys.console_draft(draft_id)], args=args)))

    async def resubmit(self, d: Draft, form: DraftForm, level: str, by: str, now: float) -> bool:
        """`d` edited by its drafter: a new revision, pending again (from pending or
        rejected, at the revision the drafter edited); the rejection's reason stays in the
        history only."""
        return await self.move(d.id, EDITABLE, DraftState.PENDING, at_rev=d.rev,
                               event=DraftEvent(now, by, "resubmitted"),
                               form=msgspec.json.encode(form).decode(), level=level,
                               rev=d.rev + 1, rejected_by="", reason="")

