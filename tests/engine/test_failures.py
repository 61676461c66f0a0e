"""Transient failures retry with backoff then dead-letter; permanent ones switch channel."""

from __future__ import annotations

from tests.engine.helpers import cap_alert, make_harness
from warnbus.domain.models import DeliveryKind
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.state import keys
from warnbus.state.queue import decode_delivery


def _one_primary(h) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    g = sorted((x for x in h.ctx.registry.data.grids.values()
                if x.village.startswith("430623101")), key=lambda x: x.id)
    p = h.ctx.registry.data.persons[g[0].primary]
    return p.id, p.phone


async def test_permanent_failure_switches_to_the_fallback_channel(redis_url: str) -> None:
    probe = await make_harness(redis_url)
    pid, phone = _one_primary(probe)
    await probe.app.close()
    # Only the voice channel finds the number dead; SMS to it works.
    h = await make_harness(redis_url, fail_perm={"voice": (phone,)})
    try:
        res = await accept(h.ctx, cap_alert(), ENGINE)
        await h.drain()
        assert not [d for d in h.sent("voice") if d.target_id == pid]
        sms = [d for d in h.sent("sms") if d.target_id == pid]
        assert len(sms) == 1, "the fallback (voice -> sms) dedups with the first-wave SMS"
        states = await h.ctx.store.delivery_states(res.campaign_id)
        assert "failed" in states.values()
    finally:
        await h.app.close()


async def test_transient_failures_retry_then_dead_letter(redis_url: str) -> None:
    probe = await make_harness(redis_url)
    pid, phone = _one_primary(probe)
    await probe.app.close()
    h = await make_harness(redis_url, fail_temp={"voice": (phone,), "sms": (phone,)},
                           max_attempts=3, retry_base_s=10,
                           retry_max_s=40)
    try:
        res = await accept(h.ctx, cap_alert(), ENGINE)
        await h.drain()
        due = [s for _m, s in await h.ctx.redis.zrange(keys.TIMERS, 0, -1, withscores=True)]
        assert any(h.clock.now() + 4 <= s <= h.clock.now() + 10 for s in due), "jittered backoff"
        for _ in range(4):
            h.clock.advance(60)
            await h.drain()
        dead = {d.id: d for d in (decode_delivery(f[b"d"])
                                  for _i, f in await h.ctx.redis.xrange(keys.DEAD))}
        rows = [r for r in await h.ctx.store.audit(res.campaign_id)
                if r.get("tg") == pid and r.get("ev") == "attempt" and r.get("k") == "warning"
                and r.get("ch") in ("voice", "sms")]
        per_delivery: dict[str, int] = {}
        for r in rows:
            per_delivery[r["d"]] = per_delivery.get(r["d"], 0) + 1
        assert set(per_delivery) <= set(dead)
        planned = {d: n for d, n in per_delivery.items() if not dead[d].tried}
        assert len(planned) == 2 and all(n == 3 for n in planned.values()), per_delivery
        assert {r["s"] for r in rows} == {"retry", "dead"}
        # Each one's fallback (the other channel, with an id of its own) was tried until the
        # step's deadline and gave up too, or was skipped, recorded, while the step's own
        # message on that channel was still under way: none vanished.
        tried = {(d.channel, d.tried) for d in dead.values() if d.tried}
        skipped = {(r["ch"], r["twin"]) for r in await h.ctx.store.audit(res.campaign_id)
                   if r.get("ev") == "fallback" and r.get("tg") == pid}
        for ch, other in (("sms", "voice"), ("voice", "sms")):
            twin = next(d for d in planned if dead[d].channel == ch)
            assert (ch, (other,)) in tried or (ch, twin) in skipped, (ch, tried, skipped)
        # WeCom does not use the phone number, so the person was still reached there.
        assert [d for d in h.sent("wecom") if d.target_id == pid
                and d.kind is DeliveryKind.WARNING] or not h.ctx.person(pid).wecom  # type: ignore[union-attr]
    finally:
        await h.app.close()


def test_campaign_keys_share_one_cluster_slot() -> None:
    from redis.crc import key_slot

    ck = keys.campaign("cp_0123456789abcdef")
    slots = {key_slot(k.encode()) for k in ck.all()}
    assert len(slots) == 1
    assert key_slot(keys.TIMERS.encode()) == key_slot(keys.TIMERS_DUE.encode())
