"""The provider simulators wired to the real channels: the demo's (and a test's) world.

The same channel code that talks to Twilio, WeCom and an MQTT broker in production talks here
to the simulators shipped in `channels/sim/`, with simulated officers who answer, press 1,
reply, ignore or are unreachable, and simulated loudspeakers that play and report.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from channels.sim.officers import OfficerModel
from channels.sim.speakers import SpeakerFleet
from channels.sim.twilio_sim import TwilioSimulator
from channels.sim.wecom_sim import WeComSimulator
from warnbus.domain.models import RegistryData
from warnbus.plugin import Channel
from warnbus.runtime.app import load_channels

ACCOUNT_SID = "AC" + "0" * 30 + "de"
CORP_ID = "wwdemo0000000001"


@dataclass
class SimulatedWorld:
    twilio: TwilioSimulator
    wecom: WeComSimulator
    speakers: SpeakerFleet
    channels: dict[str, Channel]
    configs: dict[str, dict[str, Any]] = field(default_factory=dict)

    async def stop(self) -> None:
        await self.speakers.stop()
        await self.twilio.stop()
        await self.wecom.stop()


async def start_world(
    registry: RegistryData, *, base_url: str, mqtt_url: str, officers: OfficerModel,
    speaker_fail_rate: float = 0.02, offline_speakers: int = 2, time_factor: float = 1.0,
    device_passwords: Mapping[str, str] | None = None,
) -> SimulatedWorld:
    """Start the simulators and build the real channels pointed at them.

    `mqtt_url` carries the engine's broker account, if any; each simulated speaker logs in
    with its own (`device_passwords`, user name = device id; else the URL's). The channel
    signs commands with a key made here, which the simulated speakers verify.

    Provider rate limits are real-time; on a clock compressed `time_factor` times they are
    scaled by the same factor, so the campaign sees the limits it would see in real time.
    """
    auth_token = secrets.token_hex(16)
    command_key = secrets.token_urlsafe(32)
    corp_secret, cb_token = secrets.token_hex(16), secrets.token_hex(8)
    aes_key = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    twilio = TwilioSimulator(ACCOUNT_SID, auth_token, officers,
                             inbound_sms_url=f"{base_url}/hooks/sms/inbound")
    twilio_url = await twilio.start()
    wecom = WeComSimulator(CORP_ID, corp_secret, cb_token, aes_key, officers,
                           callback_url=f"{base_url}/hooks/wecom/callback", agent_id=1000002)
    wecom_url = await wecom.start()
    twilio_cfg = {"account_sid": ACCOUNT_SID, "auth_token": auth_token,
                  "from_number": "+8673012110", "api_base": twilio_url}
    configs: dict[str, dict[str, Any]] = {
        # A county account with a short code: far above one long code's 1 message/s.
        "voice": {"type": "twilio-voice", "rate_per_s": 100.0 * time_factor, **twilio_cfg},
        "sms": {"type": "twilio-sms", "rate_per_s": 100.0 * time_factor, **twilio_cfg},
        "wecom": {"type": "wecom", "corp_id": CORP_ID, "corp_secret": corp_secret,
                  "agent_id": 1000002, "token": cb_token, "encoding_aes_key": aes_key,
                  "api_base": wecom_url, "rate_per_s": 40.0 * time_factor},
        "loudspeaker": {"type": "mqtt-loudspeaker", "command_key": command_key},
    }
    channels = load_channels(configs, base_url=base_url, mqtt_url=mqtt_url)
    devices = sorted((d.id, d.region) for d in registry.devices.values())
    offline = [d for d, _ in devices[:: max(1, len(devices) // max(offline_speakers, 1))]][
        :offline_speakers]
    speakers = SpeakerFleet(mqtt_url, devices, fail_rate=speaker_fail_rate, offline=offline,
                            seed=officers.seed, command_key=command_key,
                            passwords=device_passwords)
    await speakers.start()
    return SimulatedWorld(twilio, wecom, speakers, channels, configs)
