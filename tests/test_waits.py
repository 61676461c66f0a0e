"""tests/waits.py: the tests' one wait-until helper returns what it waited for, or fails
naming what did not happen."""

from __future__ import annotations

import asyncio
import threading

import pytest

from tests.waits import until, until_sync


async def test_until_returns_the_checks_value_plain_or_awaited() -> None:
    box: list[int] = []
    asyncio.get_running_loop().call_later(0.05, box.append, 7)
    assert await until(lambda: box[:], "a value") == [7]

    async def later() -> str | None:
        return "ok" if box else None

    assert await until(later, "an async value") == "ok"


async def test_until_names_what_did_not_happen_and_what_was_seen() -> None:
    async def seen() -> str:
        return "3 of 5 sent"

    with pytest.raises(AssertionError, match=r"after 0.1 s waiting for the wave: 3 of 5 sent"):
        await until(lambda: False, "the wave", within=0.1, detail=seen)
    with pytest.raises(AssertionError, match=r"waiting for nothing$"):
        await until(lambda: 0, "nothing", within=0.05)


async def test_until_checks_again_after_a_wait_that_overran_the_deadline() -> None:
    calls: list[int] = []

    def second_call() -> bool:
        calls.append(1)
        return len(calls) == 2

    # The first wait ends past the deadline (a busy machine): the check still runs after it.
    assert await until(second_call, "the second call", within=0.05, every=0.2) is True
    assert len(calls) == 2


def test_until_sync_waits_for_another_thread() -> None:
    done = threading.Event()
    threading.Timer(0.05, done.set).start()
    assert until_sync(done.is_set, "the timer", within=5) is True
    with pytest.raises(AssertionError, match="waiting for never: still 0"):
        until_sync(lambda: None, "never", within=0.05, detail=lambda: "still 0")
