"""A door-to-door order sends someone out only for a grid of the campaign, while it is live.

The order messages the grid's village head with the campaign's warning; posted for a grid the
campaign does not reach, it would send that warning to a village it is not about, and for a
cancelled campaign the console said 已通知…入户叫应 while the engine dropped the message.
"""

from __future__ import annotations

from urllib.parse import unquote

from console_kit import sign_in

from tests.engine.helpers import cap_alert
from warnbus.domain.models import MsgType, Reference
from warnbus.flow.credentials import ENGINE
from warnbus.flow.intake import accept
from warnbus.state import keys


async def test_door_to_door_only_in_a_grid_of_a_live_campaign(web) -> None:  # type: ignore[no-untyped-def]
    client, h = web
    alert = cap_alert(codes=("430623101000",))
    cid = (await accept(h.ctx, alert, ENGINE)).campaign_id
    await h.drain()
    s = await sign_in(client, "dora")
    ours = sorted(await h.ctx.store.grids(cid))[0]
    beyond = next(g for g in sorted(h.ctx.registry.data.grids)
                  if h.ctx.registry.data.grids[g].village.startswith("430623103"))

    async def order(grid: str) -> tuple[int, str]:
        r = await client.post(f"/console/campaigns/{cid}/door", allow_redirects=False,
                              data={"_csrf": s.csrf, "grid": grid})
        return r.status, unquote(r.headers.get("Location", ""))

    assert (await order(beyond))[0] == 404
    cancel = cap_alert("43062304100000_20260715053000_2", msg_type=MsgType.CANCEL,
                       codes=("430623101000",),
                       references=(Reference(alert.sender, alert.identifier, "x"),))
    await accept(h.ctx, cancel, ENGINE)
    await h.drain()
    sent = len(h.sent())
    status, location = await order(ours)
    assert status == 303 and location.endswith("msg=该预警已解除，未安排入户叫应"), location
    await h.drain()
    assert len(h.sent()) == sent
    assert not await h.ctx.redis.hgetall(keys.console_campaign(cid)), "no order recorded"
