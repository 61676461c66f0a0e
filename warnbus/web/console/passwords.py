"""Console passwords: scrypt hashes, computed off the event loop, a bounded few at a time.

One scrypt costs tens of milliseconds of CPU and 16 MB of memory. On the event loop, a flood
of sign-in attempts would stall every route of the process (the board, the API, provider
callbacks), so every hash runs on a small thread pool of its own (not asyncio's default pool,
which the engine uses for other work): at most `HASH_THREADS` at once per process, at most
`HASH_WAITING` more waiting for a thread; beyond that a sign-in is refused at once
(`HasherBusy`, 503) instead of queueing without bound. Browsers that signed in to the
account before have one more thread of their own (PasswordHasher), so a flood never turns a
known officer away. hashlib.scrypt releases the GIL, so the loop keeps running meanwhile.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

from warnbus.errors import WarnbusError

_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
MIN_PASSWORD, MAX_PASSWORD = 10, 256  # characters; longer ones are never hashed
HASH_THREADS = max(1, (os.cpu_count() or 2) // 2)  # leave the other cores to the engine
HASH_WAITING = 32
KNOWN_WAITING = 8  # the known browsers' lane (see PasswordHasher)
# What an unknown user name is checked against: the same work as a real check, so the time
# of an answer does not tell which names exist. No password matches it (no user either).
DUMMY = ("scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$"
         "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
# One pool per process: however many consoles a process mounts (tests mount many), hashing
# never takes more than HASH_THREADS cores.
_POOL = ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="warnbus-scrypt")
_KNOWN_POOL = ThreadPoolExecutor(1, thread_name_prefix="warnbus-scrypt-known")
T = TypeVar("T")


class HasherBusy(WarnbusError):
    """Too many passwords are being checked in this process; the caller should retry later."""

    code = "busy"


def hash_password(password: str) -> str:
    """The stored form `scrypt$n$r$p$salt$hash` of `password` (CPU-heavy: see PasswordHasher)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt${n}${r}${p}$".format(**_SCRYPT) + f"{_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
    """Whether `password` matches `stored` (CPU-heavy: see PasswordHasher)."""
    if len(password) > MAX_PASSWORD:
        return False
    try:
        kind, n, r, p, salt, digest = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(password.encode(), salt=_unb64(salt), n=int(n), r=int(r),
                             p=int(p), dklen=32)
    except ValueError:
        return False
    return hmac.compare_digest(got, _unb64(digest))


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"密码至少{MIN_PASSWORD}个字符"
    if len(password) > MAX_PASSWORD:
        return f"密码不能超过{MAX_PASSWORD}个字符"
    return None


class _Lane:
    """One thread pool and its bounded waiting room."""

    def __init__(self, pool: ThreadPoolExecutor, threads: int, waiting: int) -> None:
        self.pool = pool
        self.threads = threads
        self.room = threads + waiting
        self.inside = 0  # running or waiting for a thread
        self.slots: asyncio.Semaphore | None = None  # made on first use, on the running loop

    @property
    def full(self) -> bool:
        return self.inside >= self.room

    async def run(self, fn: Callable[..., T], *args: str) -> T:
        if self.full:
            raise HasherBusy("too many sign-ins are being checked; try again in a moment")
        self.inside += 1
        try:
            if self.slots is None:
                self.slots = asyncio.Semaphore(self.threads)
            await self.slots.acquire()
            loop = asyncio.get_running_loop()
            job: Future[T] = self.pool.submit(fn, *args)
            # The slot is free when the thread is, even if the waiting request went away.
            job.add_done_callback(lambda _j: _release(loop, self.slots))
            return await asyncio.wrap_future(job)
        finally:
            self.inside -= 1


class PasswordHasher:
    """Hash and check passwords off the event loop, a bounded number at a time.

    Two lanes: sign-ins from browsers that signed in to the account before (and an admin's
    password changes) have a thread of their own, so a flood of strangers' attempts, which
    fills the open lane, never makes a known officer wait behind it or be turned away.
    """

    def __init__(self, threads: int = HASH_THREADS, waiting: int = HASH_WAITING) -> None:
        self.open = _Lane(_POOL, threads, waiting)
        self.known = _Lane(_KNOWN_POOL, 1, KNOWN_WAITING)

    def full(self, *, known: bool = False) -> bool:
        return (self.known if known else self.open).full

    async def hash(self, password: str) -> str:
        return await self.known.run(hash_password, password)

    async def check(self, password: str, stored: str | None, *, known: bool = False) -> bool:
        """Whether `password` matches `stored`; None (no such user) costs the same, is False.

        `known`: the attempt comes from a browser the account signed in from before.
        """
        lane = self.known if known else self.open
        ok = await lane.run(check_password, password, stored or DUMMY)
        return ok and stored is not None


def _release(loop: asyncio.AbstractEventLoop, slots: asyncio.Semaphore | None) -> None:
    if slots is None:
        return
    with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (shutdown, tests)
        loop.call_soon_threadsafe(slots.release)


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(v: str) -> bytes:
    return base64.b64decode(v.encode())
