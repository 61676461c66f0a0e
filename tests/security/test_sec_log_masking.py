"""Secrets never reach logs or error bodies; phone numbers and names are masked in logs.

Real JSON log lines are captured (the production renderer, `configure_logging(json=True)`)
while the engine runs a campaign on the real Twilio and WeCom channels, refuses forged
requests and bad tokens, and records an ack. Then every secret and every contact of every
person the campaign reached is looked for in the whole output.
"""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import structlog
from aiohttp.test_utils import TestClient, TestServer

from tests.engine.helpers import cap_alert
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.runtime.logs import configure_logging
from warnbus.web.api import make_web_app

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "faults"))
from providerkit import start_world


async def test_no_secret_phone_or_name_in_json_logs_or_error_bodies(redis_url: str) -> None:
    buf = io.StringIO()
    configure_logging(json=True, level="debug", stream=buf)
    w = await start_world(redis_url, concurrency=8)
    client = TestClient(TestServer(make_web_app(w.h.app)))
    await client.start_server()
    bodies: list[str] = []
    try:
        h = w.h
        w.twilio.outage.mode = "500"  # failures log too, with the provider's answers
        res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
        await h.drain()
        w.twilio.outage.mode = "up"
        h.clock.advance(30)
        await h.drain()
        sms_cfg = h.channels["sms"].config  # type: ignore[attr-defined]
        wc = h.channels["wecom"].config  # type: ignore[attr-defined]
        secrets = {"twilio auth_token": str(sms_cfg.auth_token),
                   "wecom corp_secret": str(wc.corp_secret), "wecom token": str(wc.token),
                   "wecom aes key": str(wc.encoding_aes_key),
                   "api token": h.app.api_token or "", "ack link key": h.app.links._key.decode()}
        for path, headers in [
            ("/api/v1/alerts", {"Authorization": f"Bearer {secrets['twilio auth_token']}"}),
            ("/api/v1/alerts", {"Authorization": "Bearer " + "x" * 40}),
            ("/hooks/sms/inbound", {"X-Twilio-Signature": "AAAA"}),
            ("/hooks/wecom/callback?msg_signature=1&timestamp=1&nonce=1", {}),
            ("/ack/" + h.app.links.token(res.campaign_id, "p-none", h.clock.now() - 10**6), {}),
        ]:
            r = await client.post(path, data=b"<xml><Encrypt>abc</Encrypt></xml>",
                                  headers=headers)
            bodies.append(await r.text())
        person_id = next(iter(await h.ctx.store.targets(res.campaign_id)))
        ack = h.app.links.token(res.campaign_id, person_id, h.clock.now())
        bodies.append(await (await client.post(f"/ack/{ack}")).text())
    finally:
        await client.close()
        await w.close()
        root = logging.getLogger()
        for handler in [x for x in root.handlers if getattr(x, "_warnbus_handler", False)]:
            root.removeHandler(handler)
        structlog.reset_defaults()
    out = buf.getvalue()
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert len(lines) > 50 and any(e.get("event") == "sent" for e in lines)
    for what, value in secrets.items():
        assert value and value not in out, f"{what} is in the log"
        assert all(value not in b for b in bodies), f"{what} is in an error body"
    reached = [w.h.ctx.registry.data.persons[p] for p in await w.h.ctx.store.targets(
        res.campaign_id) if p in w.h.ctx.registry.data.persons]
    assert reached
    for p in reached:
        assert not p.phone or p.phone not in out, "a full phone number is in the log"
        assert not p.phone or p.phone[3:] not in out
        assert p.name not in out, "a full name is in the log"
    assert "twilio webhook rejected" in out and "ack link rejected" in out
