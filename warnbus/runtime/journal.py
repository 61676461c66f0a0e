"""The local journal: confirmations that could not reach Redis, fsynced before the 2xx.

One append-only file per process (`<journal_dir>/<consumer>.wbj`, locked with flock while
the process lives), created on the first record. Appends are group-committed: records that
arrive while a write and fsync are under way go together in the next one, in a thread, so
the event loop never waits on the disk. A record is `length | crc32 | payload`; a torn tail
(power lost in the middle of a write, never acknowledged) ends the file for the reader.

The file of a process that died (its lock is free) is replayed by any live process that
shares the directory, then deleted. Replay is idempotent (each record is applied by a
compare-and-set), so a record replayed twice, or one whose first write reached Redis after
all, changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import structlog

from warnbus.errors import JournalError

log = structlog.get_logger("warnbus.journal")

SUFFIX = ".wbj"
_HEAD = struct.Struct(">II")  # payload length, crc32 of the payload
_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


class Journal:
    """This process's journal, and the files of dead processes in the same directory."""

    def __init__(self, directory: Path, name: str, max_bytes: int) -> None:
        self.directory = directory
        self.path = directory / (_UNSAFE.sub("_", name) + SUFFIX)
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._size = 0  # bytes written and fsynced
        self._queue: list[tuple[bytes, asyncio.Future[None]]] = []
        self._queued = 0  # bytes waiting in _queue
        self._writer: asyncio.Task[None] | None = None

    # ------------------------------------------------------------------ writing

    async def append(self, payload: bytes) -> None:
        """Write a record; return once it is on disk (fsynced). JournalError when the
        journal is full or the disk fails: the caller has nothing durable, and says so."""
        record = _HEAD.pack(len(payload), zlib.crc32(payload)) + payload
        if self._size + self._queued + len(record) > self.max_bytes:
            raise JournalError(f"the journal {self.path} is full ({self.max_bytes} bytes)")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((record, future))
        self._queued += len(record)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._flush(), name="journal-writer")
        await future

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue, self._queued = self._queue, [], 0
            data = b"".join(record for record, _ in batch)
            try:
                await asyncio.to_thread(self._write, data)
            except OSError as e:
                error = JournalError(f"the journal {self.path} could not be written: {e}")
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for _, future in batch:
                if not future.done():
                    future.set_result(None)

    def _write(self, data: bytes) -> None:
        """Append and fsync (in a thread); on failure cut the file back to its last record."""
        fd = self._open()
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, self._size)
            raise
        self._size += len(data)

    def _open(self) -> int:
        if self._fd is None:
            self.directory.mkdir(parents=True, exist_ok=True)
            # Locked before it gets its name: a replayer never takes a live file for a dead one.
            tmp = self.path.with_suffix(".new")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(tmp, self.path)
            _fsync_dir(self.directory)
            self._size = os.fstat(fd).st_size
            self._fd = fd
        return self._fd

    # ------------------------------------------------------------------ replaying

    @property
    def pending(self) -> bool:
        """Whether this process's own file holds records not yet replayed."""
        return self._size > 0 or bool(self._queue)

    @property
    def size(self) -> int:
        return self._size

    def own(self) -> tuple[Path, int] | None:
        """This process's file and how far it is written (what a replay may read)."""
        return (self.path, self._size) if self._size else None

    def settle(self, upto: int) -> bool:
        """Empty this process's file once everything up to `upto` was replayed and nothing
        came after; False when more came meanwhile (replayed next time)."""
        if self._fd is None or self._size != upto or self._queue or (
                self._writer is not None and not self._writer.done()):
            return False
        os.ftruncate(self._fd, 0)
        os.fsync(self._fd)
        self._size = 0
        return True

    def orphans(self) -> list[Orphan]:
        """Files of processes that died (their lock is free), locked for replay by us."""
        out: list[Orphan] = []
        with contextlib.suppress(FileNotFoundError):
            for path in sorted(self.directory.glob("*" + SUFFIX)):
                if path == self.path:
                    continue
                try:
                    fd = os.open(path, os.O_RDONLY)
                except FileNotFoundError:
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)  # its process lives and replays it
                    continue
                out.append(Orphan(path, fd))
        return out

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Orphan:
    """The locked file of a dead process: read it, replay it, then `remove` it."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path, self._fd = path, fd

    def remove(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        _fsync_dir(self.path.parent)
        self.release()

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def records(path: Path, upto: int | None = None) -> Iterator[bytes]:
    """The payloads of a journal file, oldest first, up to byte `upto`; a torn or corrupt
    record ends the file (it was never acknowledged)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return
    if upto is not None:
        data = data[:upto]
    at = 0
    while at + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, at)
        payload = data[at + _HEAD.size: at + _HEAD.size + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            log.warning("journal ends with a torn record", path=str(path), at=at)
            return
        yield payload
        at += _HEAD.size + length


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
