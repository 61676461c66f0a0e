"""Build an engine on a real Redis with the test channel, and drive it step by step."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp.test_utils import TestClient, TestServer

from channels.testing import TestChannel, TestChannelConfig
from warnbus.domain.models import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    Reference,
    Scope,
    Severity,
    Status,
    Urgency,
)
from warnbus.plugin import Channel
from warnbus.registry import Registry
from warnbus.runtime.app import DEFAULT_MEDIA, App, build_app
from warnbus.runtime.clock import ManualClock
from warnbus.runtime.config import EngineSettings, Settings
from warnbus.web.api import make_web_app

CHANNELS = tuple(DEFAULT_MEDIA)  # the bundled policy's
T0 = datetime(2026, 7, 15, 5, 30, tzinfo=UTC)


@dataclass
class Harness:
    app: App
    clock: ManualClock
    channels: dict[str, TestChannel]
    campaign_id: str = ""

    @property
    def ctx(self):  # type: ignore[no-untyped-def]
        return self.app.ctx

    async def drain(self, rounds: int = 50) -> int:
        """Run inbox, lanes and due timers until nothing is left to do now."""
        eng = self.app.engine
        total = 0
        for _ in range(rounds):
            n = await eng.inbox_once()
            for name in self.channels:
                entries = await self.ctx.lanes.read(name, eng.consumer, 1000, 0)
                if entries:
                    await eng.dispatcher.process(name, entries)
                    n += len(entries)
            n += await eng.ticker.tick()
            total += n
            if n == 0:
                return total
        raise AssertionError("engine did not settle")

    def sent(self, channel: str | None = None) -> list:  # type: ignore[type-arg]
        out = []
        for name, ch in self.channels.items():
            if channel is None or name == channel:
                out += ch.sent
        return out


async def make_harness(redis_url: str, *, fail_perm: Mapping[str, Sequence[str]] | None = None,
                       fail_temp: Mapping[str, Sequence[str]] | None = None, policy: str = "",
                       start: float | None = None, hooks: Mapping[str, Channel] | None = None,
                       mqtt_url: str = "mqtt://127.0.0.1:9", registry: Registry | None = None,
                       sites: str = "", max_length: Mapping[str, int] | None = None,
                       **engine: float) -> Harness:
    """An engine on the test channels (which `drain` runs); `hooks`: more channels, whose
    provider webhooks the web app mounts, that no policy sends through; `mqtt_url`: the
    broker `/healthz` asks about (by default nothing listens there); `registry`: instead of
    the sample county; `sites`: the sites' rules and policy (rules/sites.toml by default);
    `max_length`: the characters a test channel declares it carries (as a real one of its
    medium does)."""
    clock = ManualClock(T0.timestamp() if start is None else start)
    settings = Settings(redis_url=redis_url, mqtt_url=mqtt_url, policy=policy, sites=sites,
                        engine=EngineSettings(**engine))  # type: ignore[arg-type]
    channels = {
        name: TestChannel(name, TestChannelConfig(
            medium=medium, fail_perm=tuple((fail_perm or {}).get(name, ())),
            fail_temp=tuple((fail_temp or {}).get(name, ())),
            max_length=(max_length or {}).get(name)))
        for name, medium in DEFAULT_MEDIA.items()
    }
    app = await build_app(settings, clock=clock, channels={**channels, **(hooks or {})},
                          base_url="http://test", registry=registry)
    await app.engine.setup()
    return Harness(app, clock, channels)


def cap_alert(
    identifier: str = "43062304100000_20260715053000_1",
    *,
    msg_type: MsgType = MsgType.ALERT,
    codes: Sequence[str] = ("430623101000", "430623102000"),
    severity: Severity = Severity.EXTREME,
    level_zh: str = "红色",
    references: Sequence[Reference] = (),
    sent: datetime = T0,
    status: Status = Status.ACTUAL,
    hours: int = 12,
    polygon: tuple[tuple[float, float], ...] | None = None,
) -> Alert:
    area = Area(
        desc="、".join(codes) or "polygon",
        geocodes=tuple(("TOWNSHIP", c) for c in codes),
        polygons=(polygon,) if polygon else (),
    )
    info = Info(
        categories=(Category.MET,), event="暴雨", urgency=Urgency.IMMEDIATE, severity=severity,
        certainty=Certainty.LIKELY, language="zh-CN", effective=sent,
        expires=sent + timedelta(hours=hours), sender_name="华容县气象台",
        headline=f"华容县气象台发布暴雨{level_zh}预警信号",
        description="预计未来3小时降雨量将达100毫米以上。",
        instruction="危险区域人员立即转移。", parameters=(("level", level_zh),), areas=(area,),
    )
    return Alert(identifier=identifier, sender="430623@qx.example.cn", sent=sent, status=status,
                 msg_type=msg_type, scope=Scope.PUBLIC, references=tuple(references),
                 infos=(info,))


@contextlib.asynccontextmanager
async def web_client(h: Harness) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    """The HTTP API (with the console) of `h` on a test server; closes both afterwards."""
    client = TestClient(TestServer(make_web_app(h.app)))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()
        await h.app.close()
