"""deploy/warnbus.toml, the mainland configuration, builds its channels with secrets from the
environment: Aliyun voice + Tencent SMS + WeCom + speakers, templates and limits checked."""

from __future__ import annotations

from pathlib import Path

from warnbus.flow.routes import RoutedChannels
from warnbus.runtime.app import load_channels
from warnbus.runtime.config import load_settings
from warnbus.state.numberlimits import PRESETS

ENV = {
    "WARNBUS_CHANNELS__VOICE__ACCESS_KEY_SECRET": "aliyun-secret-from-env",
    "WARNBUS_CHANNELS__VOICE__HOOK_SECRET": "voice-hook-0123456789",
    "WARNBUS_CHANNELS__SMS__SECRET_KEY": "tencent-secret-from-env",
    "WARNBUS_CHANNELS__SMS__HOOK_SECRET": "sms-hook-0123456789ab",
    "WARNBUS_CHANNELS__WECOM__CORP_SECRET": "wecom-secret-from-env",
    "WARNBUS_CHANNELS__WECOM__TOKEN": "wecomtoken",
    "WARNBUS_CHANNELS__WECOM__ENCODING_AES_KEY": "a" * 43,
    "WARNBUS_CHANNELS__LOUDSPEAKER__COMMAND_KEY": "k" * 40,
}


async def test_the_mainland_example_builds_its_channels(repo_root: Path) -> None:
    settings = load_settings(repo_root / "deploy" / "warnbus.toml", env=ENV)
    text = (repo_root / "deploy" / "warnbus.toml").read_text()
    assert not any(v in text for v in ENV.values()), "no secret in the file"
    channels = load_channels(settings.channels, base_url="https://warnbus.example.gov.cn",
                             mqtt_url="mqtt://warnbus:pw@127.0.0.1:1883")
    try:
        kinds = {n: c.info.kind for n, c in channels.items()}
        assert kinds == {"voice": "aliyun-voice", "sms": "tencent-sms", "wecom": "wecom",
                         "loudspeaker": "mqtt-loudspeaker"}
        routed = RoutedChannels.build({n: c.info for n, c in channels.items()},
                                      settings.routes, settings.limits)
        voice, sms = routed.account("voice"), routed.account("sms")
        assert voice is not None and voice.limits == PRESETS["aliyun-voice"]
        assert sms is not None and sms.limits == PRESETS["tencent-sms"]
    finally:
        for c in channels.values():
            await c.aclose()
