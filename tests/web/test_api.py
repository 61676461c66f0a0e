"""The HTTP contract of DESIGN section 9, over real HTTP, on a real redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from tests.engine.helpers import Harness, make_harness, web_client
from warnbus.runtime.app import token_hash
from warnbus.runtime.config import TokenSettings
from warnbus.state import keys
from warnbus.web.api import make_web_app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"
FEED = "feed-token-430623"
NARROW = "feed-token-other-county"
ANYWHERE = "feed-token-no-region"
OFFICER = "officer-token"
REVOKED = "revoked-token"
CAP = {"Content-Type": "application/cap+xml"}
SENDERS = ("430623@qx.example.cn", "430623@zrzy.example.cn")  # the fixtures' senders


def auth(token: str = FEED) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest_asyncio.fixture
async def api(redis_url: str) -> AsyncIterator[tuple[TestClient, Harness]]:  # type: ignore[type-arg]
    h = await make_harness(redis_url)
    h.app.tokens = (
        TokenSettings("met", token_hash(FEED), roles=("feed",), senders=SENDERS,
                      regions=("430623",)),
        TokenSettings("other", token_hash(NARROW), roles=("feed",), senders=SENDERS,
                      regions=("430624",), categories=("Geo",)),
        TokenSettings("anywhere", token_hash(ANYWHERE), roles=("feed",), senders=SENDERS),
        TokenSettings("duty", token_hash(OFFICER), roles=("officer",)),
        TokenSettings("old", token_hash(REVOKED), roles=("feed",), revoked=True),
    )
    async with web_client(h) as client:
        yield client, h


async def test_post_alert_then_same_again_then_get(api) -> None:  # type: ignore[no-untyped-def]
    client, h = api
    body = (FIXTURES / "rainstorm-red.xml").read_bytes()
    r = await client.post("/api/v1/alerts", data=body, headers={**CAP, **auth()})
    assert r.status == 202, await r.text()
    first = await r.json()
    assert set(first) == {"alert_id", "campaign_id", "targets"} and first["targets"] > 0
    r = await client.post("/api/v1/alerts", data=body, headers={**CAP, **auth()})
    assert r.status == 200 and await r.json() == first
    await h.drain()
    r = await client.get(f"/api/v1/alerts/{first['alert_id']}", headers=auth(OFFICER))
    assert r.status == 200
    view = await r.json()
    for key in ("targets", "sent", "delivered", "acknowledged", "pending", "escalated",
                "unreached"):
        assert key in view["counts"]
    assert view["counts"]["sent"] > 0
    assert view["alert"]["identifier"]


async def test_reach_counts_persons_grids_and_sites_when_asked(api) -> None:  # type: ignore[no-untyped-def]
    client, h = api
    body = (FIXTURES / "rainstorm-red.xml").read_bytes()
    r = await client.post("/api/v1/alerts?reach=2", data=body, headers={**CAP, **auth()})
    assert r.status == 422 and "reach" in (await r.json())["error"]["message"]
    r = await client.post("/api/v1/alerts?reach=1", data=body, headers={**CAP, **auth()})
    assert r.status == 202, await r.text()
    first = await r.json()
    reach = first["reach"]
    assert set(reach) == {"persons", "grids", "sites", "loudspeakers"}
    assert first["targets"] == reach["persons"] + reach["loudspeakers"]
    # The same alert again gives the same counts; without asking, the contract's fields.
    r = await client.post("/api/v1/alerts?reach=1", data=body, headers={**CAP, **auth()})
    assert r.status == 200 and await r.json() == first
    r = await client.post("/api/v1/alerts", data=body, headers={**CAP, **auth()})
    assert await r.json() == {k: first[k] for k in ("alert_id", "campaign_id", "targets")}
    # A rainstorm calls the reservoirs' and ponds' patrollers and the danger zones' wardens
    # (rules/sites.toml) beside the grid officers: each site counted apart from the grids.
    await h.drain()
    tracked = await h.ctx.store.grids(first["campaign_id"])
    sites = [g for g in tracked if h.ctx.registry.is_site(g)]
    assert reach["sites"] == len(sites) > 0 and reach["grids"] == len(tracked) - len(sites)


async def test_update_and_cancel_continue_the_thread(api) -> None:  # type: ignore[no-untyped-def]
    client, h = api
    ids = []
    for name in ("rainstorm-red.xml", "rainstorm-red-update.xml", "rainstorm-red-cancel.xml"):
        r = await client.post("/api/v1/alerts", data=(FIXTURES / name).read_bytes(),
                              headers={**CAP, **auth()})
        assert r.status == 202, await r.text()
        ids.append(await r.json())
        await h.drain()
    assert len({x["campaign_id"] for x in ids}) == 1
    assert len({x["alert_id"] for x in ids}) == 3
    r = await client.get(f"/api/v1/alerts/{ids[0]['alert_id']}", headers=auth(OFFICER))
    assert (await r.json())["campaign"]["state"] == "cancelled"


async def test_json_form_is_accepted(api) -> None:  # type: ignore[no-untyped-def]
    client, _h = api
    r = await client.post("/api/v1/alerts", data=(FIXTURES / "rainstorm-red.json").read_bytes(),
                          headers={"Content-Type": "application/json", **auth()})
    assert r.status == 202, await r.text()


@pytest.mark.parametrize(
    ("headers", "body", "status", "code"),
    [
        ({**CAP}, b"<alert/>", 401, "unauthorized"),
        ({**CAP, **auth("nope")}, b"<alert/>", 401, "unauthorized"),
        ({**CAP, **auth(REVOKED)}, b"<alert/>", 401, "unauthorized"),
        ({**CAP, **auth(OFFICER)}, b"<alert/>", 403, "forbidden"),
        ({"Content-Type": "text/plain", **auth()}, b"hello", 415, "unsupported_type"),
        ({**CAP, **auth()}, b"<html><title>502 Bad Gateway</title></html>", 400, "malformed"),
        ({**CAP, **auth()}, b"not xml at all", 400, "malformed"),
    ],
)
async def test_rejections(api, headers, body, status, code) -> None:  # type: ignore[no-untyped-def]
    client, _h = api
    r = await client.post("/api/v1/alerts", data=body, headers=headers)
    assert r.status == status, await r.text()
    err = (await r.json())["error"]
    assert err["code"] == code and err["message"]


async def test_invalid_alert_names_the_field(api) -> None:  # type: ignore[no-untyped-def]
    client, _h = api
    body = (FIXTURES / "invalid" / "bad-date.xml").read_bytes()
    r = await client.post("/api/v1/alerts", data=body, headers={**CAP, **auth()})
    assert r.status == 422
    assert "sent" in (await r.json())["error"]["message"] or "effective" in (
        await r.json())["error"]["message"]


async def test_unknown_reference_is_422(api) -> None:  # type: ignore[no-untyped-def]
    client, _h = api
    body = (FIXTURES / "rainstorm-red-update.xml").read_bytes()
    r = await client.post("/api/v1/alerts", data=body, headers={**CAP, **auth()})
    assert r.status == 422
    err = (await r.json())["error"]
    assert err["code"] == "unknown_reference" and "references" in err["message"]


async def test_scope_outside_region_or_category_is_403(api) -> None:  # type: ignore[no-untyped-def]
    client, _h = api
    body = (FIXTURES / "rainstorm-red.xml").read_bytes()
    r = await client.post("/api/v1/alerts", data=body, headers={**CAP, **auth(NARROW)})
    assert r.status == 403
    assert "category" in (await r.json())["error"]["message"]
    body = (FIXTURES / "geohazard-orange.xml").read_bytes()
    r = await client.post("/api/v1/alerts", data=body, headers={**CAP, **auth(NARROW)})
    assert r.status == 403
    assert "outside the regions of other (430624)" in (await r.json())["error"]["message"]


async def test_too_large_is_413(api) -> None:  # type: ignore[no-untyped-def]
    client, h = api
    limit = h.app.settings.server.max_body_bytes
    r = await client.post("/api/v1/alerts", data=b" " * (limit + 1), headers={**CAP, **auth()})
    assert r.status == 413
    assert (await r.json())["error"]["code"] == "too_large"


async def test_a_2mb_alert_is_admitted(api) -> None:  # type: ignore[no-untyped-def]
    client, _h = api
    text = (FIXTURES / "geohazard-orange.xml").read_text(encoding="utf-8")
    # A national-feed-sized polygon: ~60k vertices around the sample polygon.
    import math

    pts = [(29.475 + 0.07 * math.sin(2 * math.pi * i / 100000),
            112.775 + 0.07 * math.cos(2 * math.pi * i / 100000)) for i in range(100000)]
    pts.append(pts[0])
    ring = " ".join(f"{a:.6f},{b:.6f}" for a, b in pts)
    start = text.index("<polygon>") + len("<polygon>")
    end = text.index("</polygon>")
    big = (text[:start] + ring + text[end:]).encode()
    assert len(big) > 2_000_000
    r = await client.post("/api/v1/alerts", data=big, headers={**CAP, **auth()})
    assert r.status == 202, await r.text()
    assert (await r.json())["targets"] > 0


async def test_ack_link_confirms_only_its_person(api) -> None:  # type: ignore[no-untyped-def]
    client, h = api
    r = await client.post("/api/v1/alerts", data=(FIXTURES / "rainstorm-red.xml").read_bytes(),
                          headers={**CAP, **auth()})
    res = await r.json()
    await h.drain()
    sms = [d for d in h.sent("sms") if d.ack_url]
    assert sms and all(d.ack_url in d.text for d in sms)
    link = sms[0].ack_url.replace("http://test", "")  # type: ignore[union-attr]
    r = await client.get(link)  # a link preview must not confirm
    assert r.status == 200 and "确认收到" in await r.text()
    assert not await h.ctx.store.is_acked(res["campaign_id"], sms[0].target_id)
    r = await client.post(link)
    assert r.status == 200 and (await r.json())["status"] == "recorded"
    assert await h.ctx.store.is_acked(res["campaign_id"], sms[0].target_id)
    r = await client.post(link)
    assert (await r.json())["status"] == "duplicate"
    # A forged link (another person in the same token body) fails the signature.
    token = link.rsplit("/", 1)[1]
    body, sig = token.split(".")
    other = sms[1].ack_url.rsplit("/", 1)[1].split(".")[0]  # type: ignore[union-attr]
    r = await client.post(f"/ack/{other}.{sig}")
    assert r.status == 403
    assert not await h.ctx.store.is_acked(res["campaign_id"], sms[1].target_id)
    # An expired link is refused.
    h.clock.advance(h.app.settings.ack_ttl_s + 1)
    r = await client.post(f"/ack/{other}.{sms[1].ack_url.rsplit('.', 1)[1]}")  # type: ignore[union-attr]
    assert r.status == 403
    _ = body


async def test_console_ack_needs_officer_and_reason(api) -> None:  # type: ignore[no-untyped-def]
    client, h = api
    r = await client.post("/api/v1/alerts", data=(FIXTURES / "rainstorm-red.xml").read_bytes(),
                          headers={**CAP, **auth()})
    res = await r.json()
    await h.drain()
    pid = h.sent("voice")[0].target_id
    payload = {"campaign_id": res["campaign_id"], "person_id": pid, "reason": ""}
    r = await client.post("/api/v1/acks", json=payload, headers=auth(OFFICER))
    assert r.status == 422
    r = await client.post("/api/v1/acks", json={**payload, "reason": "电话回访确认"},
                          headers=auth(FEED))
    assert r.status == 403
    r = await client.post("/api/v1/acks", json={**payload, "reason": "电话回访确认"},
                          headers=auth(OFFICER))
    assert r.status == 200 and (await r.json())["status"] == "recorded"
    r = await client.get(f"/api/v1/alerts/{res['alert_id']}/record?format=csv",
                         headers=auth(OFFICER))
    text = await r.text()
    assert r.status == 200 and text.startswith('\ufeff"person_id",')
    assert "电话回访确认" in text and "console" in text


async def test_health_and_metrics(api) -> None:  # type: ignore[no-untyped-def]
    client, _h = api
    r = await client.get("/healthz")
    assert r.status == 503 and await r.json() == {"ok": False}  # the harness has no broker
    r = await client.get("/healthz", headers=auth(OFFICER))
    detail = await r.json()
    assert detail["redis"] is True
    assert detail["broker"] is False and r.status == 503
    r = await client.get("/metrics")
    assert r.status == 200 and "warnbus_queue_depth" in await r.text()


async def test_get_unknown_alert_is_404(api) -> None:  # type: ignore[no-untyped-def]
    client, _h = api
    r = await client.get("/api/v1/alerts/al_nope", headers=auth(OFFICER))
    assert r.status == 404 and (await r.json())["error"]["code"] == "not_found"


async def test_redis_down_is_503_and_nothing_accepted(fresh_redis_service) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(fresh_redis_service.url)
    h.app.tokens = (TokenSettings("met", token_hash(FEED), roles=("feed",), senders=SENDERS),)
    client = TestClient(TestServer(make_web_app(h.app)))
    await client.start_server()
    try:
        fresh_redis_service.kill()
        body = (FIXTURES / "rainstorm-red.xml").read_bytes()
        r = await client.post("/api/v1/alerts", data=body, headers={**CAP, **auth()})
        assert r.status == 503, await r.text()
        assert (await r.json())["error"]["code"] == "unavailable"
        assert r.headers["Retry-After"]
    finally:
        await client.close()
        await h.app.close()


async def test_metrics_count_alerts_deliveries_and_ack_latency(api) -> None:  # type: ignore[no-untyped-def]
    client, h = api
    r = await client.post("/api/v1/alerts", data=(FIXTURES / "rainstorm-red.xml").read_bytes(),
                          headers={**CAP, **auth()})
    res = await r.json()
    await h.drain()
    h.clock.advance(42)
    link = next(d.ack_url for d in h.sent("sms") if d.ack_url).replace("http://test", "")  # type: ignore[union-attr]
    await client.post(link)
    text = await (await client.get("/metrics")).text()
    assert 'warnbus_alerts_total{msg_type="Alert",result="accepted"}' in text
    assert 'warnbus_deliveries_total{channel="sms",kind="warning",outcome="sent"}' in text
    assert 'warnbus_acks_total{result="recorded",via="link"}' in text
    assert "warnbus_ack_latency_seconds_bucket" in text
    _ = res


async def test_worker_processes_serve_only_health_and_metrics(redis_url: str) -> None:
    from warnbus.web.api import make_ops_app

    h = await make_harness(redis_url)
    client = TestClient(TestServer(make_ops_app(h.app)))
    await client.start_server()
    try:
        r = await client.get("/healthz", headers=auth(h.app.api_token or ""))
        assert (await r.json())["redis"] is True
        assert (await client.get("/metrics")).status == 200
        r = await client.post("/api/v1/alerts", data=b"<alert/>", headers={**CAP, **auth()})
        assert r.status == 404, "no public routes on a worker"
    finally:
        await client.close()
        await h.app.close()


def _json_alert(identifier: str, *codes: str) -> bytes:
    """The red rainstorm JSON fixture with one area per township code."""
    import json

    doc = json.loads((FIXTURES / "rainstorm-red.json").read_bytes())
    doc["identifier"] = identifier
    doc["infos"][0]["areas"] = [{"desc": f"乡镇{c}", "geocodes": [["TOWNSHIP", c]]}
                                for c in codes]
    return json.dumps(doc, ensure_ascii=False).encode()


async def test_areas_outside_the_registry_json_form(api) -> None:  # type: ignore[no-untyped-def]
    """The contract's additions: 422 `outside_registry`, and `warnings` on a partial match."""
    from warnbus.web.openapi import SCHEMAS

    client, h = api
    headers = {"Content-Type": "application/json", **auth()}
    anywhere = {**headers, **auth(ANYWHERE)}  # a token with no region scope
    r = await client.post("/api/v1/alerts", data=_json_alert("J-1", "440000000000"),
                          headers=anywhere)
    err = (await r.json())["error"]
    assert (r.status, err["code"]) == (422, "outside_registry"), err
    assert "info[0].area[0] geocode 440000000000 (乡镇440000000000)" in err["message"]
    # A token scoped to the county is refused the same alert by its geocode, before matching.
    r = await client.post("/api/v1/alerts", data=_json_alert("J-1", "440000000000"),
                          headers=headers)
    err = (await r.json())["error"]
    assert (r.status, err["code"]) == (403, "forbidden"), err
    assert err["message"].startswith("info[0].area[0]: the geocode of region 44 ")
    assert not await h.ctx.redis.zcard(keys.CAMPAIGNS)

    r = await client.post("/api/v1/alerts", headers=headers,
                          data=_json_alert("J-2", "430623101000", "430623199000"))
    res = await r.json()
    assert r.status == 202 and res["targets"] > 0, res
    schema = SCHEMAS["Warning"]
    assert len(res["warnings"]) == 1
    warning = res["warnings"][0]
    assert set(warning) == set(schema["required"])
    assert warning["code"] in schema["properties"]["code"]["enum"]
    assert warning["field"] == "info[0].area[1]"
    assert warning["message"] == (
        "info[0].area[1]: no grid of the registry lies in this area: geocode 430623199000 "
        "(乡镇430623199000); the alert goes to the grids of its other areas")
    assert set(res) <= set(SCHEMAS["Accepted"]["properties"])
    # The same alert again: the same ids (200), the warnings were said once.
    r = await client.post("/api/v1/alerts", headers=headers,
                          data=_json_alert("J-2", "430623101000", "430623199000"))
    assert r.status == 200 and "warnings" not in await r.json()
