"""Accepted messages and their indexes: accept's writes, and what the CAP feed and the console
list. Owned by the store (`Store.messages`); nothing else touches these keys.

An accepted message is one pipeline (the 202 promise): the alert in its campaign's `alerts`,
the campaign in `keys.CAMPAIGNS`, the sender and first count in its meta (an Alert), what the
thread reached, the inbox item, the alert index and `keys.MESSAGES`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from warnbus.domain.meta import encode_fields
from warnbus.domain.models import Alert
from warnbus.state import keys
from warnbus.state.client import RedisClient
from warnbus.state.replies import text_of

_json = msgspec.json.Encoder()
_json_alert = msgspec.json.Decoder(Alert)
_counts = msgspec.json.Decoder(dict[str, int])
_REACH = "reach"  # meta field: JSON of the 202's counts


class Messages:
    """The messages a campaign's thread accepted, and the indexes over them."""

    def __init__(self, redis: RedisClient) -> None:
        self._redis: Any = redis  # replies decoded here

    async def accept(self, campaign_id: str, alert: Alert, *, now: float,
                     first_targets: int | None = None, reached: Sequence[str] = (),
                     first_counts: Mapping[str, int] | None = None,
                     blob: bytes | None = None, source: str = "") -> bool:
        """Persist an accepted message and queue it for planning, in one round trip.

        Returns False when the same message was already kept (accepted at the same moment
        through another request). `blob`: its JSON form when the caller encoded it already
        (off the event loop for a large alert). `first_targets` and `first_counts`: for a
        thread's Alert, the count and the counts (persons, grids, sites ...) the 202 reports,
        kept with the thread's sender (later messages of the thread keep the first).
        `reached`: what the message reaches (`keys.CampaignKeys.reach`). `source`: the name
        of the credential it came in under (`sources`). Every write keeps
        what a replay found."""
        aid = alert.alert_id
        ck = keys.campaign(campaign_id)
        pipe = self._redis.pipeline(transaction=False)
        pipe.hsetnx(ck.alerts, aid, _json.encode(alert) if blob is None else blob)
        pipe.zadd(keys.CAMPAIGNS, {campaign_id: now}, nx=True)
        if first_targets is not None:
            for name, value in encode_fields({"targets": first_targets,
                                              "sender": alert.sender}).items():
                pipe.hsetnx(ck.meta, name, value)
        if first_counts:
            # Not a field of the typed meta (decode_meta leaves it alone): the 202's counts,
            # read back only to answer the same alert again alike.
            pipe.hsetnx(ck.meta, _REACH, _json.encode(dict(first_counts)))
        if reached:
            pipe.sadd(ck.reach, *reached)
        if source:
            pipe.hsetnx(ck.sources, aid, source)
        pipe.xadd(keys.INBOX, {"a": aid, "c": campaign_id})
        pipe.set(keys.alert_index(aid), campaign_id, nx=True)
        pipe.zadd(keys.MESSAGES, {aid: now}, nx=True)
        return bool((await pipe.execute())[0])

    async def sources(self, campaign_id: str) -> dict[str, str]:
        """The credential each message of the thread came in under, by alert id (a feed's
        `feed <name>`, a token's name, `console`, `engine`; none for messages accepted
        before it was kept)."""
        raw = await self._redis.hgetall(keys.campaign(campaign_id).sources)
        return {text_of(k): text_of(v) for k, v in raw.items()}

    async def thread_sender(self, campaign_id: str) -> str:
        """The CAP sender that owns a campaign's thread ("" if it was accepted before the
        sender was kept at acceptance). Read alone: whatever else its meta holds, a thread
        can be continued and cancelled."""
        return text_of(await self._redis.hget(keys.campaign(campaign_id).meta, "sender"))

    async def accepted_targets(self, campaign_id: str) -> int:
        """How many targets the thread's Alert reached when it was accepted."""
        v = text_of(await self._redis.hget(keys.campaign(campaign_id).meta, "targets"))
        return int(v) if v.isdigit() else 0

    async def accepted_counts(self, campaign_id: str) -> dict[str, int]:
        """The counts (persons, grids, sites, loudspeakers) the thread's Alert's 202 gave
        ({} for a thread accepted before they were kept)."""
        v = await self._redis.hget(keys.campaign(campaign_id).meta, _REACH)
        return _counts.decode(v) if v else {}

    async def newest(self, offset: int, count: int) -> list[tuple[str, float]]:
        """(alert id, acceptance time) of accepted messages, newest first."""
        rows = await self._redis.zrevrange(keys.MESSAGES, offset, offset + count - 1,
                                           withscores=True)
        return [(text_of(aid), float(score)) for aid, score in rows]

    async def campaigns_of(self, alert_ids: Sequence[str]) -> list[str]:
        """The campaign of each alert ("" for one never accepted), in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for aid in alert_ids:
            pipe.get(keys.alert_index(aid))
        return [text_of(c) for c in await pipe.execute()]

    async def newest_campaigns(self, count: int) -> list[tuple[str, float]]:
        """(campaign id, creation time) of the newest campaigns, newest first."""
        rows = await self._redis.zrevrange(keys.CAMPAIGNS, 0, count - 1, withscores=True)
        return [(text_of(cid), float(score)) for cid, score in rows]

    async def alert_ids(self, campaign_ids: Sequence[str]) -> list[list[str]]:
        """The ids of every message of each campaign's thread, in one round trip."""
        pipe = self._redis.pipeline(transaction=False)
        for cid in campaign_ids:
            pipe.hkeys(keys.campaign(cid).alerts)
        return [[text_of(a) for a in aids] for aids in await pipe.execute()]

    async def accepted_at(self, alert_ids: Sequence[str]) -> list[float | None]:
        """When each message was accepted (None: before `keys.MESSAGES` kept it)."""
        if not alert_ids:
            return []
        return [None if v is None else float(v)
                for v in await self._redis.zmscore(keys.MESSAGES, list(alert_ids))]

    async def unindexed(self, alert_ids: Sequence[str]) -> list[bool]:
        """Whether each message is missing from `keys.MESSAGES` (accepted by an older version)."""
        if not alert_ids:
            return []
        scores = await self._redis.zmscore(keys.MESSAGES, list(alert_ids))
        return [score is None for score in scores]

    async def alerts(self, items: Sequence[tuple[str, str]]) -> list[Alert | None]:
        """The messages of (campaign id, alert id) pairs, in one round trip."""
        if not items:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for cid, aid in items:
            pipe.hget(keys.campaign(cid).alerts, aid)
        return [_json_alert.decode(b) if b else None for b in await pipe.execute()]
