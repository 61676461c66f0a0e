"""Settings are validated once, strictly; secrets never show."""

from __future__ import annotations

from pathlib import Path

import pytest

from warnbus.errors import ConfigError
from warnbus.runtime.config import Secret, load_settings


def test_defaults_without_a_file() -> None:
    s = load_settings(None, env={})
    assert s.redis_url == "" and s.server.port == 8080 and s.channels == {}


def test_unknown_key_is_an_error_naming_it(tmp_path: Path) -> None:
    p = tmp_path / "w.toml"
    p.write_text("[server]\nprot = 1\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(p, env={})


def test_env_overrides_and_channel_secrets(tmp_path: Path) -> None:
    p = tmp_path / "w.toml"
    p.write_text('redis_url = "redis://file"\n[channels.sms]\ntype = "test"\n', encoding="utf-8")
    s = load_settings(p, env={"WARNBUS_REDIS_URL": "redis://env", "WARNBUS_PORT": "9000",
                              "WARNBUS_API_TOKEN": "t0ken",
                              "WARNBUS_CHANNELS__SMS__AUTH_TOKEN": "x"})
    assert s.redis_url == "redis://env" and s.server.port == 9000
    assert s.channels["sms"] == {"type": "test", "auth_token": "x"}
    assert isinstance(s.api_token, Secret) and "t0ken" not in repr(s)


@pytest.mark.parametrize("env", [{"WARNBUS_PORT": "abc"}, {"WARNBUS_CHANNELS__SMS": "x"}])
def test_bad_env_is_a_clear_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_settings(None, env=env)


def test_missing_file_and_bad_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "none.toml", env={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(bad, env={})


def test_the_deploy_example_loads(repo_root: Path) -> None:
    s = load_settings(repo_root / "deploy" / "warnbus.toml", env={})
    assert s.channels["sms"]["type"] == "tencent-sms"
    assert s.channels["voice"]["type"] == "aliyun-voice"


def test_settings_never_show_channel_secrets_or_url_passwords() -> None:
    """A channel's table holds its secrets as plain strings until the channel loads it, and the
    store's URLs may carry passwords: printing the settings shows neither."""
    settings = load_settings(env={
        "WARNBUS_REDIS_URL": "redis://:hunter2-redis@127.0.0.1:6390/0",
        "WARNBUS_MQTT_URL": "mqtt://engine:hunter2-mqtt@127.0.0.1:1884",
        "WARNBUS_CHANNELS__SMS__TYPE": "twilio-sms",
        "WARNBUS_CHANNELS__SMS__AUTH_TOKEN": "hunter2-twilio",
        "WARNBUS_API_TOKEN": "hunter2-api",
    })
    text = repr(settings) + str(settings) + f"{settings}"
    assert "hunter2" not in text, text
    assert "twilio-sms" in text and "127.0.0.1:6390" in text and "engine:***@" in text
