"""Every process serves the registry version Redis holds; a change is applied without a restart.

The configured files are version 0. An applied change (console, CLI) is version N in Redis
(`state.registrybook`); each process polls the version (`run`, about once a second) and, when
it moved, loads, validates and indexes the new records off the event loop, then swaps its
registry and the rules' index in one step (`Context.use_registry`). Code that needs one
consistent view reads `ctx.registry` once.

What a running campaign sees: its state in Redis holds person and grid ids, never phones, so
the next delivery planned (a redial, an escalation, a notice) takes the person's contact
points from the registry of that moment: a changed phone is called from the next step on.
A person or grid removed while a campaign holds them is handled by the ticker (a removed
person's grids move up the chain; a removed grid's 叫应 goes on the 未叫醒 list).

At start-up (`resolve`): the applied version is served when it was made on top of the same
configured files; when the files changed since (another registry deployed), the files win and
are recorded as a new version, so nothing is silently ignored either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import TYPE_CHECKING

import structlog

from warnbus.domain.models import RegistryData
from warnbus.errors import RegistryError
from warnbus.registry import Registry, validate_registry
from warnbus.state.client import RedisClient
from warnbus.state.registrybook import RegistryBook, data_sha

if TYPE_CHECKING:
    from warnbus.flow.ports import Rules
    from warnbus.runtime.context import Context

log = structlog.get_logger("warnbus.registry")

POLL_S = 1.0


def index(data: RegistryData, rules: Rules, *, validate: bool = True) -> tuple[Registry, Rules]:
    """Validate and index `data` (CPU work: call it off the event loop when large)."""
    if validate:
        problems = validate_registry(data)
        if problems:
            raise RegistryError(problems)
    return Registry(data), rules.for_registry(data)


async def resolve(redis: RedisClient, registry: Registry, rules: Rules, clock_now: float,
                  ) -> tuple[Registry, Rules, int, str]:
    """The registry to start on: (registry, rules, version, sha of the configured files)."""
    book = RegistryBook(redis)
    base = await asyncio.to_thread(data_sha, registry.data)
    got = await book.load()
    if got is None:
        await book.set_files_sha(base)  # what a first change (console or CLI) builds on
        return registry, rules, 0, base
    current, data = got
    if current.base == base:
        try:
            reg, new_rules = await asyncio.to_thread(index, data, rules)
        except RegistryError as e:
            log.error("the applied registry in Redis is invalid: serving the configured files",
                      version=current.version, problems=e.problems[:5])
            return registry, rules, 0, base
        log.info("registry: serving the applied version", version=current.version,
                 by=current.by, source=current.source)
        return reg, new_rules, current.version, base
    # The configured files changed since the applied version was made: they win, recorded.
    from warnbus.registry_io.diff import diff
    from warnbus.registry_io.service import Report, encode_report

    d = diff(data, registry.data)
    version = await book.apply(registry.data, expected=current.version, by="system",
                               source="配置的台账文件已更换：以文件为准", base=base, at=clock_now,
                               year=None, summary=d.summary(), diff=encode_report(Report(d)))
    log.warning("registry: the configured files changed since the applied version; they are "
                "served and recorded", version=version, replaced=current.version)
    return registry, rules, version, base


class LiveRegistry:
    """Keeps a process's registry on the version Redis holds."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.book = RegistryBook(ctx.redis)
        self._bad = -1  # a version that did not validate: not loaded again and again

    async def refresh(self) -> bool:
        """Load the version Redis holds if it is not the one served; whether it swapped."""
        version = await self.book.version()
        if version in (self.ctx.registry_version, self._bad):
            return False
        got = await self.book.load()
        if got is None:
            return False
        current, data = got
        try:
            reg, rules = await asyncio.to_thread(index, data, self.ctx.rules)
        except RegistryError as e:
            self._bad = current.version
            log.error("applied registry is invalid: keeping the one served",
                      version=current.version, problems=e.problems[:5])
            return False
        self.swap(reg, rules, current.version)
        return True

    def swap(self, registry: Registry, rules: Rules, version: int) -> None:
        old = self.ctx.registry_version
        self.ctx.use_registry(registry, rules, version)
        if gc.get_freeze_count():
            gc.freeze()  # the new registry lives as long as the old one did (engine.start)
        log.info("registry swapped", version=version, previous=old,
                 grids=len(registry.data.grids), persons=len(registry.data.persons))

    async def apply(self, data: RegistryData, *, expected: int, by: str, source: str,
                    year: int | None, summary: str, diff: bytes, validated: bool = True) -> int:
        """Apply a validated change (CAS on `expected`) and serve it here at once; the other
        processes follow within `POLL_S`."""
        reg, rules = await asyncio.to_thread(index, data, self.ctx.rules, validate=not validated)
        current = await self.book.current()
        base = current.base if current else self.ctx.registry_base
        if year is None and current is not None:
            year = current.year  # the roster's year stands until a workbook names another
        from warnbus.registry_io.service import for_history

        version = await self.book.apply(data, expected=expected, by=by, source=source, base=base,
                                        at=self.ctx.clock.now(), year=year, summary=summary,
                                        diff=for_history(diff))
        self.swap(reg, rules, version)
        return version

    async def run(self, stop: asyncio.Event, every: float = POLL_S) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("registry watch error")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)
