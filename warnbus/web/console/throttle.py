"""Sign-in throttling that slows guessing down without letting a stranger lock anyone out.

Failed sign-ins are counted for three subjects, each with its own backoff:

- the client address (`a:<address>`; an IPv6 client by its /64, which one subscriber holds):
  every name tried from there. Beyond `address.free` failures each further one doubles the
  wait, up to `address.cap_s` ("尝试过于频繁，N 秒后再试").
- the pair of account and address (`p:<name>|<address>`): beyond `pair.free` failures the
  wait doubles; at `lock_after` failures the account is locked **for that address only**
  for `lock_s` ("账户已锁定，N 分钟后再试").
- the account (`u:<name>`): failures from every address. Its backoff, short and capped
  (`account.cap_s`), applies only to addresses that have themselves failed on the account,
  counted from their own last failure (others failing cannot postpone it).

A browser that signed in to the account before (its device cookie, see SignInGuard) is judged
only by its own failures on the account: neither its address nor the account's failures
elsewhere hold it back. That is what keeps an approver's known browser working when everyone
shares one address (an office NAT, a reverse proxy), where the address and its pairs are the
stranger's as much as the approver's.

Why so: a lock per account alone would let anyone lock an approver out during an emergency
by typing wrong passwords; here a stranger's failures slow down and lock the stranger's own
address (or browser), never the approver signing in from a browser they have used, nor from
another address. What stops guessing from many addresses is each address's own limits, the
account's backoff on each of them, and passwords of at least ten characters; the admin page
shows every account's recent failures and unlocks an account (every lock on it) at once.

Each attempt is admitted by one script that counts it as a failure before the password is
checked, so concurrent attempts can never slip past a limit together; a right password
settles the count afterwards. Unknown user names are throttled exactly like real ones, so the
answers do not tell which names exist. Everything lives in one hash (`keys.CONSOLE_LOGIN_FAILS`)
whose entries are forgotten `window_s` after their last failure, sampled on each admission;
above `max_entries` the least recently failed entries of the sample go first, so no flood of
names or addresses can grow it without bound, and the hash expires when nobody fails.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import re
import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from warnbus.runtime.clock import Clock
from warnbus.state import keys

# KEYS[1]: the failure hash (field -> "count|last_ms"; field "~" holds the sampling cursor).
# ARGV[1] now_ms, ARGV[2] window_ms, ARGV[3] max_entries, ARGV[4] sample size,
# ARGV[5] address field, ARGV[6] pair field, ARGV[7] account field ('' without a valid name),
# ARGV[8..10] address free, base_ms, cap_ms; ARGV[11..13] pair free, base_ms, cap_ms;
# ARGV[14] lock_after, ARGV[15] lock_ms; ARGV[16..18] account free, base_ms, cap_ms;
# ARGV[19] '1' from a browser the account signed in from before (address field '': only the
# pair of account and browser is judged; the account's failures are counted, not applied).
# Returns {verdict, wait_ms}: verdict 0 admitted (and counted), 1 throttled, 2 locked.
ADMIT = r"""
local h = KEYS[1]
local now, window = tonumber(ARGV[1]), tonumber(ARGV[2])
local fa, fp, fu = ARGV[5], ARGV[6], ARGV[7]
local function read(f)
  if f == '' then return 0, 0 end
  local v = redis.call('HGET', h, f)
  if not v then return 0, 0 end
  local c, last = string.match(v, '^(%d+)|(%d+)$')
  c, last = tonumber(c), tonumber(last)
  if not c or now - last > window then return 0, 0 end
  return c, last
end
local function backoff(c, free, base, cap)
  if c < tonumber(free) then return 0 end
  return math.min(tonumber(cap), tonumber(base) * 2 ^ (c - tonumber(free)))
end
local ac, al = read(fa)
local pc, pl = read(fp)
local uc = read(fu)
local wait = al + backoff(ac, ARGV[8], ARGV[9], ARGV[10]) - now
local locked = 0
if pc > 0 then
  -- Counted from this address's own last failure on the account: others failing on it
  -- (from anywhere, however often) lengthen the wait up to its cap, never postpone it.
  local d = backoff(pc, ARGV[11], ARGV[12], ARGV[13])
  if ARGV[19] ~= '1' then d = math.max(d, backoff(uc, ARGV[16], ARGV[17], ARGV[18])) end
  wait = math.max(wait, pl + d - now)
  if pc >= tonumber(ARGV[14]) and pl + tonumber(ARGV[15]) > now then
    locked = pl + tonumber(ARGV[15]) - now
  end
end
if locked > 0 then return {2, math.ceil(math.max(wait, locked))} end
if wait > 0 then return {1, math.ceil(wait)} end
local stamp = '|' .. string.format('%d', now)
if fa ~= '' then redis.call('HSET', h, fa, (ac + 1) .. stamp) end
if fp ~= '' then redis.call('HSET', h, fp, (pc + 1) .. stamp) end
if fu ~= '' then redis.call('HSET', h, fu, (uc + 1) .. stamp) end
-- Forget a sample of entries past the window; above the cap, drop the least recently failed.
local scan = redis.call('HSCAN', h, redis.call('HGET', h, '~') or '0', 'COUNT', ARGV[4])
redis.call('HSET', h, '~', scan[1])
local over = redis.call('HLEN', h) - 1 - tonumber(ARGV[3])
local keep = {}
for i = 1, #scan[2], 2 do
  local f = scan[2][i]
  if f ~= '~' and f ~= fa and f ~= fp and f ~= fu then
    local last = tonumber(string.match(scan[2][i + 1], '|(%d+)$'))
    if not last or now - last > window then
      redis.call('HDEL', h, f)
      over = over - 1
    else
      keep[#keep + 1] = {last, f}
    end
  end
end
if over > 0 then
  table.sort(keep, function(x, y) return x[1] < y[1] end)
  for i = 1, math.min(over, #keep) do redis.call('HDEL', h, keep[i][2]) end
end
redis.call('PEXPIRE', h, window)
return {0, 0}
"""

# KEYS[1]: the failure hash. ARGV[1] address field, ARGV[2] pair field, ARGV[3] account field,
# ARGV[4] '1' when the password was right (the pair's failures are forgotten), else '0'.
# Takes back the failure ADMIT counted for an attempt that did not fail.
SETTLE = r"""
local h = KEYS[1]
local function undo(f)
  local v = redis.call('HGET', h, f)
  if not v then return end
  local c, last = string.match(v, '^(%d+)|(%d+)$')
  if not c or tonumber(c) <= 1 then
    redis.call('HDEL', h, f)
  else
    redis.call('HSET', h, f, (tonumber(c) - 1) .. '|' .. last)
  end
end
if ARGV[1] ~= '' then undo(ARGV[1]) end
undo(ARGV[3])
if ARGV[4] == '1' then redis.call('HDEL', h, ARGV[2]) else undo(ARGV[2]) end
return 1
"""

# KEYS[1]: the failure hash. ARGV[1] account field, ARGV[2] match pattern of its pair fields.
# An admin's unlock: the account's failures and every pair lock on it, from any address.
# Walks the whole hash (bounded by max_entries): an admin's action, not a sign-in's.
UNLOCK = r"""
local h = KEYS[1]
local n = redis.call('HDEL', h, ARGV[1])
local cursor = '0'
repeat
  local scan = redis.call('HSCAN', h, cursor, 'MATCH', ARGV[2], 'COUNT', 500)
  cursor = scan[1]
  for i = 1, #scan[2], 2 do n = n + redis.call('HDEL', h, scan[2][i]) end
until cursor == '0'
return n
"""


@dataclass(frozen=True)
class Backoff:
    """`free` failures without a wait; then `base_s`, doubling with each failure, to `cap_s`."""

    free: int
    base_s: float
    cap_s: float

    def args(self) -> list[int]:
        return [self.free, _ms(self.base_s), _ms(self.cap_s)]


@dataclass(frozen=True)
class SignInLimits:
    address: Backoff = Backoff(free=20, base_s=1, cap_s=300)
    pair: Backoff = Backoff(free=3, base_s=2, cap_s=60)
    lock_after: int = 10  # failures of one account from one address that lock it there
    lock_s: float = 900
    account: Backoff = Backoff(free=10, base_s=1, cap_s=30)  # only where the address failed
    window_s: float = 900  # a subject's failures are forgotten this long after its last one
    max_entries: int = 50_000  # subjects kept at most (about 100 bytes each)
    sample: int = 16  # entries looked at per admission for forgetting


class Verdict(StrEnum):
    ADMITTED = "admitted"  # go on and check the password (counted as a failure until settled)
    THROTTLED = "throttled"  # 尝试过于频繁
    LOCKED = "locked"  # 账户已锁定 (from this address)


_VERDICTS = (Verdict.ADMITTED, Verdict.THROTTLED, Verdict.LOCKED)  # ADMIT's return codes
DEVICE = re.compile(r"[A-Za-z0-9_-]{32}")  # a browser's device id (new_device)
DEVICE_TTL_S = 180 * 86400  # a browser not signed in from for this long is a stranger again


@dataclass(frozen=True)
class Admission:
    verdict: Verdict
    wait_s: float = 0.0

    @property
    def admitted(self) -> bool:
        return self.verdict is Verdict.ADMITTED

    def message(self) -> str:
        """What the sign-in page says (Chinese), with the wait rounded up."""
        if self.verdict is Verdict.LOCKED:
            return f"账户已锁定，{max(1, math.ceil(self.wait_s / 60))} 分钟后再试"
        return f"尝试过于频繁，{max(1, math.ceil(self.wait_s))} 秒后再试"


def client_address(remote: str | None) -> str:
    """The address a client is throttled by: IPv4 as is, IPv6 by its /64, '-' if unknown."""
    try:
        ip = ipaddress.ip_address(remote or "")
    except ValueError:
        return "-"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return f"{ipaddress.IPv6Network((ip, 64), strict=False).network_address}/64"
    return str(ip)


@dataclass(frozen=True)
class Attempt:
    """Who a sign-in attempt is counted against (the failure hash's fields)."""

    address: str  # a:<address>, or '' from a known browser
    pair: str  # p:<name>|<address> or p:<name>|d:<browser digest>; '' without a valid name
    account: str  # u:<name>, or ''
    known: bool = False  # from a browser the account signed in from before


@dataclass
class SignInGuard:
    """Admit, settle and unlock sign-in attempts (names must be valid user names already).

    A browser that signed in to an account gets a random device id (a cookie); the guard
    keeps the digest of (account, device) for `device_ttl_s` after its last sign-in. An
    attempt for that account from that browser is judged only by the browser's own failures:
    no address (an office NAT, a reverse proxy) and no stranger's failures can hold back an
    officer on a browser they have used before.
    """

    redis: Any
    clock: Clock
    limits: SignInLimits = field(default_factory=SignInLimits)
    device_ttl_s: float = DEVICE_TTL_S

    def __post_init__(self) -> None:
        self._admit = self.redis.register_script(ADMIT)
        self._settle = self.redis.register_script(SETTLE)
        self._unlock = self.redis.register_script(UNLOCK)

    async def attempt(self, name: str | None, client: str, device: str = "") -> Attempt:
        """The subjects of an attempt for `name` (None: not a possible user name)."""
        if name is None:
            return Attempt(f"a:{client}", "", "")
        # User names are [A-Za-z0-9_.-] (auth.NAME): no '|' or glob character in a field.
        if DEVICE.fullmatch(device):
            member = f"{name}|{_digest(device)}"
            seen = await self.redis.zscore(keys.CONSOLE_DEVICES, member)
            if seen is not None and self.clock.now() - float(seen) / 1000 <= self.device_ttl_s:
                return Attempt("", f"p:{name}|d:{_digest(device)}", f"u:{name}", known=True)
        return Attempt(f"a:{client}", f"p:{name}|{client}", f"u:{name}")

    async def admit(self, who: Attempt) -> Admission:
        """Whether the attempt may check a password; if so it is counted as a failure."""
        lim = self.limits
        verdict, wait_ms = await self._admit(keys=[keys.CONSOLE_LOGIN_FAILS], args=[
            _ms(self.clock.now()), _ms(lim.window_s), lim.max_entries, lim.sample,
            who.address, who.pair, who.account, *lim.address.args(), *lim.pair.args(),
            lim.lock_after, _ms(lim.lock_s), *lim.account.args(), int(who.known)])
        return Admission(_VERDICTS[int(verdict)], int(wait_ms) / 1000)

    async def settle(self, who: Attempt, *, right: bool) -> None:
        """Take back an admitted attempt's failure: the password was right, or never checked."""
        await self._settle(keys=[keys.CONSOLE_LOGIN_FAILS],
                           args=[who.address, who.pair, who.account, int(right)])

    async def remember(self, name: str, device: str) -> None:
        """`device` (a new random id, or the cookie the browser sent) signed in to `name`."""
        now = _ms(self.clock.now())
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(keys.CONSOLE_DEVICES, {f"{name}|{_digest(device)}": now})
        pipe.zremrangebyscore(keys.CONSOLE_DEVICES, "-inf", now - _ms(self.device_ttl_s))
        await pipe.execute()

    async def unlock(self, name: str) -> int:
        """Forget the account's failures and its locks from every address; entries removed."""
        return int(await self._unlock(keys=[keys.CONSOLE_LOGIN_FAILS],
                                      args=[f"u:{name}", f"p:{name}|*"]))

    async def failures(self, names: list[str]) -> dict[str, int]:
        """Recent failed sign-ins of each account (from every address), for the admin page."""
        if not names:
            return {}
        raw = await self.redis.hmget(keys.CONSOLE_LOGIN_FAILS, [f"u:{n}" for n in names])
        now = self.clock.now()
        out = {}
        for n, v in zip(names, raw, strict=True):
            count, _sep, last = (v.decode() if isinstance(v, bytes) else v or "0|0").partition("|")
            fresh = now - int(last or 0) / 1000 <= self.limits.window_s
            out[n] = int(count) if fresh else 0
        return out


def new_device() -> str:
    return secrets.token_urlsafe(24)


def _digest(device: str) -> str:
    return hashlib.sha256(device.encode()).hexdigest()[:32]


def _ms(seconds: float) -> int:
    return int(seconds * 1000)
