"""The console's browser tier: headless Chromium (Debian's, driven by Playwright), a live
engine behind a test server, signed-in pages. Screenshots go to artifacts/screenshots/.

Imported by the browser test modules: without /usr/bin/chromium or playwright they are
skipped locally, and fail under CI=true.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import shapely
from aiohttp.test_utils import TestServer
from console_kit import PASSWORD, add_users

from tests.engine.helpers import Harness, make_harness
from warnbus.web.api import make_web_app
from warnbus.web.console import svgmap
from warnbus.web.console.base import Console, ConsoleSettings

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         # A duty desk rings without a click first (a browser otherwise waits for one).
         "--autoplay-policy=no-user-gesture-required"]
SHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
#: The screenshots docs/console.md shows; `shot(..., doc=)` refreshes them only when asked
#: (WARNBUS_DOC_SHOTS=1, as scripts/console-screenshots.sh does), never in an ordinary run.
DOC_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
DOC_SHOTS = os.environ.get("WARNBUS_DOC_SHOTS", "") == "1"
IN_CI = os.environ.get("CI", "").lower() == "true"
#: The two viewports the console is tried on (and its documentation screenshots taken at).
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
PHONE: dict[str, Any] = {"viewport": {"width": 390, "height": 844}, "is_mobile": True,
                         "has_touch": True}


def _unavailable(reason: str) -> None:
    # Locally a missing browser skips; under CI=true the test script installs it, so it fails.
    if IN_CI:
        pytest.fail(f"{reason}; CI=true, so this is a broken setup, not a skip", pytrace=False)
    pytest.skip(reason, allow_module_level=True)


if not Path(CHROMIUM).exists():
    _unavailable(f"{CHROMIUM} is not installed: apt-get install chromium "
                 "(scripts/bootstrap.sh does)")
try:
    from playwright import async_api
except ImportError:
    _unavailable("playwright is not installed: pip install -e '.[test]' "
                 "(scripts/bootstrap.sh does)")


@pytest_asyncio.fixture
async def live(redis_url: str) -> AsyncIterator[tuple[str, Harness, Any]]:
    async with serve(redis_url) as got:
        yield got


@contextlib.asynccontextmanager
async def serve(redis_url: str, **harness: Any) -> AsyncIterator[tuple[str, Harness, Any]]:
    """A live engine (`harness`: make_harness's options) with the console and the test users
    behind a test server, and a headless Chromium: (base URL, harness, browser)."""
    h = await make_harness(redis_url, **harness)
    await add_users(h)
    con = Console(h.app, None, None)  # type: ignore[arg-type]
    await con.save_settings(ConsoleSettings(sse_interval_s=0.2))
    server = TestServer(make_web_app(h.app), host="127.0.0.1")
    await server.start_server()
    SHOTS.mkdir(parents=True, exist_ok=True)
    async with async_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield str(server.make_url("")).rstrip("/"), h, browser
        finally:
            await browser.close()
    await server.close()
    await h.app.close()


async def signed_page(browser: Any, base: str, user: str, **ctx: Any) -> Any:
    # bypass_csp: wait_for_function evaluates strings, which the console's CSP rightly forbids.
    context = await browser.new_context(locale="zh-CN", accept_downloads=True, bypass_csp=True,
                                        **ctx)
    page = await context.new_page()
    page.set_default_timeout(15_000)
    page.on("dialog", lambda d: asyncio.ensure_future(d.accept()))
    await page.goto(f"{base}/")  # the root redirects to the console, which asks to sign in
    assert "/console/login" in page.url
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button.primary")
    await page.wait_for_url(f"{base}/console/")
    return page


async def phone_of(browser: Any, signed: Any) -> Any:
    """A phone (390 px) signed in as the user of page `signed`."""
    ctx = await browser.new_context(locale="zh-CN", bypass_csp=True,
                                    storage_state=await signed.context.storage_state(), **PHONE)
    page = await ctx.new_page()
    page.set_default_timeout(15_000)
    return page


async def shot(page: Any, name: str, *, doc: str = "", full_page: bool = False) -> None:
    """A screenshot under artifacts/screenshots/`name`; with `doc`, the documentation's copy
    docs/img/`doc` too, when WARNBUS_DOC_SHOTS=1."""
    path = SHOTS / name
    await page.screenshot(path=str(path), full_page=full_page)
    if doc and DOC_SHOTS:
        await asyncio.to_thread(shutil.copyfile, path, DOC_IMG / doc)


async def to_screen(page: Any, map_sel: str, x: float, y: float) -> tuple[float, float]:
    """Map units -> page pixels, as the browser lays out an SVG (xMidYMid meet)."""
    box = await page.locator(map_sel).bounding_box()
    vx, vy, vw, vh = (float(v) for v in (await page.get_attribute(map_sel, "viewBox")).split())
    k = min(box["width"] / vw, box["height"] / vh)
    ox = box["x"] + (box["width"] - vw * k) / 2
    oy = box["y"] + (box["height"] - vh * k) / 2
    return ox + (x - vx) * k, oy + (y - vy) * k


async def grid_point(page: Any, map_sel: str, h: Harness, gid: str) -> tuple[float, float]:
    """Page pixels of a point inside grid `gid` on the map `map_sel` (a click there hits it)."""
    grid = shapely.Polygon([(lon, lat) for lat, lon in h.ctx.registry.data.grids[gid].polygon])
    inner = grid.point_on_surface()
    x, y = svgmap.geometry(h.ctx.registry).proj.xy(inner.y, inner.x)
    return await to_screen(page, map_sel, x, y)
