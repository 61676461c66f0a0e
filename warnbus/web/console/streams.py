"""How many live board streams (server-sent events) a process keeps open: per session, per
user and in all.

Each open stream reads the campaign's state from Redis every interval for as long as it lives,
so a session (or a script holding a stolen cookie, or signing in again and again) opening them
by the thousand would take the process's Redis time from the engine and the places of other
officers. Counted in the process that serves them: a session spread over several API
processes gets its share in each.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

PER_SESSION = 8  # boards of several campaigns in tabs, a wall display, a phone
PER_USER = 16  # over all of a user's sessions (signing in again gives no more)
TOTAL = 200  # per process


@dataclass(frozen=True)
class StreamRefusal:
    status: int  # 429: this session (or user) has enough; 503: the process has enough
    message: str  # Chinese, for the officer
    retry_after_s: int


@dataclass
class StreamSlots:
    per_session: int = PER_SESSION
    per_user: int = PER_USER
    total: int = TOTAL
    _open: Counter[str] = field(default_factory=Counter)

    @property
    def open(self) -> int:
        return sum(n for k, n in self._open.items() if k.startswith("s:"))

    def refusal(self, session: str, user: str) -> StreamRefusal | None:
        """Why a new stream of `session` (of `user`) may not open now, or None."""
        if self._open["s:" + session] >= self.per_session:
            return StreamRefusal(429, f"本次登录已打开{self.per_session}个实时看板，已达上限："
                                      "请关闭其他看板页面后刷新", 5)
        if self._open["u:" + user] >= self.per_user:
            return StreamRefusal(429, f"该账户已打开{self.per_user}个实时看板，已达上限："
                                      "请关闭其他看板页面后刷新", 5)
        if self.open >= self.total:
            return StreamRefusal(503, "实时看板连接已满，请稍后刷新页面", 10)
        return None

    @contextlib.contextmanager
    def hold(self, session: str, user: str) -> Iterator[None]:
        """Count one stream of `session` and `user` while the block runs (check `refusal`)."""
        held = ("s:" + session, "u:" + user)
        for k in held:
            self._open[k] += 1
        try:
            yield
        finally:
            for k in held:
                self._open[k] -= 1
                if self._open[k] <= 0:
                    del self._open[k]
