"""Console users, passwords, server-side sessions and CSRF tokens, all in Redis.

Passwords are scrypt hashes (stdlib). A session is a random cookie value; Redis keeps only its
sha256, so a copy of the database gives nobody a usable cookie. Every session carries its own
CSRF token, which every POST must echo (form field `_csrf` or header `X-CSRF-Token`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

import msgspec

from warnbus import keys

ROLES = ("drafter", "approver", "admin")
ROLE_NAMES = {"drafter": "起草", "approver": "审批", "admin": "管理"}
ADMIN_USER = "admin"
SESSION_TTL_S = 12 * 3600
MAX_FAILURES = 10  # wrong passwords per user name within FAILURE_WINDOW_S before a lock-out
FAILURE_WINDOW_S = 900
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


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


_user_dec = msgspec.json.Decoder(User)
_sess_dec = msgspec.json.Decoder(Session)
_enc = msgspec.json.Encoder()


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **_SCRYPT)
    return "scrypt${n}${r}${p}$".format(**_SCRYPT) + f"{_b64(salt)}${_b64(digest)}"


def check_password(password: str, stored: str) -> bool:
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
    if len(password) < 10:
        return "密码至少10个字符"
    return None


class Users:
    """The console's user table (one Redis hash)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis

    async def get(self, name: str) -> User | None:
        raw = await self.redis.hget(keys.CONSOLE_USERS, name)
        return _user_dec.decode(raw) if raw else None

    async def all(self) -> list[User]:
        raw = await self.redis.hgetall(keys.CONSOLE_USERS)
        return sorted((_user_dec.decode(v) for v in raw.values()), key=lambda u: u.name)

    async def put(self, user: User) -> None:
        await self.redis.hset(keys.CONSOLE_USERS, user.name, _enc.encode(user))

    async def create(self, name: str, display: str, roles: tuple[str, ...], password: str,
                     *, only_if_new: bool = True) -> bool:
        user = User(name, display or name, roles, hash_password(password))
        if only_if_new:
            return bool(await self.redis.hsetnx(keys.CONSOLE_USERS, name, _enc.encode(user)))
        await self.put(user)
        return True

    async def authenticate(self, name: str, password: str) -> User | None:
        """The user if the password is right; None otherwise (also while locked out)."""
        fails = keys.console_login_failures(name)
        if int(await self.redis.get(fails) or 0) >= MAX_FAILURES:
            return None
        user = await self.get(name)
        # Hash even for unknown users, so timing does not tell which names exist.
        ok = check_password(password, user.pw if user else hash_password("x" * 12))
        if user is None or not ok or user.disabled:
            pipe = self.redis.pipeline(transaction=False)
            pipe.incr(fails)
            pipe.expire(fails, FAILURE_WINDOW_S)
            await pipe.execute()
            return None
        await self.redis.delete(fails)
        return user


class Sessions:
    def __init__(self, redis: Any, ttl_s: int = SESSION_TTL_S) -> None:
        self.redis = redis
        self.ttl_s = ttl_s

    async def create(self, user: str) -> tuple[str, Session]:
        sid = secrets.token_urlsafe(32)
        sess = Session(user, secrets.token_urlsafe(24), time.time())
        await self.redis.set(keys.console_session(_digest(sid)), _enc.encode(sess), ex=self.ttl_s)
        return sid, sess

    async def get(self, sid: str) -> Session | None:
        if not sid or len(sid) > 100:
            return None
        k = keys.console_session(_digest(sid))
        raw = await self.redis.get(k)
        if not raw:
            return None
        await self.redis.expire(k, self.ttl_s)  # sliding: a console left open stays signed in
        return _sess_dec.decode(raw)

    async def drop(self, sid: str) -> None:
        await self.redis.delete(keys.console_session(_digest(sid)))


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


def _digest(sid: str) -> str:
    return hashlib.sha256(sid.encode()).hexdigest()


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def _unb64(v: str) -> bytes:
    return base64.b64decode(v.encode())
