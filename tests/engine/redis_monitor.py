"""Record every command a real redis-server runs (MONITOR) and check it against Redis Cluster.

- `parse_line` reads one MONITOR line exactly: its arguments are quoted by the server's
  `sdscatrepr` (`\\\\`, `\\"`, `\\n`, `\\r`, `\\t`, `\\a`, `\\b`, `\\xHH` for any other byte that
  is not printable ASCII), so binary values (msgpack blobs, UTF-8 text) come back byte for byte.
- `Monitor` is a raw MONITOR connection (not redis-py's, whose parser is a regex) that keeps
  every line until `stop()`, which waits for a marker so that no command is left unread.
- `analyse` asks the server which arguments of each command are keys (`COMMAND GETKEYS`, which
  knows EVAL/EVALSHA numkeys and XREADGROUP's STREAMS) and reports, in Redis Cluster terms:
  commands whose keys are in more than one hash slot, MULTI/EXEC blocks that span slots, and
  commands a Lua script ran on keys that were not passed to it in KEYS.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis
from redis.crc import key_slot

_ESCAPES = {ord("n"): b"\n", ord("r"): b"\r", ord("t"): b"\t", ord("a"): b"\a",
            ord("b"): b"\b", ord('"'): b'"', ord("\\"): b"\\"}
_HEX = b"0123456789abcdefABCDEF"
_SCRIPT_CALLS = {"EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO"}


@dataclass(frozen=True)
class Command:
    """One command as MONITOR shows it: who ran it (`lua` inside a script) and its argv."""

    at: float
    db: int
    client: str
    args: tuple[bytes, ...]

    @property
    def name(self) -> str:
        return self.args[0].decode("latin-1").upper()

    @property
    def from_lua(self) -> bool:
        return self.client == "lua"


def parse_line(line: bytes) -> Command:
    """Parse one MONITOR line (`+` and CRLF optional); raise ValueError if it is not one."""
    line = line.rstrip(b"\r\n")
    if line.startswith(b"+"):
        line = line[1:]
    ts, sep, rest = line.partition(b" ")
    if not sep or not rest.startswith(b"["):
        raise ValueError(f"not a MONITOR line: {line[:80]!r}")
    db_raw, sep, rest = rest[1:].partition(b" ")
    end = rest.find(b'] "')
    if not sep or not db_raw.isdigit() or end < 0:
        raise ValueError(f"no [db client] in MONITOR line: {line[:80]!r}")
    client = rest[:end].decode("latin-1")
    args = _parse_args(rest[end + 2 :])
    if not args:
        raise ValueError(f"no command in MONITOR line: {line[:80]!r}")
    return Command(float(ts), int(db_raw), client, tuple(args))


def _parse_args(s: bytes) -> list[bytes]:
    out: list[bytes] = []
    i, n = 0, len(s)
    while i < n:
        if s[i] != ord('"'):
            raise ValueError(f"expected a quoted argument at {i}: {s[i:i + 20]!r}")
        i += 1
        buf = bytearray()
        while True:
            if i >= n:
                raise ValueError("unterminated argument")
            c = s[i]
            if c == ord('"'):
                i += 1
                break
            if c == ord("\\"):
                if i + 1 >= n:
                    raise ValueError("dangling backslash")
                e = s[i + 1]
                if e == ord("x"):
                    hx = s[i + 2 : i + 4]
                    if len(hx) != 2 or any(h not in _HEX for h in hx):
                        raise ValueError(f"bad \\x escape: {s[i:i + 4]!r}")
                    buf.append(int(hx, 16))
                    i += 4
                    continue
                if e not in _ESCAPES:
                    raise ValueError(f"unknown escape \\{chr(e)}")
                buf += _ESCAPES[e]
                i += 2
                continue
            buf.append(c)
            i += 1
        out.append(bytes(buf))
        if i < n:
            if s[i] != ord(" "):
                raise ValueError(f"expected a space at {i}: {s[i:i + 20]!r}")
            i += 1
            if i >= n:
                raise ValueError("trailing space")
    return out


def quote(arg: bytes) -> bytes:
    """What the server writes for `arg` (its sdscatrepr), to test the parser against."""
    out = bytearray(b'"')
    for c in arg:
        if c in (ord("\\"), ord('"')):
            out += b"\\" + bytes([c])
        elif c == 10:
            out += b"\\n"
        elif c == 13:
            out += b"\\r"
        elif c == 9:
            out += b"\\t"
        elif c == 7:
            out += b"\\a"
        elif c == 8:
            out += b"\\b"
        elif 32 <= c < 127:
            out.append(c)
        else:
            out += b"\\x%02x" % c
    return bytes(out + b'"')


class Monitor:
    """A MONITOR connection of its own; `async with Monitor(url) as m: ...; m.commands`."""

    def __init__(self, url: str) -> None:
        u = urlsplit(url)
        self.host, self.port = u.hostname or "127.0.0.1", u.port or 6379
        self.url = url
        self.lines: list[bytes] = []
        self.commands: list[Command] = []
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._marker = b""
        self._seen = asyncio.Event()

    async def __aenter__(self) -> Monitor:
        # A line carries a whole command: an 800 KB CAP polygon is one line.
        reader, self._writer = await asyncio.open_connection(self.host, self.port, limit=1 << 27)
        self._writer.write(b"*1\r\n$7\r\nMONITOR\r\n")
        await self._writer.drain()
        ok = await reader.readline()
        if ok != b"+OK\r\n":
            raise RuntimeError(f"MONITOR refused: {ok!r}")
        self._task = asyncio.create_task(self._read(reader))
        return self

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            if not line.startswith(b"+"):
                raise RuntimeError(f"unexpected MONITOR reply: {line[:200]!r}")
            if self._marker and self._marker in line:
                self._seen.set()
                continue
            self.lines.append(line)

    async def stop(self) -> list[Command]:
        """Wait until everything sent so far was read, then close; return the commands."""
        self._marker = uuid.uuid4().hex.encode()
        client = Redis.from_url(self.url)
        try:
            await client.echo(self._marker)
        finally:
            await client.aclose()
        await asyncio.wait_for(self._seen.wait(), 30)
        assert self._task is not None and self._writer is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._writer.close()
        self.commands = [parse_line(x) for x in self.lines]
        return self.commands

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._writer is not None:
            self._writer.close()


# --------------------------------------------------------------------------- analysis


@dataclass
class ScriptRun:
    call: Command  # the EVAL/EVALSHA line
    keys: tuple[bytes, ...]  # its KEYS
    inner: list[Command] = field(default_factory=list)  # what the script ran


@dataclass
class Report:
    commands: int = 0
    names: Counter[str] = field(default_factory=Counter)
    multi_key: Counter[str] = field(default_factory=Counter)  # multi-key commands, by name
    scripts: dict[bytes, int] = field(default_factory=dict)  # sha -> runs (with inner commands)
    transactions: int = 0
    cross_slot: list[str] = field(default_factory=list)
    cross_slot_multi: list[str] = field(default_factory=list)
    outside_keys: list[str] = field(default_factory=list)
    unresolved: list[str] = field(default_factory=list)

    @property
    def findings(self) -> list[str]:
        return self.cross_slot + self.cross_slot_multi + self.outside_keys + self.unresolved


def _show(cmd: Command, keys: Sequence[bytes] = ()) -> str:
    head = b" ".join(a[:60] for a in cmd.args[:4]).decode("utf-8", "replace")
    slots = sorted({key_slot(k) for k in keys})
    return f"[{cmd.client}] {head}{' ...' if len(cmd.args) > 4 else ''} keys=" + ", ".join(
        f"{k.decode('utf-8', 'replace')}@{key_slot(k)}" for k in keys[:6]) + f" slots={slots}"


async def keys_of(redis: Redis, commands: Sequence[Command], batch: int = 500
                  ) -> tuple[list[tuple[bytes, ...]], list[str]]:
    """The keys of each command, by `COMMAND GETKEYS` on the server; and what it could not
    resolve. A command of one word has no keys (GETKEYS refuses it)."""
    out: list[tuple[bytes, ...]] = [() for _ in commands]
    problems: list[str] = []
    r: Any = redis
    # redis-py parses any COMMAND reply as COMMAND INFO: take GETKEYS replies as they are.
    r.set_response_callback("COMMAND", lambda response, **_options: response)
    todo = [i for i, c in enumerate(commands) if len(c.args) > 1]
    for start in range(0, len(todo), batch):
        chunk = todo[start : start + batch]
        pipe = r.pipeline(transaction=False)
        for i in chunk:
            pipe.execute_command("COMMAND", "GETKEYS", *commands[i].args)
        replies = await pipe.execute(raise_on_error=False)
        for i, reply in zip(chunk, replies, strict=True):
            if isinstance(reply, Exception):
                if "no key arguments" not in str(reply):
                    problems.append(f"{_show(commands[i])}: {reply}")
                continue
            out[i] = tuple(k if isinstance(k, bytes) else str(k).encode() for k in reply)
    return out, problems


def _script_runs(commands: Sequence[Command], keys: Sequence[tuple[bytes, ...]], rep: Report
                 ) -> list[ScriptRun | None]:
    """The script call each `lua` command belongs to. Lua's own commands run between their
    EVAL line and the next client command (Redis 7.0 shows the call first; later versions
    may show it after): each run of `lua` lines goes to the script call next to it."""
    owner: list[ScriptRun | None] = [None] * len(commands)
    i = 0
    while i < len(commands):
        if not commands[i].from_lua:
            i += 1
            continue
        j = i
        while j < len(commands) and commands[j].from_lua:
            j += 1
        if i > 0 and commands[i - 1].name in _SCRIPT_CALLS:
            call_i = i - 1
        elif j < len(commands) and commands[j].name in _SCRIPT_CALLS:
            call_i = j
        else:
            near = " | ".join(_show(x) for x in [*commands[max(0, i - 3) : i + 1],
                                                 *commands[j : j + 3]])
            rep.outside_keys.append(
                f"Lua commands without a script call: {_show(commands[i])}; {near}")
            i = j
            continue
        call = commands[call_i]
        run = ScriptRun(call, keys[call_i], list(commands[i:j]))
        owner[i:j] = [run] * (j - i)
        sha = call.args[1] if call.name.startswith("EVALSHA") else b"eval"
        rep.scripts[sha] = rep.scripts.get(sha, 0) + 1
        i = j
    return owner


async def analyse(redis: Redis, commands: Sequence[Command]) -> Report:
    rep = Report(commands=len(commands))
    keys, rep.unresolved = await keys_of(redis, commands)
    owner = _script_runs(commands, keys, rep)
    open_multi: dict[str, list[tuple[Command, tuple[bytes, ...]]]] = {}
    for c, ks, run in zip(commands, keys, owner, strict=True):
        rep.names[("lua:" if c.from_lua else "") + c.name] += 1
        if len(ks) > 1:
            rep.multi_key[c.name] += 1
        if len({key_slot(k) for k in ks}) > 1:
            rep.cross_slot.append(_show(c, ks))
        extra = [k for k in ks if k not in run.keys] if run is not None else []
        if run is not None and extra:
            rep.outside_keys.append(
                f"{_show(c, ks)} touches {extra!r}, not in the script's KEYS "
                f"{list(run.keys)!r} ({_show(run.call)})")
        if c.from_lua:
            continue
        if c.name == "MULTI":
            open_multi[c.client] = []
        elif c.name in ("EXEC", "DISCARD") and c.client in open_multi:
            block = open_multi.pop(c.client)
            rep.transactions += 1
            if len({key_slot(k) for _c, kk in block for k in kk}) > 1:
                rep.cross_slot_multi.append(
                    "MULTI " + "; ".join(_show(bc, bk) for bc, bk in block[:5]))
        elif c.client in open_multi:
            open_multi[c.client].append((c, ks))
    return rep
