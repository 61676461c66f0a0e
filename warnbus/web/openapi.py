"""The OpenAPI 3.1 document of the HTTP API (DESIGN section 9), served at /api/v1/openapi.json.

Kept by hand beside `web.api` and `web.capfeed`; tests/web/test_openapi.py checks the running
API against it with schemathesis, so a route or response that drifts from it fails there.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from warnbus.flow.filed import API_WORDS
from warnbus.flow.record import RECORD_COLUMNS
from warnbus.web import openapi_feedback

PATH = "/api/v1/openapi.json"

CAP_XML_TYPES = ("application/cap+xml", "application/xml", "text/xml")
COUNTS = (
    "targets", "sent", "delivered", "acknowledged", "pending", "escalated", "unreached",
    "failed", "attempts", "duplicates",
)


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _err(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _retry(response: dict[str, Any]) -> dict[str, Any]:
    return {**response, "headers": {"Retry-After": {"$ref": "#/components/headers/RetryAfter"}}}


UNAVAILABLE = _retry(_err("Redis is unreachable (and, for a confirmation, the local "
                          "journal too): nothing was done, retry shortly (code `unavailable`)."))
RATE_LIMITED = _retry(_err("Too many requests on this public route (code `rate_limited`)."))
UNAUTHORIZED = _err("No bearer token, an unknown one, or a revoked one (code `unauthorized`).")
FORBIDDEN = _err("The token lacks the role this route needs (code `forbidden`).")
NOT_MODIFIED = {"description": "The `If-None-Match` ETag matches: no body.",
                "headers": {"ETag": {"$ref": "#/components/headers/ETag"},
                            "Cache-Control": {"$ref": "#/components/headers/CacheControl"}}}
ALERT_ID = {"name": "alert_id", "in": "path", "required": True,
            "description": "An alert id as returned by `POST /api/v1/alerts` (`al_...`).",
            "schema": {"type": "string", "minLength": 1}}
IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False,
                 "description": "ETags of a cached copy; a match answers 304.",
                 "schema": {"type": "string"}}
ACK_TOKEN = {"name": "token", "in": "path", "required": True,
             "description": "The signed ack-link token (`<body>.<signature>`, base64url).",
             "schema": {"type": "string", "minLength": 1}}
BEARER: list[dict[str, list[str]]] = [{"bearer": []}]
HTML = {"text/html": {"schema": {"type": "string"}}}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string", "description": "Machine-readable, e.g. `invalid`."},
                "message": {"type": "string", "description": "What to fix; names the CAP "
                            "field (e.g. `info[0].expires: ...`) when there is one."},
            },
        }},
    },
    "AlertJson": {
        "type": "object",
        "description": "The JSON form of a CAP 1.2 alert (warnbus's alert model: identifier, "
                       "sender, sent, status, msg_type, scope, infos, ...). Validated by the "
                       "engine; an invalid one is a 422 naming the field.",
        "examples": [{"identifier": "43062304100000_20260802040000_1",
                      "sender": "430623@qx.example.cn", "sent": "2026-08-02T04:00:00+08:00",
                      "status": "Actual", "msg_type": "Alert", "scope": "Public",
                      "infos": []}],
    },
    "Accepted": {
        "type": "object",
        "required": ["alert_id", "campaign_id", "targets"],
        "additionalProperties": False,
        "properties": {
            "alert_id": {"type": "string"},
            "campaign_id": {"type": "string", "description": "The campaign (thread) the "
                            "alert starts, or continues for an Update or Cancel."},
            "targets": {"type": "integer", "minimum": 0},
            "reach": {
                "type": "object",
                "description": "Only when asked for (`?reach=1`), for an Alert or Update: "
                               "whom its first wave calls, counted separately: `persons` (grid "
                               "officers and the people of sites the hazard calls, each once), "
                               "`grids`, `sites` (hazard points, reservoirs and ponds, danger "
                               "zones, shelters: rules/sites.toml) and `loudspeakers`; `targets` "
                               "is persons + loudspeakers. The same alert again (200) gives the "
                               "same counts; absent for a Cancel.",
                "required": ["persons", "grids", "sites", "loudspeakers"],
                "additionalProperties": False,
                "properties": {k: {"type": "integer", "minimum": 0}
                               for k in ("persons", "grids", "sites", "loudspeakers")},
            },
            "warnings": {
                "type": "array",
                "description": "Present when an accepted alert has something its sender "
                               "should fix: `area_outside_registry` names each area in which "
                               "no grid of the registry lies (the alert goes to the grids of "
                               "its other areas). Absent when there is nothing to say.",
                "items": _ref("Warning"),
            },
        },
    },
    "Warning": {
        "type": "object",
        "required": ["code", "field", "message"],
        "additionalProperties": False,
        "properties": {
            "code": {"type": "string", "enum": ["area_outside_registry"]},
            "field": {"type": "string", "description": "The CAP path, e.g. `info[0].area[2]`."},
            "message": {"type": "string", "description": "What matched nothing: the area's "
                        "geocodes or shapes and its areaDesc."},
        },
    },
    "AlertView": {
        "type": "object",
        "required": ["alert_id", "campaign_id", "alert", "campaign", "counts", "grids",
                     "sites"],
        "properties": {
            "alert_id": {"type": "string"},
            "campaign_id": {"type": "string"},
            "alert": {"type": ["object", "null"], "description": "The alert (JSON form)."},
            "campaign": {
                "type": "object",
                "required": ["state", "level", "root_alert_id", "latest_alert_id",
                             "created_at", "expires_at", "headline"],
                "properties": {
                    "state": {"type": "string"},
                    "level": {"type": ["string", "null"]},
                    "root_alert_id": {"type": ["string", "null"]},
                    "latest_alert_id": {"type": ["string", "null"]},
                    "created_at": {"type": "string", "description": "ISO 8601, or empty."},
                    "expires_at": {"type": "string", "description": "ISO 8601, or empty."},
                    "headline": {"type": ["string", "null"]},
                },
            },
            "counts": {
                "type": "object",
                "required": list(COUNTS),
                "properties": {k: {"type": "integer", "minimum": 0} for k in COUNTS},
                "description": "`unreached` is the 未叫醒 count (grids, and the sites the "
                               "hazard calls, whose chain never confirmed); `pending` and "
                               "`escalated` count them alike.",
            },
            "grids": {"type": "object", "additionalProperties": {"type": "integer"},
                      "description": "Grids per 叫应 state (non-zero states only); the "
                                     "sites are counted apart in `sites`."},
            "sites": {"type": "object", "additionalProperties": {"type": "integer"},
                      "description": "The sites the hazard calls (hazard points, reservoirs "
                                     "and ponds, danger zones, shelters), tracked like grids, "
                                     "per 叫应 state (non-zero states only)."},
        },
    },
    "Record": {
        "type": "object",
        "required": ["alert_id", "rows"],
        "properties": {
            "alert_id": {"type": "string"},
            "rows": {"type": "array", "items": {
                "type": "object",
                "required": list(RECORD_COLUMNS),
                "properties": {k: {"type": "string"} for k in (*RECORD_COLUMNS, *API_WORDS)},
            }},
        },
    },
    "ConsoleAck": {
        "type": "object",
        "description": "Who entered it is the token (its name is recorded as `by`); a body "
                       "that names `by` itself is refused (422).",
        "required": ["campaign_id", "person_id", "reason"],
        "additionalProperties": False,
        "properties": {
            "campaign_id": {"type": "string"},
            "person_id": {"type": "string"},
            "reason": {"type": "string", "description": "Why (e.g. phoned back); not blank."},
        },
    },
    "AckStatus": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"type": "string",
                                  "enum": ["recorded", "duplicate", "late", "journaled"],
                                  "description": "`late`: the campaign had ended "
                                                 "(cancelled, expired); nothing changed, the "
                                                 "confirmation is on record as late."}},
    },
    "Health": {
        "type": "object",
        "required": ["ok"],
        "description": "Without a token only `ok`; with an officer's or admin's token also "
                       "the detail (the other fields).",
        "properties": {
            "ok": {"type": "boolean"},
            "redis": {"type": "boolean"},
            "broker": {"type": "boolean"},
            "roles": {"type": "array", "items": {"type": "string"}},
            "feeds": {"description": "Health of the polled agency feeds, when any."},
        },
    },
}

_CAP_BODY = {"type": "string", "format": "binary",
             "description": "A CAP 1.2 (or 1.1/1.0) <alert> document."}

POST_ALERTS: dict[str, Any] = {
    "operationId": "postAlert",
    "summary": "Submit a CAP alert (or an Update/Cancel of one) for dissemination.",
    "security": BEARER,
    "parameters": [{"name": "reach", "in": "query", "required": False,
                    "description": "1: the reply adds `reach`, whom the alert calls counted "
                                   "as persons, grids, sites and loudspeakers.",
                    "schema": {"type": "string", "enum": ["0", "1"], "default": "0"}}],
    "requestBody": {"required": True, "content": {
        **{t: {"schema": _CAP_BODY} for t in CAP_XML_TYPES},
        "application/json": {"schema": _ref("AlertJson")},
    }},
    "responses": {
        "202": _json(_ref("Accepted"), "Accepted: a new campaign, or the thread an Update "
                     "or Cancel continues."),
        "200": _json(_ref("Accepted"), "The same alert again: the same ids, nothing new."),
        "400": _err("Malformed body (code `malformed`)."),
        "401": UNAUTHORIZED,
        "403": _err("The token lacks the `feed` role; the alert's `sender` is not one of the "
                    "token's senders; an Update or Cancel references an alert of another "
                    "sender (the same reply whether or not that alert exists); or the alert, "
                    "or the thread an Update or Cancel continues, is outside the token's "
                    "regions or categories (judged by the hazard its event names, not only "
                    "by `<category>`) (code `forbidden`; the message names the field)."),
        "413": _err("The body is larger than the configured limit, or the alert lists more "
                    "areas (or polygon, circle and geocode entries in them) than the "
                    "configured limits `server.max_areas` (default 1,000) and "
                    "`server.max_area_entries` (default 10,000); the message names the "
                    "count and the limit (code `too_large`)."),
        "415": _err("Content-Type is not a CAP XML or JSON type (code `unsupported_type`)."),
        "422": _err("Not a valid alert; the message names the field (code `invalid` or "
                    "`unknown_reference`, e.g. a polygon that crosses itself). Code "
                    "`outside_registry`: an Alert or Update none of whose areas holds a grid "
                    "of the registry (an alert for other regions); the message names the "
                    "areas (geocodes or shapes, areaDesc). A Cancel is never refused so."),
        "503": UNAVAILABLE,
    },
}

READ_FORBIDDEN = _err("The token lacks the `officer` role, or is bounded to regions that the "
                      "alert's thread does not reach (code `forbidden`).")

GET_ALERT: dict[str, Any] = {
    "operationId": "getAlert",
    "summary": "The alert, its campaign state and counts.",
    "security": BEARER,
    "parameters": [ALERT_ID],
    "responses": {
        "200": _json(_ref("AlertView"), "The alert's view."),
        "401": UNAUTHORIZED,
        "403": READ_FORBIDDEN,
        "404": _err("No such alert (code `not_found`)."),
        "503": UNAVAILABLE,
    },
}

GET_RECORD: dict[str, Any] = {
    "operationId": "getAlertRecord",
    "summary": "The auditable 叫应 record: one row per attempt (and per person never tried); "
               "for a token bounded to regions, the rows of people serving inside them.",
    "security": BEARER,
    "parameters": [ALERT_ID, {"name": "format", "in": "query", "required": False,
                              "schema": {"type": "string", "enum": ["json", "csv"],
                                         "default": "json"}}],
    "responses": {
        "200": {"description": "The record, as JSON or (format=csv) CSV with a header row.",
                "content": {"application/json": {"schema": _ref("Record")},
                            "text/csv": {"schema": {"type": "string"}}}},
        "401": UNAUTHORIZED,
        "403": READ_FORBIDDEN,
        "404": _err("No such alert (code `not_found`)."),
        "503": UNAVAILABLE,
    },
}

POST_ACK: dict[str, Any] = {
    "operationId": "postConsoleAck",
    "summary": "Record a confirmation entered at the console, with its reason.",
    "security": BEARER,
    "requestBody": {"required": True,
                    "content": {"application/json": {"schema": _ref("ConsoleAck")}}},
    "responses": {
        "200": _json(_ref("AckStatus"), "Recorded, already confirmed (`duplicate`), or after "
                     "the campaign ended (`late`)."),
        "202": _json(_ref("AckStatus"), "`journaled`: Redis was unavailable; the "
                     "confirmation is in the engine's local journal (on disk) and is recorded "
                     "when Redis returns."),
        "401": UNAUTHORIZED,
        "403": _err("The token lacks the `officer` role, or the person serves outside the "
                    "token's regions (code `forbidden`)."),
        "404": _err("No such campaign, or the person is not one of its targets (code "
                    "`no_campaign` or `not_target`)."),
        "413": _err("The body is larger than the configured limit (code `too_large`)."),
        "422": _err("Not a valid ack, a blank reason, or a body that names `by` (who "
                    "confirmed comes from the token) (code `invalid`)."),
        "503": UNAVAILABLE,
    },
}

GET_ACK_LINK: dict[str, Any] = {
    "operationId": "ackLinkPage",
    "summary": "The page an ack link opens: a confirm button (a GET never confirms, so link "
               "previews cannot confirm for people).",
    "parameters": [ACK_TOKEN],
    "responses": {
        "200": {"description": "The confirm page; once the campaign has ended, a page "
                               "saying there is nothing to confirm.", "content": HTML},
        "403": {"description": "The link is malformed, forged or expired.", "content": HTML},
        "429": RATE_LIMITED,
        "503": UNAVAILABLE,
    },
}

POST_ACK_LINK: dict[str, Any] = {
    "operationId": "ackLinkConfirm",
    "summary": "Confirm receipt via an ack link (the page's button). HTML when the client "
               "accepts text/html, else JSON.",
    "parameters": [ACK_TOKEN],
    "responses": {
        "200": {"description": "Recorded, duplicate or late (JSON); or a thank-you page "
                               "(HTML), which also says when the campaign is not found or "
                               "has ended (nothing to confirm).",
                "content": {"application/json": {"schema": _ref("AckStatus")}, **HTML}},
        "202": _json(_ref("AckStatus"), "`journaled`: Redis was unavailable; the "
                     "confirmation is in the engine's local journal (on disk) and is recorded "
                     "when Redis returns."),
        "403": _err("The link is malformed, forged or expired (code `forbidden`)."),
        "404": _err("The link's campaign or person is gone (code `no_campaign` or "
                    "`not_target`)."),
        "429": RATE_LIMITED,
        "503": UNAVAILABLE,
    },
}

HEALTHZ: dict[str, Any] = {
    "operationId": "healthz",
    "summary": "Liveness of this process's dependencies: up or down for anyone; the detail "
               "(Redis, broker, roles, feeds) with an officer's or admin's token.",
    "security": [{}, *BEARER],
    "responses": {
        "200": _json(_ref("Health"), "Redis and the MQTT broker are reachable."),
        "503": _json(_ref("Health"), "Redis or the broker is unreachable (with a token: "
                     "see the flags)."),
        "401": UNAUTHORIZED,
        "403": FORBIDDEN,
    },
}

METRICS: dict[str, Any] = {
    "operationId": "metrics",
    "summary": "Prometheus metrics (text exposition format).",
    "responses": {
        "200": {"description": "The metrics.",
                "content": {"text/plain": {"schema": {"type": "string"}}}},
        "503": UNAVAILABLE,
    },
}

CAP_FEED: dict[str, Any] = {
    "operationId": "capFeed",
    "summary": "Atom feed of the published (Public, non-Draft) CAP messages, newest first.",
    "parameters": [
        {"name": "limit", "in": "query", "required": False,
         "description": "How many of the newest messages to list (ASCII digits; the "
                        "feed is read at most every few seconds, so it may lag that much). "
                        "Other parameters are ignored; links start with the configured "
                        "public URL, whatever the Host header says.",
         "schema": {"type": "integer", "minimum": 1, "maximum": 500, "default": 100}},
        IF_NONE_MATCH,
    ],
    "responses": {
        "200": {"description": "The Atom document; each entry links its CAP 1.2 file.",
                "headers": NOT_MODIFIED["headers"],
                "content": {"application/atom+xml": {"schema": {"type": "string"}}}},
        "304": NOT_MODIFIED,
        "400": _err("`limit` is not a number 1..500 in ASCII digits, or given twice (code "
                    "`invalid`)."),
        "503": UNAVAILABLE,
    },
}

CAP_FILE: dict[str, Any] = {
    "operationId": "capAlert",
    "summary": "One published CAP message as a CAP 1.2 document.",
    "parameters": [ALERT_ID, IF_NONE_MATCH],
    "responses": {
        "200": {"description": "The CAP 1.2 <alert>.",
                "headers": NOT_MODIFIED["headers"],
                "content": {"application/cap+xml": {"schema": {"type": "string"}}}},
        "304": NOT_MODIFIED,
        "404": _err("No such published message; restricted or draft ones are 404 too "
                    "(code `not_found`)."),
        "503": UNAVAILABLE,
    },
}

OPENAPI_DOC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "warnbus HTTP API",
        "version": "1",
        "description": "Multi-channel warning dissemination with 叫应 (call-and-confirm). "
                       "JSON unless stated; every JSON error is "
                       '`{"error": {"code": "...", "message": "..."}}`.',
    },
    "paths": {
        "/api/v1/alerts": {"post": POST_ALERTS},
        "/api/v1/alerts/{alert_id}": {"get": GET_ALERT},
        "/api/v1/alerts/{alert_id}/record": {"get": GET_RECORD},
        "/api/v1/acks": {"post": POST_ACK},
        "/ack/{token}": {"get": GET_ACK_LINK, "post": POST_ACK_LINK},
        **openapi_feedback.PATHS,
        "/healthz": {"get": HEALTHZ},
        "/metrics": {"get": METRICS},
        "/cap/feed.atom": {"get": CAP_FEED},
        "/cap/alerts/{alert_id}.xml": {"get": CAP_FILE},
        PATH: {"get": {
            "operationId": "openapi",
            "summary": "This document.",
            "responses": {"200": _json({"type": "object"}, "The OpenAPI 3.1 document.")},
        }},
    },
    "components": {
        "schemas": {**SCHEMAS, **openapi_feedback.SCHEMAS},
        "securitySchemes": {"bearer": {
            "type": "http", "scheme": "bearer",
            "description": "A feed token (role `feed`: POST alerts under the CAP senders it "
                           "is configured for, inside its regions and categories) or an "
                           "officer token (role `officer`: reads, and console acks for "
                           "persons inside its regions); `admin` may do both.",
        }},
        "headers": {
            "RetryAfter": {"description": "Seconds to wait before retrying.",
                           "schema": {"type": "string"}},
            "ETag": {"schema": {"type": "string"}},
            "CacheControl": {"schema": {"type": "string"}},
        },
    },
}


async def serve(request: web.Request) -> web.Response:
    """`GET /api/v1/openapi.json` (public: it documents the API, it grants nothing)."""
    return web.json_response(OPENAPI_DOC)
