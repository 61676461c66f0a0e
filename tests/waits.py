"""Wait until something has happened: the one polling helper of the tests.

`until` (in a coroutine) and `until_sync` (in plain code or a thread) call `check` until it
returns something true and return that; after `within` seconds they fail with an
AssertionError that names what did not happen (`what`) and, when given, what was seen instead
(`detail()`). The check runs once more at the deadline, so a slow machine that only gets to it
late still passes.

Poll only what offers nothing to await: an `asyncio.Event`, a future or a task is awaited
(`asyncio.wait_for`). A check that nothing happens needs a moment to wait for too: wait until
something that comes later has happened (the next poll, a later message, the process's own
report), not for a fixed time.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")
#: How often a condition is checked, in seconds: often enough to add little to a test.
EVERY = 0.02


@overload
async def until(check: Callable[[], Awaitable[T]], what: str, *, within: float = ...,
                every: float = ..., detail: Callable[[], object] | None = ...) -> T: ...
@overload
async def until(check: Callable[[], T], what: str, *, within: float = ...,
                every: float = ..., detail: Callable[[], object] | None = ...) -> T: ...


async def until(
    check: Callable[[], T | Awaitable[T]], what: str, *, within: float = 5.0,
    every: float = EVERY, detail: Callable[[], object] | None = None,
) -> T:
    """Await `check()` (a plain or an async callable) until it is true; return its value.

    `detail` may be async too; its result is added to the failure's message.
    """
    end = time.monotonic() + within
    while True:
        got = check()
        if inspect.isawaitable(got):
            got = await got
        if got:
            return got
        if time.monotonic() >= end:
            seen = detail() if detail is not None else None
            if inspect.isawaitable(seen):
                seen = await seen
            raise AssertionError(_message(what, within, seen))
        await asyncio.sleep(every)


def until_sync(
    check: Callable[[], T], what: str, *, within: float = 5.0, every: float = EVERY,
    detail: Callable[[], object] | None = None,
) -> T:
    """Call `check()` until it is true; return its value (blocks: not in a coroutine)."""
    end = time.monotonic() + within
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() >= end:
            raise AssertionError(_message(what, within, detail() if detail else None))
        time.sleep(every)


def _message(what: str, within: float, seen: object) -> str:
    text = f"timed out after {within:g} s waiting for {what}"
    return f"{text}: {seen}" if seen is not None and seen != "" else text
