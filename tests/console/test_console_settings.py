"""Which levels need a second person: `[console] approval_levels` (file or environment) until
an admin chooses on the admin page (kept in Redis), and again after "use the default"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient
from console_kit import console_client, red_form, sign_in

from tests.engine.helpers import Harness
from warnbus.errors import ConfigError
from warnbus.runtime.config import ConsoleConfig, load_settings

ENV = "WARNBUS_CONSOLE__APPROVAL_LEVELS"


@pytest.mark.parametrize(("value", "levels"), [
    ("red", ("red",)), ("red,orange,yellow", ("red", "orange", "yellow")),
    ('["red", "blue"]', ("red", "blue")), ("orange yellow", ("orange", "yellow")),
    ("none", ()),
])
def test_approval_levels_from_the_environment(value: str, levels: tuple[str, ...]) -> None:
    assert load_settings(None, env={ENV: value}).console.approval_levels == levels


def test_approval_levels_default_file_and_errors(tmp_path: Path) -> None:
    assert load_settings(None, env={}).console.approval_levels == ("red", "orange")
    p = tmp_path / "w.toml"
    p.write_text('[console]\napproval_levels = ["red"]\n', encoding="utf-8")
    assert load_settings(p, env={}).console.approval_levels == ("red",)
    assert load_settings(p, env={ENV: "yellow"}).console.approval_levels == ("yellow",)
    with pytest.raises(ConfigError, match="approval_levels"):
        load_settings(None, env={ENV: "purple"})
    with pytest.raises(ConfigError, match=ENV):
        load_settings(None, env={ENV: "[]"})
    p.write_text('[console]\napproval = ["red"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="approval"):
        load_settings(p, env={})


def _red_only(h: Harness) -> None:
    # As if started with WARNBUS_CONSOLE__APPROVAL_LEVELS=red: orange needs nobody else.
    h.app.settings = msgspec.structs.replace(h.app.settings, console=ConsoleConfig(("red",)))


@pytest_asyncio.fixture
async def web(redis_url: str) -> AsyncIterator[tuple[TestClient, Harness]]:  # type: ignore[type-arg]
    async with console_client(redis_url, _red_only) as pair:
        yield pair


async def _needs_second_person(client: TestClient, level: str) -> bool:  # type: ignore[type-arg]
    s = await sign_in(client, "dora")
    r = await client.post("/console/compose", data=red_form(s.csrf, level=level),
                          allow_redirects=False)
    assert r.status == 303, await r.text()
    return "/drafts/" in r.headers["Location"]


async def _save(client: TestClient, *fields: tuple[str, str]) -> None:  # type: ignore[type-arg]
    s = await sign_in(client, "root")
    r = await client.post("/console/admin/settings", data=[
        ("_csrf", s.csrf), ("sms_price", "0.05"), ("voice_price", "0.12"), ("sender_name", ""),
        ("org_code", ""), *fields], allow_redirects=False)
    assert r.status == 303


async def test_config_default_until_an_admin_chooses(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    # Nothing in Redis: the configuration decides (red only).
    assert await _needs_second_person(client, "red")
    assert not await _needs_second_person(client, "orange")
    await sign_in(client, "root")
    page = await (await client.get("/console/admin", headers={"Accept": "text/html"})).text()
    assert 'name="approval_default" value="1" checked' in page
    assert "[console] approval_levels：红色" in page
    # The admin chooses: Redis now overrides the configuration.
    await _save(client, ("approval", "red"), ("approval", "orange"))
    assert await _needs_second_person(client, "orange")
    await sign_in(client, "root")
    page = await (await client.get("/console/admin", headers={"Accept": "text/html"})).text()
    assert 'name="approval_default" value="1">' in page  # no longer ticked
    # "Use the configuration's default" again: orange is back to one person.
    await _save(client, ("approval", "orange"), ("approval_default", "1"))
    assert not await _needs_second_person(client, "orange")
    assert await _needs_second_person(client, "red")


async def test_preview_tells_whether_approval_is_needed(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    s = await sign_in(client, "dora")
    for level, needed in (("red", True), ("orange", False)):
        r = await client.post("/console/compose/preview", data=red_form(s.csrf, level=level))
        assert (await r.json())["preview"]["needs_approval"] is needed
