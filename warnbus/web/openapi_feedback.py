"""The OpenAPI description of the reports after the ack (`web/feedback.py`), joined into
`openapi.OPENAPI_DOC`: the ack link's report and the console's entry."""

from __future__ import annotations

from typing import Any

from warnbus.domain.feedback import MAX_COUNT, MAX_TEXT, MAX_URL, FeedbackKind

_STATUS = {"type": "object", "required": ["status"],
           "properties": {"status": {"type": "string", "enum": ["recorded", "journaled"]}}}


def _report_fields() -> dict[str, Any]:
    return {
        "kind": {"type": "string", "enum": [k.value for k in FeedbackKind],
                 "description": "arrived 已到岗, evacuated 已转移 N 人, hazard 险情/灾情, "
                                "zero 零报告."},
        "count": {"type": ["integer", "string"], "minimum": 0, "maximum": MAX_COUNT,
                  "description": "People moved so far (a total, not an increment); only "
                                 "with `evacuated`, and needed there."},
        "text": {"type": "string", "maxLength": MAX_TEXT,
                 "description": "What the 险情/灾情 is; only with `hazard`, and needed there."},
        "photo": {"type": "string", "maxLength": MAX_URL, "pattern": "^https?://",
                  "description": "A photo link of the 险情; only with `hazard`."},
    }


SCHEMAS: dict[str, Any] = {
    "Report": {"type": "object", "required": ["kind"], "additionalProperties": False,
               "properties": _report_fields()},
    "ConsoleReport": {
        "type": "object", "required": ["campaign_id", "person_id", "kind"],
        "additionalProperties": False,
        "description": "Who entered it is the token (its name is kept as who entered the "
                       "report); a body that names `by` is refused (422).",
        "properties": {"campaign_id": {"type": "string"}, "person_id": {"type": "string"},
                       **_report_fields()},
    },
    "ReportStatus": _STATUS,
}


def _responses(errors: dict[str, Any]) -> dict[str, Any]:
    def err(description: str) -> dict[str, Any]:
        return {"description": description, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/Error"}}}}

    ok = {"application/json": {"schema": {"$ref": "#/components/schemas/ReportStatus"}}}
    return {
        "200": {"description": "Kept (JSON), or a thank-you page with the form again (HTML).",
                "content": {**ok, "text/html": {"schema": {"type": "string"}}}},
        "202": {"description": "`journaled`: Redis was unavailable; the report is in the "
                               "engine's local journal and kept when Redis returns.",
                "content": ok},
        "404": err("No such campaign, or the person is not one of its targets."),
        "409": err("The person has not confirmed: a report comes after the ack "
                   "(code `not_confirmed`)."),
        "422": err("A field is not valid; the message names it (code `invalid`)."),
        "429": err("Too many requests, or the person has made the most reports one campaign "
                   "keeps (100; code `too_many`)."),
        **errors,
    }


PATHS: dict[str, Any] = {
    "/ack/{token}/feedback": {"post": {
        "operationId": "ackLinkReport",
        "summary": "The ack link's person reports after confirming "
                   "(到岗, 转移 N 人, 险情, 零报告): "
                   "form fields or JSON. HTML when the client accepts text/html.",
        "parameters": [{"name": "token", "in": "path", "required": True,
                        "schema": {"type": "string", "minLength": 1}}],
        "requestBody": {"required": True, "content": {
            "application/x-www-form-urlencoded": {
                "schema": {"$ref": "#/components/schemas/Report"}},
            "application/json": {"schema": {"$ref": "#/components/schemas/Report"}}}},
        "responses": _responses({"403": {
            "description": "The link is malformed, forged or expired (code `forbidden`).",
            "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Error"}}}}}),
    }},
    "/api/v1/feedback": {"post": {
        "operationId": "postConsoleReport",
        "summary": "A report entered for a person (phoned in), kept as entered by the token.",
        "security": [{"bearer": []}],
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"$ref": "#/components/schemas/ConsoleReport"}}}},
        "responses": _responses({"401": {
            "description": "No bearer token, an unknown one, or a revoked one.",
            "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Error"}}}}, "403": {
            "description": "The token lacks the `officer` role, or the person serves outside "
                           "the token's regions (code `forbidden`).",
            "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Error"}}}}}),
    }},
}
