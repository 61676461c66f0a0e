"""The channel contract (`warnbus.plugin`): what a channel imports, what it declares, how the
composition root loads it and checks the policy against it."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from channels.twilio_voice import TwilioVoiceConfig
from tests.channels_aliyun.aliyun_kit import sms_config as aliyun_sms
from tests.channels_aliyun.aliyun_kit import voice_config as aliyun_voice
from tests.channels_tencent.tencent_kit import config as tencent
from tests.channels_wecom.wecom_kit import channel_config as wecom
from warnbus.domain.models import TargetKind
from warnbus.errors import ConfigError
from warnbus.plugin import (
    Address,
    Channel,
    ChannelInfo,
    Medium,
    Secret,
    load_config,
    secret_fields_of,
)
from warnbus.runtime.app import check_channels, load_channels
from warnbus.runtime.config import load_settings
from warnbus.runtime.services import free_port
from warnbus.tools.simulation import ACCOUNT_SID

ROOT = Path(__file__).resolve().parents[1]
SID = ACCOUNT_SID
TOKEN = "twilio-token-0123456789abcdef"
KEY = "command-key-0123456789abcdef0123456789"
TWILIO = {"account_sid": SID, "auth_token": TOKEN, "from_number": "+8673012110",
          "api_base": "http://127.0.0.1:1"}


def _sources(*dirs: str) -> Iterator[Path]:
    for d in dirs:
        yield from sorted((ROOT / d).rglob("*.py"))


def _engine_imports(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, module) of every import of a warnbus module, at any depth (in functions too)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from warnbus import plugin` imports warnbus.plugin
            names = ([f"warnbus.{a.name}" for a in node.names] if node.module == "warnbus"
                     else [node.module])
        else:
            continue
        for name in names:
            if name == "warnbus" or name.startswith("warnbus."):
                yield node.lineno, name


def test_channels_import_nothing_of_warnbus_but_the_plugin() -> None:
    """The dependency rule, checked on the source: a channel (simulators included) imports
    from warnbus only `warnbus.plugin`."""
    files = list(_sources("channels"))
    assert len(files) > 20
    wrong, plugin_users = [], 0
    for path in files:
        for line, module in _engine_imports(ast.parse(path.read_text(encoding="utf-8"))):
            if module == "warnbus.plugin":
                plugin_users += 1
            else:
                wrong.append(f"{path.relative_to(ROOT)}:{line}: {module}")
    assert not wrong, "channels import the engine:\n" + "\n".join(wrong)
    assert plugin_users > 15  # the check looks at real imports


def test_one_secret_class_and_one_config_loader() -> None:
    """`Secret` is defined once (the plugin's), and channels load their configuration only
    through `plugin.load_config`: none converts with a dec_hook or has a loader of its own."""
    secrets, loaders = [], []
    for path in _sources("warnbus", "channels", "rules"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.name == "Secret":
                secrets.append(where)
            if where.startswith("channels/"):
                if isinstance(node, ast.FunctionDef) and node.name in (
                        "load_config", "load_strict", "_dec_hook", "_secret_hook"):
                    loaders.append(f"{where}: def {node.name}")
                if isinstance(node, ast.keyword) and node.arg == "dec_hook":
                    loaders.append(f"{where}:{node.value.lineno}: dec_hook=")
    assert secrets == ["warnbus/plugin.py"]
    assert not loaders, loaders


# --------------------------------------------------------------------------- every channel type


def _raw(kind: str) -> dict[str, Any]:
    """A valid configuration of each shipped channel type."""
    return {
        "test": {"type": "test", "medium": "sms"},
        "twilio-sms": {"type": "twilio-sms", **TWILIO},
        "twilio-voice": {"type": "twilio-voice", **TWILIO},
        "wecom": wecom("http://127.0.0.1:1"),
        "mqtt-loudspeaker": {"type": "mqtt-loudspeaker", "command_key": KEY,
                             "password": "broker-password-42"},
        "aliyun-sms": aliyun_sms("127.0.0.1:1", ""),
        "aliyun-voice": aliyun_voice("127.0.0.1:1", ""),
        "tencent-sms": tencent("sms", "127.0.0.1:1", ""),
        "tencent-voice": tencent("voice", "127.0.0.1:1", ""),
    }[kind]


WHAT = {  # kind -> (provider, medium, address)
    "test": ("test", Medium.SMS, Address.PHONE),
    "twilio-sms": ("twilio", Medium.SMS, Address.PHONE),
    "twilio-voice": ("twilio", Medium.VOICE, Address.PHONE),
    "wecom": ("wecom", Medium.WECOM, Address.WECOM),
    "mqtt-loudspeaker": ("mqtt", Medium.LOUDSPEAKER, Address.AREA),
    "aliyun-sms": ("aliyun", Medium.SMS, Address.PHONE),
    "aliyun-voice": ("aliyun", Medium.VOICE, Address.PHONE),
    "tencent-sms": ("tencent", Medium.SMS, Address.PHONE),
    "tencent-voice": ("tencent", Medium.VOICE, Address.PHONE),
}


@pytest.mark.parametrize("kind", sorted(WHAT))
async def test_every_channel_type_declares_what_it_is_from_its_configuration(kind: str) -> None:
    raw = _raw(kind)
    name = "x" + kind.replace("-", "")  # nothing is read from the name
    chans = load_channels({name: {**raw, "rate_per_s": "7.5", "breaker_key": "acct-1"},
                           "plain": raw}, base_url="http://h", mqtt_url="mqtt://127.0.0.1:9")
    try:
        ch, plain = chans[name], chans["plain"]
        assert isinstance(ch, Channel)
        info = ch.info
        provider, medium, address = WHAT[kind]
        assert (info.kind, info.provider, info.medium, info.address) == (
            kind, provider, medium, address)
        assert info.target is (TargetKind.DEVICE if address is Address.AREA
                               else TargetKind.PERSON)
        # Rate and breaker key come from the configuration (an environment string too).
        assert (info.rate_per_s, info.breaker_key) == (7.5, "acct-1")
        # By default the breaker is the provider account's, not the channel's name (the test
        # channel has no account: each is its own).
        assert plain.info.breaker_key.startswith(f"{provider}:")
        assert ("plain" in plain.info.breaker_key) is (kind == "test")
        assert info.max_length is None or info.max_length > 0
        # The secret fields declared are those of the model, and none shows in a repr.
        config = ch.config  # type: ignore[attr-defined]
        assert info.secret_fields == secret_fields_of(type(config))
        for field in info.secret_fields:
            value = getattr(config, field)
            assert isinstance(value, Secret)
            assert not value or value.reveal() not in repr(config)
    finally:
        for c in chans.values():
            await c.aclose()


async def test_one_account_shares_a_breaker_where_it_shares_an_endpoint() -> None:
    chans = load_channels({
        "a": {"type": "twilio-sms", **TWILIO}, "b": {"type": "twilio-voice", **TWILIO},
        "c": {**_raw("aliyun-sms"), "endpoint": ""}, "d": {**_raw("aliyun-voice"), "endpoint": ""},
    }, base_url="http://h", mqtt_url="mqtt://127.0.0.1:9")
    try:
        key = {n: c.info.breaker_key for n, c in chans.items()}
        assert key["a"] == key["b"] == f"twilio:{SID}@127.0.0.1:1"
        # Aliyun SMS and voice are two products on two endpoints: one failing is no reason
        # to hold the other back.
        assert key["c"].endswith("@dysmsapi.aliyuncs.com")
        assert key["d"].endswith("@dyvmsapi.aliyuncs.com")
    finally:
        for c in chans.values():
            await c.aclose()


# --------------------------------------------------------------------------- load_config


def test_config_errors_name_the_channel_and_field_never_a_secret() -> None:
    raw = {"type": "twilio-voice", "callback_url": "http://h/hooks/tel", **TWILIO}
    with pytest.raises(ConfigError, match=r"^channels\.tel: Object contains unknown field "
                                          r"`auth_tokn`"):
        load_config(TwilioVoiceConfig, "tel", {**raw, "auth_tokn": "x"})
    with pytest.raises(ConfigError, match=r"^channels\.tel\.ring_timeout_s: Expected `int`"):
        load_config(TwilioVoiceConfig, "tel", {**raw, "ring_timeout_s": "soon"})
    # A secret of the wrong type is named by its field and type, not shown.
    with pytest.raises(ConfigError) as err:
        load_config(TwilioVoiceConfig, "tel", {**raw, "auth_token": 918273645546372819})
    assert str(err.value).startswith("channels.tel.auth_token: Expected a string")
    assert "918273645546372819" not in str(err.value)
    config = load_config(TwilioVoiceConfig, "tel", raw)
    assert isinstance(config.auth_token, Secret) and TOKEN not in repr(config)


def test_channel_settings_from_the_environment_are_strings_and_load(tmp_path: Path) -> None:
    """WARNBUS_CHANNELS__<NAME>__<FIELD> values arrive as strings: numbers load (a WeCom
    agent id set that way was refused), secrets become Secrets."""
    cfg = tmp_path / "warnbus.toml"
    raw = wecom("http://127.0.0.1:1")
    cfg.write_text(f'[channels.wx]\ntype = "wecom"\ncorp_id = "{raw["corp_id"]}"\n',
                   encoding="utf-8")
    env = {"WARNBUS_CHANNELS__WX__AGENT_ID": "1000002",
           "WARNBUS_CHANNELS__WX__CORP_SECRET": str(raw["corp_secret"]),
           "WARNBUS_CHANNELS__WX__TOKEN": str(raw["token"]),
           "WARNBUS_CHANNELS__WX__ENCODING_AES_KEY": str(raw["encoding_aes_key"]),
           "WARNBUS_CHANNELS__WX__RATE_PER_S": "12"}
    settings = load_settings(cfg, env=env)
    chans = load_channels(settings.channels, base_url="http://h", mqtt_url="mqtt://x:1")
    wx = chans["wx"]
    assert wx.info.medium is Medium.WECOM and wx.info.rate_per_s == 12.0
    assert wx.config.agent_id == 1000002  # type: ignore[attr-defined]


def test_channel_info_refuses_what_cannot_be() -> None:
    good = {"kind": "k", "provider": "p", "medium": Medium.SMS, "address": Address.PHONE,
            "breaker_key": "p:a"}
    assert ChannelInfo(**good).target is TargetKind.PERSON
    for bad in ({"rate_per_s": 0.0}, {"breaker_key": ""}, {"max_length": 0}):
        with pytest.raises(ValueError):
            ChannelInfo(**{**good, **bad})


# --------------------------------------------------------------------------- policy


def _infos(**media: Medium) -> dict[str, ChannelInfo]:
    from warnbus.plugin import MEDIUM_ADDRESS

    return {n: ChannelInfo(kind="test", provider="test", medium=m, address=MEDIUM_ADDRESS[m],
                           breaker_key=f"test:{n}") for n, m in media.items()}


def _policy(tmp_path: Path, red: str, fallback: str = "") -> Any:
    from rules.policy import Policy

    levels = "".join(f'[levels.{lv}]\nchannels = ["tel"]\n' for lv in ("orange", "yellow", "blue"))
    path = tmp_path / "policy.toml"
    path.write_text(f"[levels.red]\n{red}\n{levels}[fallback]\n{fallback}\n", encoding="utf-8")
    return Policy.load(path)


def test_the_policy_may_not_send_persons_messages_to_areas_or_the_other_way(
        tmp_path: Path) -> None:
    infos = _infos(tel=Medium.VOICE, wx=Medium.WECOM, bc=Medium.LOUDSPEAKER)
    ok = _policy(tmp_path, 'channels = ["tel", "wx"]\ndevice_channels = ["bc"]\n'
                           "speaker_deadline_s = 60", 'wx = "tel"')
    assert check_channels(ok, infos) == []
    cases = {
        'channels = ["tel", "bc"]': "levels.red.channels: 'bc' is a test channel, which "
                                    "sends to areas",
        'channels = ["tel"]\ndevice_channels = ["wx"]\nspeaker_deadline_s = 60':
            "levels.red.device_channels: 'wx' is a test channel, which sends to persons",
        'channels = ["tel"]\ncancel_channels = ["bc"]': "levels.red.cancel_channels: 'bc'",
        # A reminder to report goes to a person, never to a village's loudspeakers.
        'channels = ["tel"]\nack_deadline_s = 60\nfeedback_village_s = 600\n'
        'feedback_channels = ["bc"]': "levels.red.feedback_channels: 'bc'",
    }
    for red, message in cases.items():
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            check_channels(_policy(tmp_path, red), infos)
    with pytest.raises(ConfigError, match=r"fallback\.wx: 'bc'"):
        check_channels(_policy(tmp_path, 'channels = ["wx"]', 'wx = "bc"'), infos)
    # Not configured here: named, so that the composition root can say so.
    assert check_channels(_policy(tmp_path, 'channels = ["tel", "sms"]'), infos) == ["sms"]


async def test_an_engine_with_a_policy_that_sends_persons_messages_to_areas_does_not_start(
        tmp_path: Path, redis_url: str) -> None:
    from channels.testing import TestChannel, TestChannelConfig
    from warnbus.runtime.app import build_app
    from warnbus.runtime.config import Settings

    policy = tmp_path / "bad.toml"
    policy.write_text((ROOT / "rules" / "policy.toml").read_text(encoding="utf-8").replace(
        'device_channels = ["loudspeaker"]', 'device_channels = ["sms"]'), encoding="utf-8")
    channels = {n: TestChannel(n, TestChannelConfig(medium=Medium(n)))
                for n in ("voice", "sms", "wecom", "loudspeaker")}
    settings = Settings(redis_url=redis_url, mqtt_url=f"mqtt://127.0.0.1:{free_port()}",
                        policy=str(policy))
    with pytest.raises(ConfigError, match=r"levels\.red\.device_channels: 'sms' is a test "
                                          r"channel, which sends to persons"):
        await build_app(settings, channels=channels, base_url="http://test")
