"""What an officer's token reads is bounded by its regions, as what it confirms is.

The 叫应 record names every person called, what each typed as a reason and what providers
said; a township's officer token reads only threads that reached its township, and of those
only the rows of people serving in it (and of its villages' loudspeakers). A county officer
token reads everything.
"""

from __future__ import annotations

from typing import Any

from seckit import OFFICER, TOWN_OFFICER, WIDE, auth, cap_xml

from warnbus.flow.intake import root_alert_id


async def thread(client: Any, h: Any, identifier: str, codes: tuple[str, ...]) -> str:
    r = await client.post("/api/v1/alerts", data=cap_xml(identifier, codes), headers=auth(WIDE))
    assert r.status == 202, await r.text()
    await h.drain()
    return root_alert_id((await r.json())["campaign_id"])


def township_of(h: Any, target: str) -> set[str]:
    """The townships a record row's person serves in (their grids' villages, or region)."""
    if target.startswith("area:"):
        return {target[5:14]}
    reg = h.ctx.registry
    return {reg.data.grids[g].village[:9] for g in reg.grids_held_by(target)} or {
        reg.data.persons[target].region[:9]}


async def test_a_township_officer_reads_only_threads_reaching_it(api_client: Any) -> None:
    client, h = api_client
    far = await thread(client, h, "R-105", ("430623105000",))
    for path in (f"/api/v1/alerts/{far}", f"/api/v1/alerts/{far}/record",
                 f"/api/v1/alerts/{far}/record?format=csv"):
        r = await client.get(path, headers=auth(TOWN_OFFICER))
        err = (await r.json())["error"]
        assert r.status == 403 and err["code"] == "forbidden", err
        assert err["message"] == ("alert_id: this thread reaches no village inside the regions "
                                  "of town-duty (430623101)"), err
        r = await client.get(path, headers=auth(OFFICER))
        assert r.status == 200, await r.text()
    # No such alert: 404 for a township's token as for anyone (nothing to be bounded).
    r = await client.get("/api/v1/alerts/al_ffffffffffffffffffff", headers=auth(TOWN_OFFICER))
    assert r.status == 404


async def test_a_township_officer_reads_its_own_peoples_rows_only(api_client: Any) -> None:
    client, h = api_client
    both = await thread(client, h, "R-101-102", ("430623101000", "430623102000"))
    r = await client.get(f"/api/v1/alerts/{both}", headers=auth(TOWN_OFFICER))
    assert r.status == 200 and (await r.json())["counts"]["targets"] > 0

    async def rows(token: str) -> list[dict[str, str]]:
        r = await client.get(f"/api/v1/alerts/{both}/record", headers=auth(token))
        assert r.status == 200, await r.text()
        return (await r.json())["rows"]  # type: ignore[no-any-return]

    county, town = await rows(OFFICER), await rows(TOWN_OFFICER)
    served = {x["person_id"]: township_of(h, x["person_id"]) for x in county}
    assert {"430623101", "430623102"} <= set().union(*served.values())
    assert any(x["person_id"].startswith("area:430623101") for x in town), "speakers too"
    assert town == [x for x in county if served[x["person_id"]] == {"430623101"}]
    r = await client.get(f"/api/v1/alerts/{both}/record?format=csv", headers=auth(TOWN_OFFICER))
    lines = (await r.text()).splitlines()
    assert r.status == 200 and len(lines) == len(town) + 1
