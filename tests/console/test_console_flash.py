"""A message after an action (已停止叫应…, 已解除…) is shown once: signed for the session, the
page and the moment of its redirect. An address kept, bookmarked or shared shows nothing
later (the page's script also drops it from the address at once: test_console_browser_live),
and a signature cannot be moved to another time.
"""

from __future__ import annotations

import time
from urllib.parse import parse_qs, quote, urlsplit

from console_kit import sign_in

from warnbus.web.console.auth import Session
from warnbus.web.console.base import FLASH_TTL_S, flash_sig

HTML = {"Accept": "text/html"}
SAID = "已解除 dora 的登录锁定"


async def test_a_message_is_shown_only_soon_after_its_redirect(web) -> None:  # type: ignore[no-untyped-def]
    client, _h = web
    s = await sign_in(client, "root")
    r = await client.post("/console/admin/users/dora/unlock", data={"_csrf": s.csrf},
                          allow_redirects=False)
    assert r.status == 303
    location = r.headers["Location"]
    text = await (await client.get(location, headers=HTML)).text()
    assert f'<p class="ok">{SAID}</p>' in text
    q = parse_qs(urlsplit(location).query)
    assert q["msg"] == [SAID] and q["mt"][0].isdigit()
    path = urlsplit(location).path

    async def shown(at: int, sig: str) -> bool:
        page = await client.get(f"{path}?mt={at}&ms={sig}&msg={quote(SAID)}", headers=HTML)
        return SAID in await page.text()

    # The same session's own signature, for a moment long gone: nothing is said.
    sess = Session("root", s.csrf, 0.0)
    old = int(time.time()) - FLASH_TTL_S - 5
    assert not await shown(old, flash_sig(sess, path, SAID, old))
    # The redirect's signature moved to another moment, or without one: nothing either.
    assert not await shown(int(q["mt"][0]) + 1, q["ms"][0])
    page = await client.get(f"{path}?ms={q['ms'][0]}&msg={quote(SAID)}", headers=HTML)
    assert SAID not in await page.text()
    # Signed now, for this session and page, it is said (the signature is what counts).
    now = int(time.time())
    assert await shown(now, flash_sig(sess, path, SAID, now))
