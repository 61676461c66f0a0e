"""`acks`: confirmations over real HTTP, as fast as a bounded load generator can send them:
signed ack links (`link`), or the providers' signed webhooks (`dtmf`, `sms`, `wecom`).

The engine runs as a process of its own (all roles, as `warnbus serve` deploys it by default,
see `warnbus.tools.bench.server`), so the load generator here does not share its event loop. The
API's public rate limits are the shipped ones (`warnbus.web.api.PUBLIC_LIMITS`: a global
bucket for `/ack/` and `/hooks/`, no per-address bucket), so the figure is the deployed one.
Each run issues a red warning over HTTP and waits for its first wave; then every
confirmation is prepared (signed as its sender signs it) and the lean client of
`warnbus.tools.bench.loadgen` POSTs each once, with a fixed number of connections.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import aiohttp
from redis.asyncio import Redis

from channels.sim.prepared import PreparedRequest
from warnbus.domain.states import CampaignState, TargetState
from warnbus.flow.acks import AckLinks
from warnbus.ingest.jsonform import alert_to_json
from warnbus.registry import Registry
from warnbus.runtime.services import free_port
from warnbus.state.queue import Lanes
from warnbus.state.store import Store
from warnbus.tools.bench.alerts import geocode_area, red_alert
from warnbus.tools.bench.env import (
    ACK_SECRET,
    BenchEnv,
    BenchError,
    process_cpu,
    redis_cpu,
    wait_first_wave,
)
from warnbus.tools.bench.fanout import CHANNELS, PROVINCE_CODE
from warnbus.tools.bench.loadgen import post_all
from warnbus.tools.bench.server import public_limits
from warnbus.tools.bench.serving import Servers, silent_stage
from warnbus.tools.simulation import SimulatedWorld

CONNECTIONS = 64  # concurrent requests of the load generator


VIAS = ("link", "dtmf", "sms", "wecom")


@dataclass(frozen=True)
class AckOptions:
    counties: int
    runs: int
    timeout_s: float
    connections: int = CONNECTIONS
    # link: POST /ack/{token}. dtmf / sms / wecom: the providers' signed webhooks (a key
    # pressed in a call, an SMS reply, a card's button), sent by the shipped simulators.
    via: str = "link"
    api_processes: int = 1  # serving the API: `warnbus serve`, and N-1 `--role api` ones


async def run_acks(opts: AckOptions, env: BenchEnv) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    if opts.via != "link":
        return await _run_webhook_acks(opts, env)
    reg = env.registry(opts.counties)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(24)
    servers = Servers(env, reg, port, token, opts.api_processes - 1)
    probe = Redis.from_url(env.redis.url)
    links = AckLinks(ACK_SECRET.encode(), base, 24 * 3600.0)
    samples: list[dict[str, Any]] = []
    try:
        connector = aiohttp.TCPConnector(limit=opts.connections)
        async with aiohttp.ClientSession(connector=connector) as http:
            await servers.wait()
            for i in range(opts.runs):
                alert = red_alert(f"bench-acks-{i}-{time.time_ns()}", geocode_area(PROVINCE_CODE))
                cid = await _post_alert(http, base, token, alert_to_json(alert))
                await wait_first_wave(probe, Lanes(probe, CHANNELS), opts.timeout_s)
                persons = await Store(probe).holders(cid)
                posts = [PreparedRequest(links.url(cid, pid, time.time()), b"",
                                         {"Accept": "application/json"}) for pid in persons]
                sample = await _measure(posts, servers, probe, opts)
                acked = await _acked(probe, cid)
                if acked != len(persons):
                    raise BenchError(f"{len(persons)} acks sent but {acked} recorded")
                samples.append(sample)
    finally:
        await probe.aclose()
        servers.stop()
    fixed = {"title": f"signed ack links (POST /ack/{{token}}), {opts.connections} connections, "
                      f"{_serving(opts)}, shipped public rate limits",
             "connections": opts.connections, "api_processes": opts.api_processes,
             "shipped_public_limits": public_limits()}
    return samples, fixed


async def _acked(probe: Redis, cid: str) -> int:
    """How many persons the engine recorded as confirmed in a campaign."""
    meta = await Store(probe).meta(cid)
    return meta.target_count(TargetState.ACKED) if meta else 0


async def _run_webhook_acks(opts: AckOptions, env: BenchEnv
                            ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Confirmations through the providers' signed webhooks, sent by the shipped simulators
    as the real providers send them: Twilio's Gather action (a key pressed, `dtmf`) or
    inbound SMS (`sms`, X-Twilio-Signature), WeCom's encrypted button callback (`wecom`).

    The simulated officers never answer by themselves; the load generator tells each one
    to, once, with `opts.connections` in flight. The engine runs every role in its own
    process with the real channels pointed at the simulators.
    """
    stage = await silent_stage(env, opts.counties)
    registry, base, token, world = stage.registry, stage.base, stage.token, stage.world
    servers = Servers(env, stage.registry_dir, stage.port, token, opts.api_processes - 1,
                      world.configs)
    probe = Redis.from_url(env.redis.url)
    samples: list[dict[str, Any]] = []
    try:
        async with aiohttp.ClientSession() as http:
            await servers.wait()
            for i in range(opts.runs):
                # What the simulators keep is bounded: start each run from empty records.
                world.twilio.calls.clear()
                world.twilio.messages.clear()
                world.wecom.sent.clear()
                alert = red_alert(f"bench-acks-{opts.via}-{i}-{time.time_ns()}",
                                  geocode_area(PROVINCE_CODE))
                cid = await _post_alert(http, base, token, alert_to_json(alert))
                await wait_first_wave(probe, Lanes(probe, CHANNELS), opts.timeout_s)
                # The first wave's status callbacks are over before the confirmations start.
                await world.twilio.wait_idle(opts.timeout_s)
                await world.wecom.drain(opts.timeout_s)
                confirms, persons = _webhook_confirms(world, opts.via, registry)
                active = len(await Store(probe).active_campaigns())
                sample = await _measure(confirms, servers, probe, opts)
                acked = await _acked(probe, cid)
                if acked != persons:
                    raise BenchError(f"{len(confirms)} {opts.via} confirmations for {persons} "
                                     f"persons, but {acked} acks recorded")
                # An SMS reply names no campaign: it is tried on every active one, so each
                # run must find as many as the first did. End this run's campaign as its
                # expiry would (no notices), so the next run starts with one active too.
                await Store(probe).finish(cid, CampaignState.EXPIRED, time.time())
                samples.append(sample | {"active_campaigns": active})
    finally:
        await probe.aclose()
        servers.stop()
        await world.stop()
    what = {"dtmf": "a key pressed in the call (Twilio Gather action, signed)",
            "sms": "an SMS reply (Twilio inbound webhook, signed)",
            "wecom": "the card's button (WeCom callback, encrypted and signed)"}[opts.via]
    fixed = {"title": f"confirmations by {what}, {opts.connections} in flight, "
                      f"{_serving(opts)}, shipped public rate limits",
             "via": opts.via, "connections": opts.connections,
             "api_processes": opts.api_processes, "shipped_public_limits": public_limits()}
    return samples, fixed


def _serving(opts: AckOptions) -> str:
    if opts.api_processes <= 1:
        return "engine in its own process"
    return f"engine in its own process and {opts.api_processes - 1} more API process(es)"


def _webhook_confirms(world: SimulatedWorld, via: str, registry: Registry
                      ) -> tuple[list[PreparedRequest], int]:
    """One confirmation per message of this run's first wave, signed by the simulator as
    its provider signs it, and how many persons they confirm for (an SMS reply confirms
    everyone who has that phone number)."""
    if via == "wecom":
        cards = [c for c in world.wecom.sent if not c.duplicate]
        return _all_prepared([world.wecom.prepare_click(c) for c in cards]), len(
            {c.touser for c in cards})
    records = list(world.twilio.calls if via == "dtmf" else world.twilio.messages)
    phones = {r.to for r in records}
    persons = sum(1 for p in registry.data.persons.values() if p.phone in phones)
    if via == "dtmf":
        return _all_prepared([world.twilio.prepare_press(r) for r in records]), persons
    return _all_prepared([world.twilio.prepare_reply(r) for r in records]), persons


def _all_prepared(requests: Sequence[PreparedRequest | None]) -> list[PreparedRequest]:
    if any(r is None for r in requests):
        raise BenchError("a simulator has no webhook URL to confirm through")
    return [r for r in requests if r is not None]


async def _post_alert(http: aiohttp.ClientSession, base: str, token: str, body: bytes) -> str:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    async with http.post(f"{base}/api/v1/alerts", data=body, headers=headers) as resp:
        reply = await resp.json()
        if resp.status != 202:
            raise BenchError(f"POST /api/v1/alerts answered {resp.status}: {reply}")
    return str(reply["campaign_id"])


async def _measure(posts: Sequence[PreparedRequest], servers: Servers, probe: Redis,
                   opts: AckOptions) -> dict[str, Any]:
    """Send every confirmation once with `opts.connections` in flight; time and account."""
    server0, client0, redis0 = servers.cpu(), process_cpu(), await redis_cpu(probe)
    sent = await post_all(posts, opts.connections, opts.timeout_s)
    server1, client1, redis1 = servers.cpu(), process_cpu(), await redis_cpu(probe)
    if set(sent.statuses) != {200}:
        raise BenchError(f"ack replies by status: {dict(sent.statuses)} (all should be 200)")
    latencies = sorted(sent.latencies)
    return {
        "acks": len(posts),
        "acks_per_s": round(len(posts) / sent.elapsed_s, 1),
        "ack_p50_ms": round(1000 * latencies[len(latencies) // 2], 2),
        "ack_p99_ms": round(
            1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "server_cpu_s": round(server1 - server0, 3),
        "client_cpu_s": round(client1 - client0, 3),
        "redis_cpu_s": round(redis1 - redis0, 3),
        "elapsed_s": round(sent.elapsed_s, 3),
    }

