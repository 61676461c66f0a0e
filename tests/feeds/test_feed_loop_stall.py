"""A feed entry is checked and parsed off the event loop: a hostile feed serving the largest
signed CAP it may stalls no request or timer of the process meanwhile."""

from __future__ import annotations

import asyncio
import gc
import time

from feedkit import Kit, atom, feed_settings

from tests.ingest.signing import issue, sign
from tests.timing import worst_lag
from warnbus.domain.models import RegionLevel
from warnbus.ingest import parse_cap
from warnbus.ingest.signature import verify_signature
from warnbus.tools.bench.hostile_loads import Target, build


def largest_signed(kit: Kit) -> tuple[bytes, bytes]:
    """The largest alert the engine accepts (4 MB: 1,000 areas, a ~150,000-point polygon),
    signed; and the CA certificate that signed it (PEM)."""
    regions = kit.h.ctx.registry.data.regions
    villages = tuple(sorted(c for c, r in regions.items() if r.level is RegionLevel.VILLAGE))
    body = build("max_accepted", Target("http://x", "", villages, ()), 1, 0)[0].body
    ca = issue("test feed CA", ca=True)
    return sign(body, issue("test met bureau", issuer=ca), [ca.cert]), ca.pem


async def test_a_huge_signed_entry_does_not_stall_the_loop(kit: Kit, tmp_path) -> None:  # type: ignore[no-untyped-def]
    body, ca = largest_signed(kit)
    (tmp_path / "ca.pem").write_bytes(ca)
    # What it costs on the loop (here, deliberately, before the probe runs).
    t = time.perf_counter()
    verify_signature(body, "require", [ca])
    alert = parse_cap(body, max_bytes=len(body))
    on_loop = time.perf_counter() - t
    assert on_loop > 0.2, f"the entry is not costly enough to show anything ({on_loop:.3f}s)"

    kit.server.put("/f.atom", atom([{"id": "big", "href": kit.server.url("/big.xml")}]))
    kit.server.put("/big.xml", body)
    feed = feed_settings("big", kit.server.url("/f.atom"), senders=(alert.sender,),
                         signature="require", trust=(str(tmp_path / "ca.pem"),))
    poller = kit.poller(feed)
    gc.freeze()  # as Engine.start does
    try:
        stop = asyncio.Event()
        probe = asyncio.create_task(worst_lag(stop))
        await asyncio.sleep(0.05)
        res = await poller.poll_once()
        stop.set()
        lag = await probe
    finally:
        gc.unfreeze()
    assert res.counts["accepted"] == 1, res
    assert lag < max(0.1, on_loop / 4), (
        f"the loop stalled {lag:.3f}s while the entry ({on_loop:.3f}s to check and parse) "
        "was read")
