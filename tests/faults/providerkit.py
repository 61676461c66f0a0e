"""Provider simulators with an outage switch, and an in-process engine on the real channels.

The shipped simulators fail per address (`failures`, `failing_users`); a provider outage
fails everything for a while. The subclasses below add that, and count the requests, so a
test can prove the engine does not hammer a provider that is down.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from channels.sim.officers import OfficerModel
from channels.sim.twilio_sim import SimRecord, TwilioSimulator
from channels.sim.wecom_sim import WeComSimulator
from channels.testing import TestChannel, TestChannelConfig
from channels.twilio_sms import TwilioSms
from channels.twilio_voice import TwilioVoice
from channels.wecom import WeCom
from tests.engine.helpers import T0, Harness
from warnbus.flow.breaker import BreakerPolicy, Breakers
from warnbus.plugin import Medium
from warnbus.runtime.app import build_app
from warnbus.runtime.clock import ManualClock
from warnbus.runtime.config import EngineSettings, Settings

SID = "AC" + "1" * 32
NOBODY = OfficerModel(responsive=0.0, per_message=0.0, unreachable=0.0, delay_s=(0.01, 0.02))
HANG_S = 1.0  # a "timeout" outage holds the request this long; channels give up before


class Outage:
    """What a provider answers now: "up", "500", "429" or "timeout"; and how often it was asked."""

    def __init__(self) -> None:
        self.mode = "up"
        self.requests = 0
        self.by_mode: dict[str, int] = {}

    async def answer(self) -> web.Response | None:
        """The outage's reply, or None to serve the request normally."""
        self.requests += 1
        self.by_mode[self.mode] = self.by_mode.get(self.mode, 0) + 1
        if self.mode == "500":
            return web.json_response({"code": 20500, "message": "Internal Server Error",
                                      "status": 500}, status=500)
        if self.mode == "429":
            return web.json_response({"code": 20429, "message": "Too Many Requests",
                                      "status": 429}, status=429, headers={"Retry-After": "1"})
        if self.mode == "timeout":
            await asyncio.sleep(HANG_S)
            return web.json_response({"errcode": -1, "errmsg": "system busy"}, status=504)
        return None


class FlakyTwilio(TwilioSimulator):
    """The Twilio simulator behind an `Outage` switch (both Messages and Calls)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outage = Outage()

    async def _create(self, request: web.Request, prefix: str,
                      life: Any) -> web.Response:
        failed = await self.outage.answer()
        if failed is not None:
            return failed
        return await super()._create(request, prefix, life)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        coro.close()  # no status callbacks: nobody listens in these tests


class FlakyWeCom(WeComSimulator):
    """The WeCom simulator behind an `Outage` switch (message/send only; tokens still work)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.outage = Outage()

    async def _send(self, request: web.Request) -> web.Response:
        failed = await self.outage.answer()
        if failed is not None:
            # WeCom says "busy" with errcode -1 in a 200; a 5xx from its gateway is also seen.
            if self.outage.mode == "500":
                return web.Response(status=502, text="<html>bad gateway</html>")
            return failed
        return await super()._send(request)


@dataclass
class World:
    h: Harness
    twilio: FlakyTwilio
    wecom: FlakyWeCom

    def phones_reached(self) -> set[str]:
        return {r.to for r in self.twilio.messages} | {r.to for r in self.twilio.calls}

    def sms_to(self) -> set[str]:
        return {r.to for r in self.twilio.messages}

    def wecom_to(self) -> set[str]:
        return {m.touser for m in self.wecom.sent}

    async def close(self) -> None:
        await self.h.app.close()
        await self.twilio.stop()
        await self.wecom.stop()


async def start_world(redis_url: str, *, policy: BreakerPolicy | None = None,
                      timeout_s: float = 10.0, **engine: Any) -> World:
    """An engine (ManualClock) on real Twilio and WeCom channels against flaky simulators.

    `timeout_s`: the channels' request timeout, the shipped one by default: a loaded
    machine's simulator may take longer than a short one to answer, and a send that timed
    out waits for a retry timer that a test may never advance. A test of a "timeout"
    outage (hanging HANG_S) passes a shorter one.
    """
    auth = secrets.token_hex(16)
    corp_secret, cb_token = secrets.token_hex(16), secrets.token_hex(8)
    aes = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    twilio = FlakyTwilio(SID, auth, NOBODY)
    t_url = await twilio.start()
    wecom = FlakyWeCom("wwfault0000000001", corp_secret, cb_token, aes, NOBODY, agent_id=1000002)
    w_url = await wecom.start()
    hooks = "http://127.0.0.1:9/hooks"
    tw = {"account_sid": SID, "auth_token": auth, "from_number": "+8673012110",
          "api_base": t_url, "timeout_s": timeout_s, "rate_per_s": 1000.0}
    channels = {
        "voice": TwilioVoice.from_config("voice", {"type": "twilio-voice",
                                                   "callback_url": f"{hooks}/voice", **tw}),
        "sms": TwilioSms.from_config("sms", {"type": "twilio-sms",
                                             "callback_url": f"{hooks}/sms", **tw}),
        "wecom": WeCom.from_config("wecom", {
            "type": "wecom", "corp_id": "wwfault0000000001", "corp_secret": corp_secret,
            "agent_id": 1000002, "token": cb_token, "encoding_aes_key": aes, "api_base": w_url,
            "timeout_s": timeout_s, "rate_per_s": 1000.0, "callback_url": f"{hooks}/wecom"}),
        "loudspeaker": TestChannel("loudspeaker", TestChannelConfig(medium=Medium.LOUDSPEAKER)),
    }
    clock = ManualClock(T0.timestamp())
    settings = Settings(redis_url=redis_url, mqtt_url="mqtt://127.0.0.1:9",
                        engine=EngineSettings(**engine))
    app = await build_app(settings, clock=clock, channels=channels, base_url="http://test")
    await app.engine.setup()
    app.engine.dispatcher.breakers = Breakers(clock.now, policy)
    h = Harness(app, clock, {})  # type: ignore[arg-type]
    h.channels = channels  # type: ignore[assignment]
    return World(h, twilio, wecom)


__all__ = ["FlakyTwilio", "FlakyWeCom", "Outage", "SimRecord", "World", "start_world"]
