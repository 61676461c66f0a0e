"""Read a large signed CAP body in a child process, so no thread of the engine holds the GIL.

A feed may serve entries of several MB (`FeedConfig.max_bytes`). In a worker thread, their
XML-DSig check and parse (lxml's canonicalisation and tree building hold the GIL in C calls
of several ms each, ~1 s in all for the largest) kept the event loop waiting for the GIL:
up to ~70 ms at a time (`warnbus bench hostile`, load `signed_feed`). A child process has a
GIL of its own. It returns the alert's JSON form, bytes that cross the pipe as one copy, and
the engine decodes that form a level at a time in a worker thread, as it does for the API's
JSON bodies (`jsonform.alert_from_json`: no call holds the GIL for more than a few ms).

One child, started on first use with `spawn` (the engine has threads: a forked child could
inherit a lock held by one), and kept; it reads one body at a time. A child that dies (out of
memory, killed) is replaced at the next body, and the body it was reading raises
`ReaderStopped`, an infrastructure error: a feed entry is then read again at its next poll,
never marked as read.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from warnbus.domain.models import Alert
from warnbus.errors import ConfigError, IngestError
from warnbus.ingest import off_loop
from warnbus.ingest.cap import parse_cap
from warnbus.ingest.jsonform import alert_from_json, alert_to_json
from warnbus.ingest.signature import verify_signature

#: Bodies at least this large are read in the child (real feed entries are 2-20 KB; below
#: this a worker thread holds the GIL for too little to matter, and skips the round trip).
CHILD_BODY = 256 * 1024

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None


class ReaderStopped(RuntimeError):
    """The child reading a body stopped before it answered (the body is not judged)."""


def _executor() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ProcessPoolExecutor(max_workers=1,
                                        mp_context=multiprocessing.get_context("spawn"))
        return _pool


def _discard(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


def shutdown() -> None:
    """Stop the child, if one was started (an engine that stops; tests)."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.shutdown(wait=True, cancel_futures=True)


def read_cap(body: bytes, policy: str, trust: Sequence[bytes], *, max_bytes: int,
             max_areas: int, max_area_entries: int) -> Alert:
    """Check a CAP XML body's signature under `policy` (`verify_signature`), then parse it."""
    if policy != "ignore":
        verify_signature(body, policy, trust)
    return parse_cap(body, max_bytes=max_bytes, max_areas=max_areas,
                     max_area_entries=max_area_entries)


def _in_child(body: bytes, policy: str, trust: tuple[bytes, ...], max_bytes: int,
              max_areas: int, max_area_entries: int
              ) -> tuple[str, bytes | tuple[str, str, str | None]]:
    """`read_cap` in the child: the JSON form, or the error's parts (an exception that
    crosses the pipe is rebuilt from its args, which ours do not hold)."""
    try:
        alert = read_cap(body, policy, trust, max_bytes=max_bytes, max_areas=max_areas,
                         max_area_entries=max_area_entries)
        return "ok", alert_to_json(alert)
    except IngestError as e:
        return "ingest", (e.code, e.reason, e.field)
    except ConfigError as e:
        return "config", ("config", str(e), None)


async def read_cap_off_loop(body: bytes, policy: str, trust: Sequence[bytes], *,
                            max_bytes: int, max_areas: int, max_area_entries: int) -> Alert:
    """`read_cap` away from the event loop: in a worker thread, or in the child from
    CHILD_BODY bytes on. Raises as `read_cap` does, and ReaderStopped when the child died
    meanwhile."""
    if len(body) < CHILD_BODY:
        return await off_loop(len(body), read_cap, body, policy, trust, max_bytes=max_bytes,
                              max_areas=max_areas, max_area_entries=max_area_entries)
    pool = _executor()
    loop = asyncio.get_running_loop()
    try:
        kind, out = await loop.run_in_executor(pool, _in_child, body, policy, tuple(trust),
                                               max_bytes, max_areas, max_area_entries)
    except BrokenProcessPool as e:
        _discard(pool)
        raise ReaderStopped("the process reading a large CAP body stopped") from e
    if isinstance(out, bytes):
        return await asyncio.to_thread(alert_from_json, out)
    code, message, field = out
    if kind == "config":
        raise ConfigError(message)
    raise IngestError(code, message, field)
