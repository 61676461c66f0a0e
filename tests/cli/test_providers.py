"""`--providers cn|twilio`: the simulated provider set of the embedded default only."""

from __future__ import annotations

from pathlib import Path

import pytest

from warnbus.flow.routes import RoutedChannels
from warnbus.runtime.app import build_app
from warnbus.runtime.cli import build_parser, main
from warnbus.runtime.config import Settings
from warnbus.tools.cn_world import CnWorld


def test_demo_and_serve_take_a_provider_set() -> None:
    p = build_parser()
    assert p.parse_args(["demo", "--providers", "cn"]).providers == "cn"
    assert p.parse_args(["demo"]).providers == "twilio"
    assert p.parse_args(["serve", "--providers", "cn"]).providers == "cn"
    with pytest.raises(SystemExit):
        p.parse_args(["serve", "--providers", "aws"])


def test_serve_refuses_providers_beside_configured_channels(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "warnbus.toml"
    cfg.write_text('[channels.sms]\ntype = "test"\nmedium = "sms"\n', encoding="utf-8")
    assert main(["serve", "--config", str(cfg), "--providers", "cn"]) == 2
    assert "--providers chooses the simulated providers of the embedded default" in (
        capsys.readouterr().err)


async def test_the_embedded_default_runs_the_mainland_providers(redis_url: str,
                                                               mqtt_url: str) -> None:
    """What `warnbus serve --providers cn` builds with no [channels]: Aliyun and Tencent voice
    behind the policy's voice, Tencent SMS, WeCom and the speakers, on the simulators, with
    the providers' per-number limits."""
    settings = Settings(redis_url=redis_url, mqtt_url=mqtt_url)
    app = await build_app(settings, roles=("worker",), providers="cn",
                          base_url="http://127.0.0.1:9")
    try:
        assert isinstance(app.world, CnWorld)
        channels = app.ctx.channels
        assert isinstance(channels, RoutedChannels)
        assert {n: i.kind for n, i in channels.items()} == {
            "voice-aliyun": "aliyun-voice", "voice-tencent": "tencent-voice",
            "sms": "tencent-sms", "wecom": "wecom", "loudspeaker": "mqtt-loudspeaker"}
        assert channels.routes == {"voice": ("voice-aliyun", "voice-tencent")}
        tencent = channels.account("voice-tencent")
        assert tencent is not None and tencent.limits.per_night == 1
    finally:
        await app.close()
