"""The registry in Redis: the applied version every process serves, its history, staged imports.

Owner of the `wb:{reg}:*` keys. A change is applied by one script that checks the version it
was prepared on (compare-and-set: two people applying at once cannot overwrite each other),
writes the records, bumps the version and appends who, when and what to the history stream.
Every process watches the version (`warnbus.runtime.live_registry`) and swaps its registry.
"""

from __future__ import annotations

import hashlib
import secrets
import zlib
from dataclasses import dataclass
from typing import Any

import msgspec

from warnbus.domain.models import RegistryData
from warnbus.errors import RegistryConflictError
from warnbus.state import keys, scripts
from warnbus.state.client import RedisClient
from warnbus.state.replies import text_of

STAGE_TTL_S = 3600  # a previewed import waits this long for someone to apply it
HISTORY_MAX = 100_000  # changes kept (a county makes a few a week)

#: The compare-and-set that applies a change, in its .lua file beside this module.
APPLY = scripts.load(__file__, "registry_apply")
_KEYS = {"current": keys.REGISTRY_CURRENT, "data": keys.REGISTRY_DATA,
         "history": keys.REGISTRY_HISTORY}


@dataclass(frozen=True)
class Current:
    version: int
    sha: str
    base: str  # sha of the configured files this version was made on top of
    at: float
    by: str
    source: str
    year: int | None


@dataclass(frozen=True)
class HistoryEntry:
    version: int
    at: float
    by: str
    source: str
    summary: str
    diff: bytes  # JSON of `registry_io.diff.Diff` (phones masked)


@dataclass(frozen=True)
class Staged:
    stage_id: str
    base_version: int
    by: str
    source: str
    data: RegistryData
    report: bytes  # JSON: the diff and the warnings the preview showed
    year: int | None


def _current(raw: Any) -> Current | None:
    h = {text_of(k): text_of(v) for k, v in (raw or {}).items()}
    if not h.get("version"):
        return None
    return Current(int(h["version"]), h.get("sha", ""), h.get("base", ""),
                   float(h.get("at") or 0), h.get("by", ""), h.get("source", ""),
                   int(h["year"]) if h.get("year") else None)


def encode_data(data: RegistryData) -> bytes:
    return msgspec.msgpack.encode(data)


def data_sha(data: RegistryData) -> str:
    return hashlib.sha256(encode_data(data)).hexdigest()


def _pack(data: RegistryData) -> bytes:
    return zlib.compress(encode_data(data), 1)


def _unpack(blob: bytes) -> RegistryData:
    return msgspec.msgpack.decode(zlib.decompress(blob), type=RegistryData)


class RegistryBook:
    def __init__(self, redis: RedisClient) -> None:
        self._redis: Any = redis
        self._apply = APPLY.bind(redis)

    async def version(self) -> int:
        raw = await self._redis.hget(keys.REGISTRY_CURRENT, "version")
        return int(text_of(raw) or 0)

    async def files_sha(self) -> str:
        """The sha of the configured files the engine serves as version 0 ("" if unknown)."""
        return text_of(await self._redis.get(keys.REGISTRY_FILES))

    async def set_files_sha(self, sha: str) -> None:
        await self._redis.set(keys.REGISTRY_FILES, sha)

    async def current(self) -> Current | None:
        return _current(await self._redis.hgetall(keys.REGISTRY_CURRENT))

    async def load(self) -> tuple[Current, RegistryData] | None:
        """The applied version and its records (None before any change was applied)."""
        pipe = self._redis.pipeline(transaction=True)
        pipe.hgetall(keys.REGISTRY_CURRENT)
        pipe.get(keys.REGISTRY_DATA)
        raw, blob = await pipe.execute()
        current = _current(raw)
        if current is None or blob is None:
            return None
        return current, _unpack(blob)

    async def apply(self, data: RegistryData, *, expected: int, by: str, source: str,
                    base: str, at: float, year: int | None, summary: str, diff: bytes) -> int:
        """Make `data` the current registry if the current version is still `expected`;
        return the new version. RegistryConflictError when another change came first."""
        ok, got = await self._apply(
            _KEYS, expected=str(expected), blob=_pack(data), sha=data_sha(data), base=base,
            at=repr(at), by=by, source=source, year=str(year or ""), summary=summary, diff=diff,
            keep=str(HISTORY_MAX))
        if int(ok) != 1:
            raise RegistryConflictError(
                f"台账已被他人更新（当前版本 {text_of(got)}，本次变更基于版本 {expected}）："
                "请重新导入并预览")
        return int(text_of(got))

    async def history(self, count: int = 50, before: str = "+") -> list[tuple[str, HistoryEntry]]:
        """The newest changes first: (stream id, entry)."""
        out = []
        for entry_id, f in await self._redis.xrevrange(keys.REGISTRY_HISTORY, before, "-",
                                                       count=count):
            g = {text_of(k): v for k, v in f.items()}
            out.append((text_of(entry_id), HistoryEntry(
                int(text_of(g.get("version")) or 0), float(text_of(g.get("at")) or 0),
                text_of(g.get("by")), text_of(g.get("source")), text_of(g.get("summary")),
                g.get("diff") or b"")))
        return out

    async def stage(self, data: RegistryData, *, base_version: int, by: str, source: str,
                    report: bytes, year: int | None) -> str:
        stage_id = secrets.token_urlsafe(12)
        key = keys.registry_staged(stage_id)
        pipe = self._redis.pipeline(transaction=True)
        pipe.hset(key, mapping={"data": _pack(data), "base": str(base_version), "by": by,
                                "source": source, "report": report, "year": str(year or "")})
        pipe.expire(key, STAGE_TTL_S)
        await pipe.execute()
        return stage_id

    async def staged(self, stage_id: str) -> Staged | None:
        if not stage_id.replace("-", "").replace("_", "").isalnum() or len(stage_id) > 40:
            return None
        raw = await self._redis.hgetall(keys.registry_staged(stage_id))
        h = {text_of(k): v for k, v in raw.items()}
        if not h.get("data"):
            return None
        return Staged(stage_id, int(text_of(h.get("base")) or 0), text_of(h.get("by")),
                      text_of(h.get("source")), _unpack(h["data"]), h.get("report") or b"",
                      int(text_of(h["year"])) if text_of(h.get("year")) else None)

    async def drop_stage(self, stage_id: str) -> None:
        await self._redis.delete(keys.registry_staged(stage_id))
