"""`warnbus serve` creates the console's admin on first start and prints the password once."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from warnbus.runtime.services import free_port


@pytest.mark.slow
async def test_serve_prints_the_admin_password_once_and_it_signs_in(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "WARNBUS_DATA_DIR": str(tmp_path), "WARNBUS_LOG_LEVEL": "warning"}
    env.pop("WARNBUS_ADMIN_PASSWORD", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "warnbus.runtime.cli", "serve", "--port", str(port), "--role", "api",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=env,
        start_new_session=True)
    try:
        out = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and "console admin created" not in out:
            line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()  # type: ignore[union-attr]
            if not line:
                break
            out += line
        m = re.search(r"console admin created: user admin, password (\S+)", out)
        assert m, out
        base = f"http://127.0.0.1:{port}"
        jar = aiohttp.CookieJar(unsafe=True)  # cookies for 127.0.0.1
        async with aiohttp.ClientSession(cookie_jar=jar, headers={"Accept": "text/html"}) as http:
            async with http.get(f"{base}/") as r:  # / -> /console/ -> sign-in page
                text = await r.text()
                assert "/console/login" in str(r.url) and "登录" in text
            token = re.search(r'name="_csrf" value="([^"]+)"', text)
            assert token
            async with http.post(f"{base}/console/login", data={
                    "_csrf": token.group(1), "username": "admin", "password": m.group(1),
                    "next": "/console/"}) as r:
                assert r.status == 200 and "值守台" in await r.text()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 20)
