"""A WeCom message to the approvers on duty for each new message (a feed's, a token's, the
console's) and each draft waiting for approval: optional, `[console] notify_webhook` (a WeCom
group robot's webhook URL), `notify_mention` (the WeCom user ids to @ in it).

Every API process that serves the console polls (`DutyNotifier.run`); a message or draft is
sent once over all of them (`SET NX` on `keys.console_notified`). Only what arrived after the
process started (less `LOOKBACK_S`) is sent: a restart does not repeat the day's alerts. A
failed post is logged and not retried: the desk's own notice and beep do not depend on it.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import structlog

from warnbus.runtime.context import Context
from warnbus.state import keys
from warnbus.web.console import html
from warnbus.web.console.desk import WATCHED, messages, pending_drafts

log = structlog.get_logger("warnbus.web.console.notify")

#: What arrived this long before the process started is still sent (a restart mid-alert).
LOOKBACK_S = 120.0
#: How long "sent" is remembered (an item older than this is never watched anyway).
REMEMBER_S = 7 * 24 * 3600
#: Most characters of a robot's text message (WeCom refuses longer ones: 2,048 bytes).
TEXT_MAX = 600


def message_text(msg: dict[str, Any], base_url: str) -> str:
    """What the duty group reads of a new message (`desk.messages`)."""
    kind = html.MSG_TYPE_ZH.get(msg["type"], msg["type"])
    level = html.LEVEL_ZH.get(msg["level"], "")
    drill = "【演练】" if msg["drill"] else ""
    return (f"{drill}【新预警·{kind}】{level}{msg['headline']}\n来源：{msg['source']}\n"
            f"接收：{html.bj(msg['at'], '%m-%d %H:%M:%S')}（北京时间）\n"
            f"查看：{base_url}/console/campaigns/{msg['cid']}")


def draft_text(draft: dict[str, Any], base_url: str) -> str:
    """What the duty group reads of a draft waiting for approval (`desk.pending_drafts`)."""
    kind = html.KIND_ZH.get(draft["kind"], draft["kind"])
    level = html.LEVEL_ZH.get(draft["level"], "")
    return (f"【待审批·{kind}】{level}{draft['headline']}\n起草：{draft['by']}\n"
            f"审批：{base_url}/console/drafts/{draft['id']}")


class DutyNotifier:
    """Posts each new message and draft waiting for approval to a WeCom group robot, once."""

    def __init__(self, ctx: Context, webhook: str, mention: tuple[str, ...], base_url: str,
                 started: float, interval_s: float = 2.0) -> None:
        self._ctx = ctx
        self._webhook = webhook
        self._mention = list(mention)
        self._base = base_url.rstrip("/")
        self._since = started - LOOKBACK_S
        self.interval_s = interval_s
        self._session: aiohttp.ClientSession | None = None

    async def poll_once(self) -> int:
        """Send what is new and not sent by any process yet; how many were sent."""
        ctx = self._ctx
        newest = [(aid, at) for aid, at in await ctx.store.messages.newest(0, WATCHED)
                  if at >= self._since]
        texts = [(m["id"], message_text(m, self._base)) for m in await messages(ctx, newest)]
        texts += [(d["id"], draft_text(d, self._base)) for d in await pending_drafts(ctx)
                  if d["at"] >= self._since]
        sent = 0
        for item, text in reversed(texts):  # the oldest first
            if await ctx.redis.set(keys.console_notified(item), "1", nx=True, ex=REMEMBER_S):
                sent += await self._post(item, text)
        return sent

    async def _post(self, item: str, text: str) -> int:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        body = {"msgtype": "text", "text": {"content": text[:TEXT_MAX],
                                            "mentioned_list": self._mention}}
        try:
            async with self._session.post(self._webhook, json=body) as r:
                answer = await r.json(content_type=None) if r.status == 200 else {}
                if r.status != 200 or answer.get("errcode", 0) != 0:
                    log.warning("duty notice refused", item=item, status=r.status,
                                errcode=answer.get("errcode"), errmsg=answer.get("errmsg"))
                    return 0
        except (aiohttp.ClientError, TimeoutError, ValueError) as e:
            log.warning("duty notice not sent", item=item, error=type(e).__name__)
            return 0
        return 1

    async def run(self) -> None:
        """Poll until cancelled; an error of one poll is logged, the next one tries again."""
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("duty notices: poll failed")
            await asyncio.sleep(self.interval_s)

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
