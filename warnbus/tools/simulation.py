"""The provider simulators wired to the real channels: the demo's (and a test's) world.

The same channel code that talks to Twilio, WeCom, Aliyun, Tencent Cloud and an MQTT broker in
production talks here to the simulators shipped in `channels/sim/`, with simulated officers
who answer, press 1, reply, ignore or are unreachable, and simulated loudspeakers that play
and report. Two provider sets (`PROVIDERS`): `twilio` (Twilio voice and SMS) and `cn`
(`warnbus.tools.cn_world`: Aliyun and Tencent Cloud voice, Tencent SMS); both add WeCom and
the loudspeakers.
"""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from channels.sim.officers import OfficerModel
from channels.sim.speakers import SpeakerFleet
from channels.sim.twilio_sim import TwilioSimulator
from channels.sim.wecom_sim import WeComSimulator
from warnbus.domain.models import RegistryData
from warnbus.plugin import Channel
from warnbus.runtime.app import load_channels
from warnbus.runtime.config import LimitSettings

ACCOUNT_SID = "AC" + "0" * 30 + "de"
CORP_ID = "wwdemo0000000001"
#: The provider sets a simulated world (and `warnbus demo/serve --providers`) can run.
PROVIDERS = ("twilio", "cn")


class Stoppable(Protocol):
    async def stop(self) -> None: ...

    async def wait_idle(self, within_s: float = 5.0) -> None:
        """Wait until every callback it scheduled has been made (or `within_s` passed)."""
        ...


@dataclass(kw_only=True)
class ProviderWorld:
    """Simulators, the real channels pointed at them, and what the engine should know of
    them: the routes over the channels and the accounts' per-number limits (empty: the
    providers' defaults by channel type)."""

    wecom: WeComSimulator
    speakers: SpeakerFleet
    channels: dict[str, Channel]
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    routes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    limits: dict[str, LimitSettings] = field(default_factory=dict)
    servers: list[Stoppable] = field(default_factory=list)  # the providers' simulators
    description: str = ""

    async def stop(self) -> None:
        await self.speakers.stop()
        for server in self.servers:
            await server.stop()
        await self.wecom.stop()


@dataclass(kw_only=True)
class SimulatedWorld(ProviderWorld):
    """The Twilio world: voice and SMS through the Twilio simulator."""

    twilio: TwilioSimulator


@dataclass(frozen=True)
class Common:
    """What every world's WeCom and loudspeakers share (`start_common`)."""

    wecom: WeComSimulator
    configs: dict[str, dict[str, Any]]
    command_key: str


async def start_common(base_url: str, officers: OfficerModel, time_factor: float,
                       clock: Callable[[], float] = time.time) -> Common:
    """The WeCom simulator, and the WeCom and loudspeaker channels' configurations; `clock`:
    the time the simulator's records carry (the engine's)."""
    command_key = secrets.token_urlsafe(32)
    corp_secret, cb_token = secrets.token_hex(16), secrets.token_hex(8)
    aes_key = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    wecom = WeComSimulator(CORP_ID, corp_secret, cb_token, aes_key, officers,
                           callback_url=f"{base_url}/hooks/wecom/callback", agent_id=1000002,
                           clock=clock)
    wecom_url = await wecom.start()
    configs: dict[str, dict[str, Any]] = {
        "wecom": {"type": "wecom", "corp_id": CORP_ID, "corp_secret": corp_secret,
                  "agent_id": 1000002, "token": cb_token, "encoding_aes_key": aes_key,
                  "api_base": wecom_url, "rate_per_s": 40.0 * time_factor},
        "loudspeaker": {"type": "mqtt-loudspeaker", "command_key": command_key},
    }
    return Common(wecom, configs, command_key)


async def start_speakers(
    registry: RegistryData, mqtt_url: str, officers: OfficerModel, command_key: str, *,
    fail_rate: float, offline: int, passwords: Mapping[str, str] | None,
) -> SpeakerFleet:
    devices = sorted((d.id, d.region) for d in registry.devices.values())
    dark = [d for d, _ in devices[:: max(1, len(devices) // max(offline, 1))]][:offline]
    speakers = SpeakerFleet(mqtt_url, devices, fail_rate=fail_rate, offline=dark,
                            seed=officers.seed, command_key=command_key, passwords=passwords)
    await speakers.start()
    return speakers


async def start_world(
    registry: RegistryData, *, base_url: str, mqtt_url: str, officers: OfficerModel,
    speaker_fail_rate: float = 0.02, offline_speakers: int = 2, time_factor: float = 1.0,
    device_passwords: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> SimulatedWorld:
    """Start the simulators and build the real channels pointed at them (the Twilio set).

    `mqtt_url` carries the engine's broker account, if any; each simulated speaker logs in
    with its own (`device_passwords`, user name = device id; else the URL's). The channel
    signs commands with a key made here, which the simulated speakers verify.

    `clock` is the time the simulators' records carry (the engine's). Provider rate limits
    are real-time; on a clock compressed `time_factor` times they are
    scaled by the same factor, so the campaign sees the limits it would see in real time.
    """
    common = await start_common(base_url, officers, time_factor, clock)
    auth_token = secrets.token_hex(16)
    twilio = TwilioSimulator(ACCOUNT_SID, auth_token, officers,
                             inbound_sms_url=f"{base_url}/hooks/sms/inbound", clock=clock)
    twilio_url = await twilio.start()
    twilio_cfg = {"account_sid": ACCOUNT_SID, "auth_token": auth_token,
                  "from_number": "+8673012110", "api_base": twilio_url}
    configs: dict[str, dict[str, Any]] = {
        # A county account with a short code: far above one long code's 1 message/s.
        "voice": {"type": "twilio-voice", "rate_per_s": 100.0 * time_factor, **twilio_cfg},
        "sms": {"type": "twilio-sms", "rate_per_s": 100.0 * time_factor, **twilio_cfg},
        **common.configs,
    }
    channels = load_channels(configs, base_url=base_url, mqtt_url=mqtt_url)
    speakers = await start_speakers(registry, mqtt_url, officers, common.command_key,
                                    fail_rate=speaker_fail_rate, offline=offline_speakers,
                                    passwords=device_passwords)
    return SimulatedWorld(twilio=twilio, wecom=common.wecom, speakers=speakers,
                          channels=channels, configs=configs, servers=[twilio],
                          description=f"Twilio {twilio_url} · WeCom "
                                      f"{common.configs['wecom']['api_base']}")


async def start_providers(
    providers: str, registry: RegistryData, *, base_url: str, mqtt_url: str,
    officers: OfficerModel, time_factor: float = 1.0,
    device_passwords: Mapping[str, str] | None = None,
    clock: Callable[[], float] = time.time,
) -> ProviderWorld:
    """The world of a provider set (`PROVIDERS`); `clock` is the engine's: the mainland
    simulators count their per-number limits, days and nights on it, as the engine does."""
    if providers == "twilio":
        return await start_world(registry, base_url=base_url, mqtt_url=mqtt_url,
                                 officers=officers, time_factor=time_factor,
                                 device_passwords=device_passwords, clock=clock)
    if providers == "cn":
        from warnbus.tools.cn_world import start_cn_world

        return await start_cn_world(registry, base_url=base_url, mqtt_url=mqtt_url,
                                    officers=officers, time_factor=time_factor,
                                    device_passwords=device_passwords, clock=clock)
    raise ValueError(f"providers: {providers!r} is not one of {', '.join(PROVIDERS)}")
