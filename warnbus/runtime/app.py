"""The composition root: settings -> services -> registry, rules, channels -> engine.

The only engine module that imports `rules/` and `channels/` (DESIGN section 3). Channels are
found through the `warnbus.channels` entry-point group, so a third party can add one.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import structlog
from redis.asyncio import BlockingConnectionPool, Redis

from rules.hazards import HazardTable
from rules.levels import level_of
from rules.match import Matcher
from rules.policy import Policy
from rules.sites import SiteRules
from rules.targets import SiteCall, build_targets, count_targets
from rules.templates import Templates
from warnbus.domain.models import Alert, Area, Info, Level, RegistryData, Target, TargetKind
from warnbus.errors import ConfigError
from warnbus.flow.acks import AckLinks
from warnbus.flow.credentials import console_sender
from warnbus.flow.ports import HazardLike, LevelPolicyLike, MatchLike, Rules
from warnbus.flow.routes import RoutedChannels
from warnbus.plugin import Channel, ChannelInfo, Medium
from warnbus.registry import Registry, default_registry_path, load_registry
from warnbus.runtime import live_registry, services
from warnbus.runtime.brokerauth import BrokerAccounts
from warnbus.runtime.clock import Clock, ScaledClock, SystemClock
from warnbus.runtime.config import ANY_SENDER, Settings, TokenSettings, check_credentials
from warnbus.runtime.context import Context
from warnbus.runtime.engine import ROLES, Engine, consumer_name
from warnbus.runtime.journal import Journal
from warnbus.state.duty import DutyDesk
from warnbus.state.heartbeat import Heartbeats
from warnbus.state.queue import Lanes, Timers
from warnbus.state.store import Store

log = structlog.get_logger("warnbus.runtime.app")

#: The channels the bundled policy names, and what each is.
DEFAULT_MEDIA: Mapping[str, Medium] = {
    "voice": Medium.VOICE, "sms": Medium.SMS, "wecom": Medium.WECOM,
    "loudspeaker": Medium.LOUDSPEAKER,
}
#: With no `[channels.*]`, those on the test channel (a process without the worker role; a
#: worker uses the provider simulators, `tools.simulation`).
DEFAULT_CHANNELS: Mapping[str, Mapping[str, Any]] = {
    name: {"type": "test", "medium": medium.value} for name, medium in DEFAULT_MEDIA.items()
}
ACK_SECRET_KEY = "wb:secret:ack"


class RulesFacade:
    """rules/ behind the engine's `ports.Rules` protocol."""

    def __init__(self, data: RegistryData, settings: Settings) -> None:
        self.hazards = HazardTable.load(settings.hazards or None)
        self.policy = Policy.load(settings.policy or None)
        self.renderer = Templates.load(settings.templates or None, self.hazards)
        self.sites = SiteRules.load(settings.sites or None,
                                    hazards={h.key for h in self.hazards.hazards})
        self.matcher = Matcher(data, hazards=self.hazards, sites=self.sites)
        #: The routes over the configured channels (`[routes]`), once they are built.
        self.routes: Mapping[str, Sequence[str]] = {}

    def for_registry(self, data: RegistryData) -> RulesFacade:
        """The same hazards, policy and templates, matching on `data`."""
        other = copy.copy(self)
        other.matcher = Matcher(data, hazards=self.hazards, sites=self.sites)
        return other

    def match(self, alert: Alert) -> MatchLike:
        return self.matcher.match(alert)

    def hazard_of(self, info: Info) -> HazardLike | None:
        return self.hazards.hazard_of(info)

    def region_codes(self, area: Area) -> Sequence[str]:
        return self.matcher.region_codes(area)

    def level_of(self, alert: Alert) -> Level:
        return level_of(alert)

    def policy_for(self, level: Level) -> LevelPolicyLike:
        return self.policy.for_level(level)

    def site_policy_for(self, level: Level) -> LevelPolicyLike:
        return self.sites.policy_for(level)

    def fallback_for(self, channel: str, tried: Sequence[str] = ()) -> str | None:
        """The policy's next channel after `channel` not in `tried`: a channel of a route
        (voice-aliyun behind `voice`) follows its route's entry unless the policy names it
        itself. It may be a route: `flow.fallback` picks the person's channel of it."""
        if channel in self.policy.fallback:
            return self.policy.fallback_for(channel, tried)
        route = next((r for r, ms in self.routes.items() if channel in ms), None)
        return self.policy.fallback_for(route, tried) if route is not None else None

    def targets(
        self, data: RegistryData, grids: Sequence[str], devices: Sequence[str], *, drill: bool,
        sites: Sequence[str] = (), hazards: Sequence[str] = (),
    ) -> list[Target]:
        return build_targets(data, grids, devices, drill=drill,
                             sites=self._calls(data, sites, hazards))

    def count_targets(
        self, data: RegistryData, grids: Sequence[str], devices: Sequence[str], *, drill: bool,
        sites: Sequence[str] = (), hazards: Sequence[str] = (),
    ) -> int:
        return count_targets(data, grids, devices, drill=drill,
                             sites=self._calls(data, sites, hazards))

    def _calls(self, data: RegistryData, sites: Sequence[str], hazards: Sequence[str]
               ) -> list[SiteCall]:
        """Each site with the roles of its people that the hazards call."""
        return [(sid, self.sites.roles_for(hazards, data.sites[sid].kind))
                for sid in sites if sid in data.sites]


def load_channels(
    configs: Mapping[str, Mapping[str, Any]], *, base_url: str, mqtt_url: str
) -> dict[str, Channel]:
    """Instantiate configured channels through the `warnbus.channels` entry points.

    Each entry point names a class of the `plugin.Channel` protocol, built by its
    `from_config`. Each channel gets `callback_url` (where its provider webhooks are mounted)
    unless its configuration sets one; MQTT channels get the engine's broker `url` the same way.
    """
    kinds = {ep.name: ep for ep in entry_points(group="warnbus.channels")}
    out: dict[str, Channel] = {}
    for name, raw in configs.items():
        kind = str(raw.get("type", ""))
        if kind not in kinds:
            raise ConfigError(
                f"channels.{name}.type: unknown channel type {kind!r} (known: "
                f"{', '.join(sorted(kinds))})"
            )
        cls: type[Channel] = kinds[kind].load()
        full = {"callback_url": f"{base_url.rstrip('/')}/hooks/{name}", **raw}
        if kind.startswith("mqtt"):
            full.setdefault("url", mqtt_url)
        channel = cls.from_config(name, full)
        if not isinstance(channel, Channel) or not isinstance(channel.info, ChannelInfo):
            raise ConfigError(f"channels.{name}: the channel type {kind!r} does not keep the "
                              "channel contract (warnbus.plugin.Channel, with a ChannelInfo)")
        out[name] = channel
    return out


def check_channels(policy: Policy, channels: Mapping[str, ChannelInfo],
                   sites: SiteRules | None = None) -> list[str]:
    """Check the channels of the policy (and of the sites' policy) against what the
    configured ones are.

    A channel to persons where the policy wants areas (or the other way round) is a
    ConfigError naming both. Returns the channels the policy names that are not configured
    (nothing is planned on them: `flow.planner`)."""
    wrong: list[str] = []
    named: set[str] = set()
    rows = [("", lv, p) for lv, p in policy.levels.items()]
    rows += [("sites: ", lv, p) for lv, p in (sites.levels.items() if sites else ())]
    for where, level, p in rows:
        lists = {"channels": p.channels, "redial_channels": p.redial_channels,
                 "escalation_channels": p.escalation_channels,
                 "cancel_channels": p.cancel_channels, "device_channels": p.device_channels,
                 "feedback_channels": p.feedback_channels}
        for field_name, names in lists.items():
            want = TargetKind.DEVICE if field_name == "device_channels" else TargetKind.PERSON
            for name in names:
                named.add(name)
                info = channels.get(name)
                if info is not None and info.target is not want:
                    wrong.append(f"{where}levels.{level}.{field_name}: {name!r} is a "
                                 f"{info.kind} channel, which sends to "
                                 f"{'areas' if info.target is TargetKind.DEVICE else 'persons'}")
    for source, target in policy.fallback.items():
        named.update((source, target))
        info = channels.get(target)
        if info is not None and info.target is not TargetKind.PERSON:
            wrong.append(f"fallback.{source}: {target!r} is a {info.kind} channel, which "
                         "sends to areas")
    if wrong:
        raise ConfigError("policy: " + "; ".join(wrong))
    return sorted(named - set(channels))


async def _build_channels(
    settings: Settings, roles: frozenset[str], data: RegistryData, url: str, mqtt_url: str,
    accounts: BrokerAccounts | None, providers: str, clock: Clock,
) -> tuple[dict[str, Channel], Any]:
    """The configured channels, or the embedded default's (and its simulated world)."""
    if settings.channels or "worker" not in roles:
        return load_channels(settings.channels or DEFAULT_CHANNELS, base_url=url,
                             mqtt_url=mqtt_url), None
    # Embedded default: the real channels against the shipped provider simulators, so a
    # fresh `warnbus serve` works end to end (simulated officers confirm, speakers play).
    from channels.sim.officers import OfficerModel
    from warnbus.tools.simulation import start_providers

    world = await start_providers(
        providers, data, base_url=url, mqtt_url=mqtt_url, officers=OfficerModel(),
        time_factor=settings.engine.clock_factor, clock=clock.now,
        device_passwords=accounts.device_passwords if accounts else None)
    log.info("no channels configured: using the provider simulators", providers=providers)
    return dict(world.channels), world


async def _synced(clock: Clock | None, settings: Settings, redis: Redis) -> Clock:
    """`clock`, or the settings' (real, or compressed for the demo), on Redis's time: the
    offset of this process's clock to Redis's measured now (the engine measures it again)."""
    if clock is None:
        f = settings.engine.clock_factor
        clock = ScaledClock(f) if f != 1.0 else SystemClock()
    source = clock.source()
    if source is not None:
        await source.sync(redis)
    return clock


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class App:
    settings: Settings
    ctx: Context
    engine: Engine
    links: AckLinks
    tokens: tuple[TokenSettings, ...]
    mqtt_url: str
    api_token: str | None = None  # generated at start-up when none was configured
    started: list[services.ManagedService] = field(default_factory=list)
    world: Any = None  # the provider simulators, when no channel is configured

    async def close(self) -> None:
        await self.engine.stop()
        if self.ctx.journal is not None:
            self.ctx.journal.close()
        if self.world is not None:
            try:
                await asyncio.wait_for(self.world.stop(), 10.0)
            except Exception:  # includes the timeout
                log.warning("simulators did not stop cleanly")
        await self.ctx.redis.aclose()
        for svc in self.started:
            svc.stop()


async def build_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    roles: Iterable[str] = ROLES,
    channels: Mapping[str, Channel] | None = None,
    registry: Registry | None = None,
    base_url: str | None = None,
    providers: str = "twilio",
) -> App:
    """Wire everything; start embedded Redis/broker when no URL is configured.

    `providers`: the simulated provider set of the embedded default (no `[channels.*]`):
    `twilio`, or `cn` (Aliyun and Tencent Cloud; `warnbus.tools.cn_world`)."""
    if registry is None:
        registry = load_registry(settings.registry or default_registry_path())
    # Before any server is started: a token that could speak for others is a config error.
    check_credentials(settings, console_sender(settings, registry))
    started: list[services.ManagedService] = []
    data_dir = Path(settings.data_dir) if settings.data_dir else services.default_data_dir()
    redis_url, mqtt_url = settings.redis_url, settings.mqtt_url
    if not redis_url:
        svc = services.start_redis(data_dir / "redis", appendfsync=settings.redis_appendfsync)
        started.append(svc)
        redis_url = svc.url
        log.info("embedded redis started", service=svc.description)
    if registry is None:
        registry = load_registry(settings.registry or default_registry_path())
    accounts = None
    if not mqtt_url:
        # Not open to anonymous clients: the engine and each of the registry's speakers get
        # an account of their own, made afresh on every start; the ACL bounds each device.
        accounts = BrokerAccounts.generate(
            (d.id, d.region) for d in registry.data.devices.values())
        svc = services.start_mosquitto(data_dir / "mqtt", accounts=accounts)
        started.append(svc)
        mqtt_url = svc.url
        log.info("embedded broker started", service=svc.description)
    # A bounded pool that waits for a free connection: under a burst of webhooks and sends,
    # commands queue briefly instead of failing with "too many connections".
    pool = BlockingConnectionPool.from_url(
        redis_url, max_connections=settings.engine.redis_connections, timeout=60)
    redis = Redis(connection_pool=pool)
    clock = await _synced(clock, settings, redis)
    facade = RulesFacade(registry.data, settings)
    rules: Rules = facade
    # A change applied while running (console, CLI) is served from Redis, also after a restart.
    registry, rules, version, base = await live_registry.resolve(redis, registry, rules,
                                                                clock.now())
    secret = settings.ack_secret.reveal() if settings.ack_secret else ""
    if not secret:
        # One secret shared by every process of this deployment, kept in Redis.
        await redis.set(ACK_SECRET_KEY, secrets.token_hex(32), nx=True)
        raw = await redis.get(ACK_SECRET_KEY)
        secret = raw.decode() if isinstance(raw, bytes) else str(raw or "")
    srv = settings.server
    url = base_url or srv.public_url or f"http://{srv.host}:{srv.port}"
    links = AckLinks(secret.encode(), url, settings.ack_ttl_s)
    heartbeats = Heartbeats(redis, settings.engine.heartbeat_ttl_s)
    ctx = Context(
        redis=redis, registry=registry, rules=rules, clock=clock, settings=settings,
        store=Store(redis), lanes=Lanes(redis, (), heartbeats),
        timers=Timers(redis, heartbeats), duty=DutyDesk(redis),
    )
    ctx.registry_version, ctx.registry_base = version, base
    ctx.ack_url = lambda cid, pid: links.url(cid, pid, ctx.clock.now())
    eng = settings.engine
    # One file per process (a name no other process, nor a later run of this one, takes);
    # made only when Redis first fails to take a confirmation.
    ctx.journal = Journal(Path(eng.journal_dir) if eng.journal_dir else data_dir / "journal",
                          f"{consumer_name()}-{secrets.token_hex(3)}",
                          int(eng.journal_max_mb * 1024 * 1024))
    roles = frozenset(roles)
    if channels is not None:
        chans, world = dict(channels), None
    else:
        chans, world = await _build_channels(settings, roles, registry.data, url, mqtt_url,
                                             accounts, providers, clock)
    ctx.lanes.channels = tuple(chans)
    try:
        routes = dict(settings.routes or (world.routes if world is not None else {}))
        limits = dict(settings.limits or (world.limits if world is not None else {}))
        ctx.channels = RoutedChannels.build({name: ch.info for name, ch in chans.items()},
                                            routes, limits)
        missing = [m for m in check_channels(facade.policy, ctx.channels, facade.sites)
                   if m not in ctx.channels.routes]
        facade.routes = ctx.channels.routes
    except ConfigError:
        # Found only once the channels are built: leave nothing running behind the error.
        for ch in chans.values():
            await ch.aclose()
        if world is not None:
            await world.stop()
        await redis.aclose()
        for svc in started:
            svc.stop()
        raise
    if missing and chans:
        log.warning("the policy names channels that are not configured: nothing is sent "
                    "through them", channels=missing)
    engine = Engine(ctx, chans, roles)
    tokens = tuple(settings.tokens)
    api_token = None
    if settings.api_token:
        tokens += (TokenSettings("local", token_hash(settings.api_token.reveal()),
                                 roles=("feed", "officer", "admin"), senders=(ANY_SENDER,)),)
    else:
        api_token = secrets.token_urlsafe(24)
        tokens += (TokenSettings("generated", token_hash(api_token),
                                 roles=("feed", "officer", "admin"), senders=(ANY_SENDER,)),)
    return App(settings, ctx, engine, links, tokens, mqtt_url, api_token, started, world)
