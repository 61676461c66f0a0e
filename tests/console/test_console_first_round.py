"""The compose preview says how long the first round takes at the providers' rates, several
voice accounts behind the policy's `voice` counting together (issue 18 item 6)."""

from __future__ import annotations

import pytest
from console_kit import red_form, sign_in

from warnbus.flow.routes import RoutedChannels
from warnbus.plugin import Address, ChannelInfo, Medium


def info(medium: Medium, address: Address, rate: float | None) -> ChannelInfo:
    return ChannelInfo(kind="test", provider="test", medium=medium, address=address,
                       breaker_key=f"{medium}-{rate}", rate_per_s=rate)


async def test_the_preview_says_how_long_the_first_round_takes(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    h.ctx.channels = RoutedChannels.build({
        "voice-a": info(Medium.VOICE, Address.PHONE, 100.0),
        "voice-b": info(Medium.VOICE, Address.PHONE, 5.0),
        "sms": info(Medium.SMS, Address.PHONE, 500.0),
        "wecom": info(Medium.WECOM, Address.WECOM, 400.0),
        "loudspeaker": info(Medium.LOUDSPEAKER, Address.AREA, None),
    }, {"voice": ("voice-a", "voice-b")}, {})
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose/preview", data=red_form(s.csrf))
    assert r.status == 200, await r.text()
    got = await r.json()
    per, persons = got["preview"]["per_channel"], got["preview"]["persons"]
    assert per["voice-a"] + per["voice-b"] == persons > 20, "each person one call"
    # Voice is the slowest: the two accounts together, 105 calls a second.
    assert got["preview"]["first_round_s"] == pytest.approx(persons / 105.0)
    assert f"首轮消息约 {persons / 105.0:.0f} 秒内全部发出" in got["html"]
