"""How many live board streams (server-sent events) a process keeps open, per session and in all.

Each open stream reads the campaign's state from Redis every interval for as long as it lives,
so a session (or a script holding a stolen cookie) opening them by the thousand would take the
process's Redis time from the engine. Counted in the process that serves them: a session
spread over several API processes gets `per_session` in each.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

PER_SESSION = 8  # boards of several campaigns in tabs, a wall display, a phone
TOTAL = 200  # per process


@dataclass(frozen=True)
class StreamRefusal:
    status: int  # 429: this session has enough; 503: the process has enough
    message: str  # Chinese, for the officer
    retry_after_s: int


@dataclass
class StreamSlots:
    per_session: int = PER_SESSION
    total: int = TOTAL
    _open: Counter[str] = field(default_factory=Counter)

    @property
    def open(self) -> int:
        return sum(self._open.values())

    def refusal(self, session: str) -> StreamRefusal | None:
        """Why a new stream of `session` may not open now, or None."""
        if self._open[session] >= self.per_session:
            return StreamRefusal(429, f"本次登录已打开{self.per_session}个实时看板，已达上限："
                                      "请关闭其他看板页面后刷新", 5)
        if self.open >= self.total:
            return StreamRefusal(503, "实时看板连接已满，请稍后刷新页面", 10)
        return None

    @contextlib.contextmanager
    def hold(self, session: str) -> Iterator[None]:
        """Count one stream of `session` while the block runs (check `refusal` first)."""
        self._open[session] += 1
        try:
            yield
        finally:
            self._open[session] -= 1
            if self._open[session] <= 0:
                del self._open[session]
