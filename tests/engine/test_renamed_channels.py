"""A deployment names its channels as it likes: what each one is comes from its type.

`[channels.wx] type = "wecom"`, `[channels.tel] type = "twilio-voice"`, `[channels.txt] type =
"twilio-sms"` and `[channels.bc] type = "mqtt-loudspeaker"`, with a policy that names them,
loaded as `warnbus serve` loads them, against the provider simulators and a real broker:
WeCom ids go to wx, phones to tel and txt, area commands to bc, each with the texts of its
medium; replies are matched, and the console prices the preview, by the same declaration.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt

from channels.sim.officers import OfficerModel
from channels.sim.twilio_sim import TwilioSimulator
from channels.sim.wecom_sim import WeComSimulator
from rules.hazards import HazardTable
from rules.templates import Templates
from tests.engine.helpers import Harness, cap_alert
from tests.waits import until
from warnbus.domain.models import AckVia, DeliveryKind, Level, Person, Role, TargetKind
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.flow.planner import PlanContext, plan_areas, plan_persons
from warnbus.plugin import MEDIUM_ADDRESS, ChannelInfo, Medium
from warnbus.runtime.app import build_app
from warnbus.runtime.clock import ManualClock
from warnbus.runtime.config import Settings
from warnbus.web.console.base import ConsoleSettings
from warnbus.web.console.preview import preview

TOWN = "430623101000"
SID = "AC" + "5" * 32
CORP = "wwrenamed00000001"
NOBODY = OfficerModel(responsive=0.0, per_message=0.0, unreachable=0.0, delay_s=(0.01, 0.02))
POLICY = """
[levels.red]
channels = ["tel", "txt", "wx"]
device_channels = ["bc"]
ack_deadline_s = 180
redials = 1
redial_window_s = 120
redial_channels = ["tel"]
cancel_channels = ["txt", "wx"]
speaker_deadline_s = 180

[levels.orange]
channels = ["tel", "txt"]

[levels.yellow]
channels = ["txt"]

[levels.blue]
channels = ["wx"]

[fallback]
wx = "txt"
"""


async def test_channels_get_what_their_type_takes_whatever_the_deployment_calls_them(
    redis_url: str, mqtt_url: str, unique_topic: Callable[[str], str], tmp_path: Path,
) -> None:
    auth, corp_secret, cb_token = secrets.token_hex(16), secrets.token_hex(16), "renamedtoken"
    aes = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    twilio = TwilioSimulator(SID, auth, NOBODY)
    wecom = WeComSimulator(CORP, corp_secret, cb_token, aes, NOBODY, agent_id=1000002)
    tw = {"account_sid": SID, "auth_token": auth, "from_number": "+8673012110",
          "api_base": await twilio.start(), "rate_per_s": 1000.0}
    prefix = unique_topic("wb/v1")
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY, encoding="utf-8")
    settings = Settings(redis_url=redis_url, mqtt_url=mqtt_url, policy=str(policy), channels={
        "wx": {"type": "wecom", "corp_id": CORP, "corp_secret": corp_secret,
               "agent_id": 1000002, "token": cb_token, "encoding_aes_key": aes,
               "api_base": await wecom.start(), "rate_per_s": 1000.0},
        "tel": {"type": "twilio-voice", **tw},
        "txt": {"type": "twilio-sms", **tw},
        "bc": {"type": "mqtt-loudspeaker", "command_key": secrets.token_urlsafe(32),
               "topic_prefix": prefix, "connect_wait_s": 5.0},
    })
    now = time.time()
    app = await build_app(settings, clock=ManualClock(now), base_url="http://127.0.0.1:9")
    broker = urlsplit(mqtt_url)
    commands: set[str] = set()
    try:
        await app.engine.setup()
        h = Harness(app, app.ctx.clock, app.engine.channels)  # type: ignore[arg-type]
        async with aiomqtt.Client(broker.hostname or "", broker.port or 1883,
                                  protocol=aiomqtt.ProtocolVersion.V5) as sub:
            await sub.subscribe(f"{prefix}/area/+/cmd", qos=1)

            async def listen() -> None:
                async for m in sub.messages:
                    commands.add(str(m.topic))

            listener = asyncio.create_task(listen())
            alert = cap_alert(codes=(TOWN,), sent=datetime.fromtimestamp(now, UTC))
            res = await accept(h.ctx, alert, ENGINE)
            await h.drain()
            data = h.ctx.registry.data
            villages = {g.village for g in data.grids.values() if g.village.startswith(TOWN[:9])}
            expected = {f"{prefix}/area/{v}/cmd" for v in villages}
            await until(lambda: commands >= expected, "a command on every village's area topic",
                             within=10.0)
            listener.cancel()
        assert villages and commands == expected  # one per area, not per device, nothing else

        targets = await h.ctx.store.targets(res.campaign_id)
        people: list[Person] = [data.persons[t] for t, v in targets.items()
                                if v.kind is TargetKind.PERSON]
        phones = {p.phone for p in people if p.phone}
        wecom_ids = {p.wecom for p in people if p.wecom}
        assert len(phones) > 10 and len(wecom_ids) > 10
        # WeCom ids to the WeCom channel, phones to the phone channels, never one for the other.
        assert {m.touser for m in wecom.sent} == wecom_ids
        assert {c.to for c in twilio.calls} == phones == {m.to for m in twilio.messages}
        # Each with the texts of its medium: a call asks for the key and reads no link; an SMS
        # asks for a reply and carries the ack link.
        for call in twilio.calls:
            script = call.get("Twiml") or ""
            assert "确认收到请按1" in script and "/ack/" not in script
        for sms in twilio.messages:
            body = sms.get("Body") or ""
            assert "回复1确认收到" in body and "/ack/" in body

        # A reply matched by its address: the channel's declaration says what the address is.
        wx_person = next(p for p in people if p.wecom)
        assert wx_person.wecom is not None
        got = await app.engine.sink.confirm_from("wx", wx_person.wecom, AckVia.WECOM, "wx-1")
        assert got == [res.campaign_id]
        txt_person = next(p for p in people if p.phone and p.id != wx_person.id)
        assert txt_person.phone is not None
        got = await app.engine.sink.confirm_from("txt", txt_person.phone, AckVia.SMS, "sm-1")
        assert got == [res.campaign_id]
        # An area channel's "address" is nobody's.
        assert await app.engine.sink.confirm_from("bc", sorted(villages)[0], AckVia.SMS) == []

        # The console prices the first wave by medium: calls on tel, SMS on txt.
        shown = preview(h.ctx, alert, ConsoleSettings())
        assert set(shown["per_channel"]) == {"tel", "txt", "wx", "bc"}
        assert shown["voice_minutes"] >= len(phones) and shown["sms_segments"] >= len(phones)
        assert shown["cost"] > 0
    finally:
        await app.close()
        await twilio.stop()
        await wecom.stop()


def test_a_channel_called_like_another_medium_is_planned_as_what_it_is() -> None:
    """Pure planner: an SMS channel a deployment called "voice", a call channel called "sms",
    a WeCom channel called "loudspeaker"."""
    def info(medium: Medium) -> ChannelInfo:
        return ChannelInfo(kind="test", provider="test", medium=medium,
                           address=MEDIUM_ADDRESS[medium], breaker_key="test:x")

    alert = cap_alert(codes=(TOWN,))
    ctx = PlanContext(campaign_id="cp_x", alert=alert, info=alert.primary_info(),
                      level=Level.RED, area="三封寺镇", now=0.0,
                      renderer=Templates.load(hazards=HazardTable.load()),
                      channels={"voice": info(Medium.SMS), "sms": info(Medium.VOICE),
                                "loudspeaker": info(Medium.WECOM)},
                      ack_url=lambda pid: f"http://x/ack/{pid}")
    person = Person(id="p1", name="张三", role=Role.PRIMARY, region=TOWN,
                    phone="+8613812345678", wecom="u1")
    got = {d.channel: d for d in plan_persons(ctx, [person], ["voice", "sms", "loudspeaker",
                                                              "gone"], 0, DeliveryKind.WARNING)}
    assert set(got) == {"voice", "sms", "loudspeaker"}  # "gone" is configured nowhere
    assert got["voice"].address == got["sms"].address == "+8613812345678"
    assert "回复1确认收到" in got["voice"].text and "http://x/ack/p1" in got["voice"].text
    assert "确认收到请按1" in got["sms"].text and "/ack/" not in got["sms"].text
    assert got["loudspeaker"].address == "u1"
    assert all(d.target_kind is TargetKind.PERSON for d in got.values())
    # Not a channel to areas: no area command goes to it.
    assert plan_areas(ctx, ["430623101001"], "loudspeaker", DeliveryKind.WARNING) == []
