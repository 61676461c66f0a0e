"""The largest feed entries are read in a child process (warnbus.ingest.child): the same
alert as in a worker thread, the same errors, and a child that dies costs only a retry."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Iterator

import pytest

from tests.ingest.signing import issue, sign
from warnbus.errors import IngestError
from warnbus.ingest import child
from warnbus.ingest.child import CHILD_BODY, ReaderStopped, read_cap, read_cap_off_loop
from warnbus.tools.bench.hostile_loads import Target, build

LIMITS = {"max_bytes": 8 * 1024 * 1024, "max_areas": 1000, "max_area_entries": 10_000}
VILLAGES = tuple(f"430623{t:03d}{v:03d}" for t in range(100, 113) for v in range(1, 9))


@pytest.fixture(scope="module")
def signed() -> tuple[bytes, bytes]:
    """The largest alert the engine accepts, signed (several MB); its CA (PEM)."""
    body = build("max_accepted", Target("http://x", "", VILLAGES, ()), 1, 0)[0].body
    ca = issue("test feed CA", ca=True)
    return sign(body, issue("test met bureau", issuer=ca), [ca.cert]), ca.pem


@pytest.fixture(autouse=True)
def _own_child() -> Iterator[None]:
    yield
    child.shutdown()


async def test_the_child_reads_the_same_alert_as_a_thread(signed: tuple[bytes, bytes]) -> None:
    body, ca = signed
    assert len(body) >= CHILD_BODY
    in_child = await read_cap_off_loop(body, "require", [ca], **LIMITS)
    assert child._pool is not None, "a body this large is read in the child"
    assert in_child == read_cap(body, "require", [ca], **LIMITS)


async def test_errors_cross_as_they_are(signed: tuple[bytes, bytes]) -> None:
    body, ca = signed
    tampered = body.replace(b"<headline>", b"<headline>X", 1)
    assert tampered != body
    other = issue("another CA", ca=True).pem
    for bad, trust, limits in ((tampered, [ca], LIMITS), (body, [other], LIMITS),
                               (body, [ca], {**LIMITS, "max_areas": 10})):
        with pytest.raises(IngestError) as thread:
            read_cap(bad, "require", trust, **limits)
        with pytest.raises(IngestError) as child_err:
            await read_cap_off_loop(bad, "require", trust, **limits)
        got, want = child_err.value, thread.value
        assert (got.code, got.reason, got.field) == (want.code, want.reason, want.field)


async def test_a_child_that_dies_is_replaced(signed: tuple[bytes, bytes]) -> None:
    body, ca = signed
    await read_cap_off_loop(body, "require", [ca], **LIMITS)  # the child is up
    (proc,) = multiprocessing.active_children()
    reading = asyncio.create_task(read_cap_off_loop(body, "require", [ca], **LIMITS))
    await asyncio.sleep(0.05)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    with pytest.raises(ReaderStopped):
        await reading
    again = await read_cap_off_loop(body, "require", [ca], **LIMITS)
    assert again == read_cap(body, "require", [ca], **LIMITS)
