"""The OpenAPI document (warnbus.web.openapi) against the running API, with schemathesis.

The app runs on an aiohttp TestServer over the engine harness (real redis-server); schemathesis
sends its requests with `requests` from a worker thread, so the event loop keeps serving them.
Two runs: hand-picked real requests (a valid CAP alert, the same again, bad tokens, wrong
type, malformed XML, unknown ids, an ack link, the CAP feed...), then a bounded run generated
from the document. Every response must be a documented status code with a documented content
type and body schema (and headers), and none a 5xx other than the documented 503s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import requests
import schemathesis
from aiohttp.test_utils import TestServer
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.engine.helpers import Harness, make_harness
from warnbus.runtime.app import token_hash
from warnbus.runtime.config import TokenSettings
from warnbus.web.api import make_web_app
from warnbus.web.openapi import CAP_XML_TYPES, OPENAPI_DOC, PATH

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cap"
ADMIN = "admin-token"
FEED = "feed-token-430623"
OFFICER = "officer-token"
REVOKED = "revoked-token"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
# /healthz answers its documented 503 here (the harness has no MQTT broker); every other
# operation must never answer a 5xx while Redis is up.
EXPECTED_503 = {"GET /healthz"}
MAX_EXAMPLES = 40  # per operation and generation mode: the whole run stays well under 40 s
RUN_BUDGET_S = 40.0

# The CAP XML bodies schemathesis sends: real fixtures (valid and invalid) and junk.
_CAP_SAMPLES = sorted(p.read_bytes() for p in FIXTURES.glob("*.xml")) + sorted(
    p.read_bytes() for p in (FIXTURES / "invalid").glob("*.xml"))
CAP_BODIES = st.one_of(
    st.sampled_from(_CAP_SAMPLES),
    st.binary(max_size=256),
    st.text(max_size=64).map(lambda t: f"<alert>{t}</alert>".encode()),
)


def checks_for(op: Any) -> list[Any]:
    return [c for c in CHECKS if not (c is not_a_server_error and op.label in EXPECTED_503)]


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def api_schema() -> Any:
    for media in CAP_XML_TYPES:  # raw bytes, as a feed sends them
        schemathesis.openapi.media_type(media, CAP_BODIES)
    return schemathesis.openapi.from_dict(OPENAPI_DOC)


@pytest_asyncio.fixture
async def live(redis_url: str) -> AsyncIterator[tuple[str, Harness]]:
    h = await make_harness(redis_url)
    h.app.tokens = (
        TokenSettings("root", token_hash(ADMIN), roles=("admin",),
                      senders=("430623@qx.example.cn",)),
        TokenSettings("met", token_hash(FEED), roles=("feed",), regions=("430623",),
                      senders=("430623@qx.example.cn", "430623@zrzy.example.cn")),
        TokenSettings("duty", token_hash(OFFICER), roles=("officer",)),
        TokenSettings("old", token_hash(REVOKED), roles=("feed",), revoked=True),
    )
    server = TestServer(make_web_app(h.app))
    await server.start_server()
    try:
        yield str(server.make_url("")).rstrip("/"), h
    finally:
        await server.close()
        await h.app.close()


def test_document_is_valid_openapi_31(api_schema: Any) -> None:
    api_schema.validate()  # against the OpenAPI 3.1 meta-schema
    assert OPENAPI_DOC["openapi"] == "3.1.0"
    paths = OPENAPI_DOC["paths"]
    for path in ("/api/v1/alerts", "/api/v1/alerts/{alert_id}", "/api/v1/alerts/{alert_id}/record",
                 "/api/v1/acks", "/ack/{token}", "/healthz", "/metrics", "/cap/feed.atom",
                 "/cap/alerts/{alert_id}.xml", PATH):
        assert path in paths, path
    assert set(paths["/ack/{token}"]) == {"get", "post"}
    post = paths["/api/v1/alerts"]["post"]
    assert set(post["responses"]) == {"200", "202", "400", "401", "403", "413", "415", "422",
                                      "503"}
    assert set(post["requestBody"]["content"]) == {*CAP_XML_TYPES, "application/json"}


async def test_served_document(live: tuple[str, Harness]) -> None:
    base, _h = live
    r = await asyncio.to_thread(requests.get, base + PATH, timeout=10)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")
    assert r.json() == OPENAPI_DOC


def _validate(schema: Any, base: str, path: str, method: str, **case: Any) -> requests.Response:
    """Send one hand-made request through schemathesis and run the conformance checks."""
    op = schema[path][method]
    response = op.Case(**case).call_and_validate(base_url=base, checks=checks_for(op))
    return response  # type: ignore[no-any-return]


async def test_real_requests_conform(live: tuple[str, Harness], api_schema: Any) -> None:
    base, h = live
    xml = (FIXTURES / "rainstorm-red.xml").read_bytes()
    alerts = "/api/v1/alerts"

    def post(token: str | None, body: bytes, media: str = "application/cap+xml") -> int:
        headers = auth(token) if token else {}
        r = _validate(api_schema, base, alerts, "POST", body=body, media_type=media,
                      headers=headers)
        return int(r.status_code)

    def first_round() -> tuple[int, int, dict[str, Any]]:
        r = _validate(api_schema, base, alerts, "POST", body=xml, media_type="application/cap+xml",
                      headers=auth(FEED))
        again = post(FEED, xml)
        return r.status_code, again, r.json()

    created, again, ids = await asyncio.to_thread(first_round)
    assert (created, again) == (202, 200)
    await h.drain()
    sms = [d for d in h.sent("sms") if d.ack_url]
    link_token = sms[0].ack_url.rsplit("/", 1)[1]
    pid = h.sent("voice")[0].target_id

    def the_rest() -> dict[str, int]:
        json_alert = (FIXTURES / "geohazard-orange.json").read_bytes()
        seen = {
            "json": post(FEED, json_alert, "application/json"),
            "no token": post(None, xml),
            "bad token": post("nope", xml),
            "revoked": post(REVOKED, xml),
            "officer posts": post(OFFICER, xml),
            "wrong type": post(FEED, b"hello", "text/plain"),
            "malformed": post(FEED, b"<alert><unclosed></alert>", "application/xml"),
            "not xml": post(FEED, b"not xml at all", "text/xml"),
            "invalid": post(FEED, (FIXTURES / "invalid" / "bad-date.xml").read_bytes()),
            "update": post(FEED, (FIXTURES / "rainstorm-red-update.xml").read_bytes()),
            "too large": post(FEED, b" " * (h.app.settings.server.max_body_bytes + 1)),
        }

        def get(path: str, name: str, **case: Any) -> None:
            seen[name] = _validate(api_schema, base, path, "GET", **case).status_code

        aid = {"alert_id": ids["alert_id"]}
        get("/api/v1/alerts/{alert_id}", "view", path_parameters=aid, headers=auth(OFFICER))
        get("/api/v1/alerts/{alert_id}", "unknown alert",
            path_parameters={"alert_id": "al_nope"}, headers=auth(OFFICER))
        get("/api/v1/alerts/{alert_id}", "view by feed", path_parameters=aid, headers=auth(FEED))
        get("/api/v1/alerts/{alert_id}/record", "record", path_parameters=aid,
            headers=auth(OFFICER))
        get("/api/v1/alerts/{alert_id}/record", "record csv", path_parameters=aid,
            query={"format": "csv"}, headers=auth(OFFICER))
        get("/ack/{token}", "ack page", path_parameters={"token": link_token})
        get("/ack/{token}", "bad ack page", path_parameters={"token": "x.y"})
        for name, token, headers in (("ack", link_token, {}), ("ack again", link_token, {}),
                                     ("ack html", link_token, {"Accept": "text/html"}),
                                     ("bad ack", "x.y", {})):
            seen[name] = _validate(api_schema, base, "/ack/{token}", "POST",
                                   path_parameters={"token": token}, headers=headers).status_code
        ack = {"campaign_id": ids["campaign_id"], "person_id": pid, "reason": "电话回访确认"}
        for name, body in (("console ack", ack), ("blank reason", {**ack, "reason": " "}),
                           ("no campaign", {**ack, "campaign_id": "cp_nope"})):
            seen[name] = _validate(api_schema, base, "/api/v1/acks", "POST", body=body,
                                   media_type="application/json",
                                   headers=auth(OFFICER)).status_code
        get("/healthz", "healthz")
        get("/healthz", "healthz detail", headers=auth(OFFICER))
        get("/healthz", "healthz bad token", headers=auth("nobody"))
        get("/metrics", "metrics")
        get("/cap/feed.atom", "feed")
        get("/cap/feed.atom", "feed limit", query={"limit": 1})
        get("/cap/alerts/{alert_id}.xml", "cap file", path_parameters=aid)
        get("/cap/alerts/{alert_id}.xml", "cap file unknown",
            path_parameters={"alert_id": "al_00000000000000000000"})
        etag = requests.get(f"{base}/cap/alerts/{ids['alert_id']}.xml", timeout=10).headers["ETag"]
        get("/cap/alerts/{alert_id}.xml", "cap file cached", path_parameters=aid,
            headers={"If-None-Match": etag})
        get(PATH, "openapi")
        return seen

    seen = await asyncio.to_thread(the_rest)
    assert seen == {
        "json": 202, "no token": 401, "bad token": 401, "revoked": 401, "officer posts": 403,
        "wrong type": 415, "malformed": 400, "not xml": 400, "invalid": 422,
        "update": 202, "too large": 413,
        "view": 200, "unknown alert": 404, "view by feed": 403, "record": 200,
        "record csv": 200, "ack page": 200, "bad ack page": 403, "ack": 200, "ack again": 200,
        "ack html": 200, "bad ack": 403, "console ack": 200, "blank reason": 422,
        "no campaign": 404, "healthz": 503,  # the harness has no MQTT broker
        "healthz detail": 503, "healthz bad token": 401,
        "metrics": 200, "feed": 200, "feed limit": 200, "cap file": 200, "cap file unknown": 404,
        "cap file cached": 304, "openapi": 200,
    }


def _run_generated(schema: Any, base: str, deadline: float) -> list[str]:
    """A bounded generated run over every operation, in positive and negative mode."""
    done: list[str] = []
    session = requests.Session()
    for result in schema.get_all_operations():
        op = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            if time.monotonic() > deadline:
                return done
            try:
                strategy = op.as_strategy(generation_mode=mode)
            except Exception:  # nothing to negate (no parameters or body)
                continue
            try:
                _given(strategy, lambda case, op=op: case.call_and_validate(
                    base_url=base, session=session, headers=auth(ADMIN),
                    checks=[*checks_for(op), ignored_auth]))()
            except Unsatisfiable:
                # Nothing to negate (no parameters, or only a free-form path string).
                if mode is schemathesis.GenerationMode.POSITIVE:
                    raise
                continue
            done.append(f"{op.label} {mode.value}")
    return done


def _given(strategy: Any, test: Callable[[Any], object]) -> Callable[[], None]:
    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        test(case)

    return run  # type: ignore[no-any-return]


async def test_generated_requests_conform(live: tuple[str, Harness], api_schema: Any) -> None:
    base, _h = live
    start = time.monotonic()
    done = await asyncio.to_thread(_run_generated, api_schema, base, start + RUN_BUDGET_S)
    positive = {d.rsplit(" ", 1)[0] for d in done if d.endswith("positive")}
    assert len(positive) == 13, done  # every operation ran (in the budget) in positive mode
