"""Console users, passwords, server-side sessions and CSRF tokens, all in Redis.

Passwords are scrypt hashes (`passwords.py`, computed off the event loop). A session is a
random cookie value; Redis keeps only its sha256, so a copy of the database gives nobody a
usable cookie. Every session carries its own CSRF token, which every POST must echo (form
field `_csrf` or header `X-CSRF-Token`), and the generation of its user's sessions it began
in: a password reset, a disable or a sign-out moves the generation on, which ends every
session of that user at once (`Console.signed_in` compares them on each request and in
every live stream).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from enum import StrEnum
from typing import Any

import msgspec

from warnbus.state import keys
from warnbus.state.replies import text_of
from warnbus.web.console.passwords import PasswordHasher

ROLES = ("drafter", "approver", "admin")
ROLE_NAMES = {"drafter": "起草", "approver": "审批", "admin": "管理"}
ADMIN_USER = "admin"
SESSION_TTL_S = 12 * 3600
#: A user name: checked before anything in Redis is looked up or named after it.
NAME = re.compile(r"[A-Za-z0-9_.-]{2,32}")
AUDIT_KEEP = 10_000  # admin audit entries kept (about)


def name_problem(name: str) -> str | None:
    if NAME.fullmatch(name) is None:
        return "用户名须为2-32个字符：英文字母、数字或 _ . -"
    return None


class User(msgspec.Struct, frozen=True):
    name: str
    display: str
    roles: tuple[str, ...]
    pw: str  # "scrypt$n$r$p$salt$hash"
    disabled: bool = False

    def has(self, *roles: str) -> bool:
        return any(r in self.roles for r in roles)


class Session(msgspec.Struct, frozen=True):
    user: str
    csrf: str
    at: float
    gen: int = 0  # the user's session generation when it began


_user_dec = msgspec.json.Decoder(User)
_sess_dec = msgspec.json.Decoder(Session)
_enc = msgspec.json.Encoder()


class Users:
    """The console's user table (one Redis hash) and its users' session generations."""

    def __init__(self, redis: Any, hasher: PasswordHasher | None = None) -> None:
        self.redis = redis
        self.hasher = hasher or PasswordHasher()

    async def get(self, name: str) -> User | None:
        if name_problem(name):
            return None
        raw = await self.redis.hget(keys.CONSOLE_USERS, name)
        return _user_dec.decode(raw) if raw else None

    async def get_with_generation(self, name: str) -> tuple[User | None, int]:
        """The user and their session generation, in one round trip."""
        if name_problem(name):
            return None, 0
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(keys.CONSOLE_USERS, name)
        pipe.hget(keys.CONSOLE_SESSION_GEN, name)
        raw, gen = await pipe.execute()
        return (_user_dec.decode(raw) if raw else None), int(gen or 0)

    async def generation(self, name: str) -> int:
        return int(await self.redis.hget(keys.CONSOLE_SESSION_GEN, name) or 0)

    async def end_sessions(self, name: str) -> None:
        """End every session of `name` (they carry an older generation from now on)."""
        await self.redis.hincrby(keys.CONSOLE_SESSION_GEN, name, 1)

    async def all(self) -> list[User]:
        raw = await self.redis.hgetall(keys.CONSOLE_USERS)
        return sorted((_user_dec.decode(v) for v in raw.values()), key=lambda u: u.name)

    async def displays(self) -> dict[str, str]:
        """User name -> display name (姓名), for pages that say who did something."""
        return {u.name: u.display or u.name for u in await self.all()}

    async def put(self, user: User) -> None:
        await self.redis.hset(keys.CONSOLE_USERS, user.name, _enc.encode(user))

    async def create(self, name: str, display: str, roles: tuple[str, ...], password: str,
                     *, only_if_new: bool = True) -> bool:
        problem = name_problem(name)
        if problem:
            raise ValueError(problem)
        user = User(name, display or name, roles, await self.hasher.hash(password))
        if only_if_new:
            return bool(await self.redis.hsetnx(keys.CONSOLE_USERS, name, _enc.encode(user)))
        await self.put(user)
        return True

    async def verify(self, name: str, password: str, *, known: bool = False) -> User | None:
        """The user if the password is right and the user enabled; None otherwise.

        Not throttled (see throttle.SignInGuard); an unknown name costs one scrypt too.
        `known`: from a browser the user signed in from before (its own hashing lane).
        Raises passwords.HasherBusy when too many checks are running in this process.
        """
        user = await self.get(name)
        ok = await self.hasher.check(password, user.pw if user else None, known=known)
        return user if ok and user is not None and not user.disabled else None


class Sessions:
    def __init__(self, redis: Any, ttl_s: int = SESSION_TTL_S) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    async def create(self, user: str, gen: int) -> tuple[str, Session]:
        """A new session of `user` in generation `gen` (read before the password was checked,
        so a reset meanwhile ends it)."""
        sid = secrets.token_urlsafe(32)
        sess = Session(user, secrets.token_urlsafe(24), time.time(), gen)
        await self.redis.set(keys.console_session(session_digest(sid)), _enc.encode(sess),
                             ex=self.ttl_s)
        return sid, sess

    async def get(self, sid: str) -> Session | None:
        if not sid or len(sid) > 100:
            return None
        # Sliding: a console left open stays signed in.
        raw = await self.redis.getex(keys.console_session(session_digest(sid)), ex=self.ttl_s)
        return _sess_dec.decode(raw) if raw else None

    async def drop(self, sid: str) -> None:
        await self.redis.delete(keys.console_session(session_digest(sid)))


def csrf_ok(expected: str, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(expected.encode(), (given or "").encode())


async def ensure_admin(redis: Any, password: str | None = None) -> str | None:
    """Create the `admin` user on first start; return the password when one was generated.

    With `password` (WARNBUS_ADMIN_PASSWORD) that password is used and nothing is returned.
    An existing admin is left alone: the password is printed once, at creation only.
    """
    users = Users(redis)
    if await users.get(ADMIN_USER) is not None:
        return None
    generated = None
    if not password:
        generated = password = secrets.token_urlsafe(12)
    created = await users.create(ADMIN_USER, "管理员", ROLES, password)
    return generated if created else None


def session_digest(sid: str) -> str:
    """What Redis knows of a session cookie (and what its live streams are counted by)."""
    return hashlib.sha256(sid.encode()).hexdigest()


class AdminAction(StrEnum):
    CREATE = "create"  # a user created
    UPDATE = "update"  # roles, password reset, disabled or enabled
    UNLOCK = "unlock"  # sign-in failures and locks lifted


class AdminEntry(msgspec.Struct, frozen=True):
    """One audited admin action: who did what to which user, when."""

    at: float
    by: str
    action: AdminAction
    user: str
    detail: str = ""


async def audit(redis: Any, entry: AdminEntry) -> None:
    await redis.xadd(keys.CONSOLE_AUDIT, {"e": _enc.encode(entry)}, maxlen=AUDIT_KEEP,
                     approximate=True)


async def audit_log(redis: Any, count: int = 20) -> list[AdminEntry]:
    """The latest admin actions, newest first."""
    rows = await redis.xrevrange(keys.CONSOLE_AUDIT, count=count)
    return [msgspec.json.decode(text_of(fields.get(b"e")), type=AdminEntry) for _id, fields in rows]
