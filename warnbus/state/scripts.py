"""The Lua scripts' machinery: each script is read from its `.lua` file beside the module that
runs it, gets the state constants it names generated from the Python enums, and is called
with its KEYS and ARGV by name.

Every state transition is one atomic compare-and-set inside Redis; each script touches the keys
of one campaign (one hash tag), one lane or the timer keys, so all of them run on a Redis
Cluster. A script names its KEYS and ARGV on its first lines, which are what the Python call
binds to (`Script`):

    local meta, dstate, stopped = unpack(KEYS)
    local batch = unpack(ARGV)               -- exactly these arguments
    local now, new_state = unpack(ARGV, 1, 2)  -- these, then more (documented by the script)

and uses no other `KEYS` (nor `ARGV`, unless more follow). States are never written as
literals in a script: it names a member (`DS.SENDING`, `MF.STATE`: a meta field), a named set
(`GS_CLOSED[state]`) or a mapping (`TRANK`), all generated from `warnbus.domain.states` and
`warnbus.domain.meta` (see `ENUMS`, `SETS`, `MAPS`) and prepended to each script that names
them; a member it names becomes a string constant (`local DS_SENDING = 'sending'`), and one
that is no member fails the import. tests/engine/test_lua_states.py checks every name a
script uses against its enum, and that every member is known to some script.
State strings in Redis:

- delivery state (`dstate`): "state|attempts|lease_until[|holder]" (DeliveryState; a claim
  keeps its holder, a cancelled twin its carrier);
- grid state (`grids`): "state|level|holder" (GridState) where level is the index in the
  chain (0 primary, 1 backup, 2 village head, ...) and holder the person being called now;
- target state (`tstate`): TargetState, only moving forward;
- counters live in the campaign's `meta` hash: `t_<TargetState>`, `g_<GridState>`,
  attempts, duplicates (`warnbus.domain.meta`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import msgspec

from warnbus.domain.feedback import FeedbackKind
from warnbus.domain.meta import GRID_COUNT, META_FIELDS, TARGET_COUNT
from warnbus.domain.models import DeliveryKind
from warnbus.domain.states import (
    TARGET_OF,
    AuditEvent,
    CampaignState,
    DeliveryReport,
    DeliveryState,
    GridState,
    TargetState,
)
from warnbus.domain.targets import DEVICE_PREFIX
from warnbus.state.client import RedisClient

# --------------------------------------------------------------------------- constants

#: The enums a script may name, by the name of their Lua table (`DS.SENDING`).
ENUMS: dict[str, type[StrEnum]] = {
    "DS": DeliveryState, "DR": DeliveryReport, "TS": TargetState, "GS": GridState,
    "CS": CampaignState, "DK": DeliveryKind, "EV": AuditEvent, "FK": FeedbackKind,
}
#: Named sets a script may test (`DS_CLAIMABLE[state]`), each a Lua table of value -> true.
SETS: dict[str, frozenset[StrEnum]] = {
    "DS_CLAIMABLE": DeliveryState.CLAIMABLE,
    "DS_RECORDED": DeliveryState.RECORDED,
    "DS_GAVE_UP": DeliveryState.GAVE_UP,
    "DS_REACHED": DeliveryState.REACHED,
    "DS_AWAITING_REPORT": DeliveryState.AWAITING_REPORT,
    "DS_SETTLED": DeliveryState.SETTLED,
    "DR_ALL": frozenset(DeliveryReport),
    "GS_CLOSED": GridState.CLOSED,
    "GS_CONFIRMABLE": GridState.CONFIRMABLE,
    "GS_VISITABLE": GridState.VISITABLE,
    "CS_ENDED": CampaignState.ENDED,
    "DK_CALLS": DeliveryKind.CALLS,
    "DK_WHILE_ACTIVE": DeliveryKind.WHILE_ACTIVE,
}
#: Mappings a script may look up: the target state a recorded delivery state moves its target
#: to, and each forward target state's rank (TargetState.FORWARD).
MAPS: dict[str, Mapping[StrEnum, str | int]] = {
    "DS_TARGET": {d: t.value for d, t in TARGET_OF.items()},
    "TRANK": {t: i + 1 for i, t in enumerate(TargetState.FORWARD)},
}
_LUA_STRING = re.compile(r"[A-Za-z0-9_:.-]*")  # what is written between quotes unescaped


def _q(value: str) -> str:
    if not _LUA_STRING.fullmatch(value):
        raise ValueError(f"{value!r} needs escaping in Lua")
    return f"'{value}'"


def _lua(value: str | int) -> str:
    return _q(value) if isinstance(value, str) else str(value)


def _constants() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, enum in ENUMS.items():
        out[name] = "{" + ", ".join(f"{m.name}={_q(m.value)}" for m in enum) + "}"
    out["MF"] = "{" + ", ".join(f"{f.upper()}={_q(f)}" for f in META_FIELDS) + "}"
    for name, members in SETS.items():
        out[name] = "{" + ", ".join(f"[{_q(m.value)}]=true" for m in sorted(members)) + "}"
    for name, mapping in MAPS.items():
        out[name] = "{" + ", ".join(f"[{_q(k.value)}]={_lua(v)}" for k, v in mapping.items()) + "}"
    out["TARGET_COUNT"] = _q(TARGET_COUNT)
    out["GRID_COUNT"] = _q(GRID_COUNT)
    out["DEVICE_PREFIX"] = _q(DEVICE_PREFIX)
    return out


#: Lua tables by name: `local <name> = <definition>` heads each script that names a set or a
#: mapping (an enum's table is the reference the tests read back; scripts get its members).
CONSTANTS: dict[str, str] = _constants()

# --------------------------------------------------------------------------- scripts

_NAMES = r"[a-z_][a-z0-9_]*(?:, [a-z_][a-z0-9_]*)*"
_KEYS_LINE = re.compile(rf"local ({_NAMES}) = unpack\(KEYS\)")
_ARGV_LINE = re.compile(rf"local ({_NAMES}) = unpack\(ARGV(?:, 1, (\d+))?\)")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MEMBER = re.compile(rf"\b({'|'.join([*ENUMS, 'MF'])})\.([A-Z][A-Z0-9_]*)\b")
_FUNCTION = re.compile(r"^local function ([a-z_][a-z0-9_]*)", re.M)
_HERE = Path(__file__).resolve().parent
_HELPERS_BODY = (_HERE / "helpers.lua").read_text()
_HELPERS = frozenset(_FUNCTION.findall(_HELPERS_BODY))
#: Every script loaded, by "<module>.<name>" (the cluster test runs and checks them all).
LOADED: dict[str, Script] = {}


def strip_comments(text: str) -> str:
    """The Lua code of `text` without its comments (strings kept: `'--'` is code)."""
    out: list[str] = []
    for line in text.splitlines():
        code, quote, i = [], "", 0
        while i < len(line):
            c = line[i]
            if quote:
                code.append(c)
                if c == "\\":
                    code.append(line[i + 1 : i + 2])
                    i += 1
                elif c == quote:
                    quote = ""
            elif c in "'\"":
                quote = c
                code.append(c)
            elif line.startswith("--", i):
                if line.startswith("--[", i):
                    raise ValueError(f"long comments are not used: {line}")
                break
            else:
                code.append(c)
            i += 1
        out.append("".join(code).rstrip())
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class Script:
    """One Lua script: its file's text, what Redis runs, and its KEYS and ARGV by name."""

    name: str
    body: str  # the .lua file as written
    source: str  # the constants and helpers it names, then the body
    keys: tuple[str, ...]
    argv: tuple[str, ...]
    variadic: bool  # more ARGV follow the named ones

    def bind(self, redis: RedisClient) -> BoundScript:
        return BoundScript(self, redis)


def load(beside: str, name: str) -> Script:
    """Load `<name>.lua` from the folder of the module file `beside` (its `__file__`)."""
    path = Path(beside).resolve().with_name(f"{name}.lua")
    script = parse(f"{Path(beside).stem}.{name}", path.read_text())
    LOADED[script.name] = script
    return script


def parse(name: str, body: str) -> Script:
    """A script from its text; its first code lines name its KEYS and ARGV (module doc)."""
    lines = [ln for ln in strip_comments(body).splitlines() if ln.strip()]
    if len(lines) < 2:
        raise ValueError(f"{name}: a script names its KEYS and ARGV on its first lines")
    k, a = _KEYS_LINE.fullmatch(lines[0]), _ARGV_LINE.fullmatch(lines[1])
    if k is None or a is None:
        raise ValueError(f"{name}: its first code lines must be `local ... = unpack(KEYS)` and "
                         f"`local ... = unpack(ARGV[, 1, n])`, not {lines[:2]}")
    keys, argv = tuple(k.group(1).split(", ")), tuple(a.group(1).split(", "))
    variadic = a.group(2) is not None
    if variadic and int(a.group(2)) != len(argv):
        raise ValueError(f"{name}: unpack(ARGV, 1, {a.group(2)}) names {len(argv)} arguments")
    rest = "\n".join(lines[2:])
    if "KEYS" in rest or ("ARGV" in rest and not variadic):
        raise ValueError(f"{name}: KEYS and ARGV are used only through their names")
    code = "\n".join(lines)
    words = set(_WORD.findall(code))
    parts = [_HELPERS_BODY] if words & _HELPERS else []
    if parts:
        words |= set(_WORD.findall(strip_comments(_HELPERS_BODY)))
        code += "\n" + strip_comments(_HELPERS_BODY)
    # A member a script names (`DS.SENDING`) becomes a local of its own (`DS_SENDING`): a
    # string constant, as fast as a literal; a table of every member, built on each call,
    # cost a claim about a tenth more of Redis's time.
    members = sorted(set(_MEMBER.findall(code)))
    head = [f"local {t}_{m} = {_q(_member_value(t, m))}" for t, m in members]
    head += [f"local {c} = {CONSTANTS[c]}" for c in CONSTANTS
             if c in words and c not in ENUMS and c != "MF"]
    source = "\n".join([*head, *parts, body])
    source = _MEMBER.sub(lambda mo: f"{mo.group(1)}_{mo.group(2)}", source)
    return Script(name, body, source, keys, argv, variadic)


def _member_value(table: str, member: str) -> str:
    if table == "MF":
        if member.lower() not in META_FIELDS:
            raise ValueError(f"MF.{member} is no field of a campaign's meta")
        return member.lower()
    try:
        return str(ENUMS[table][member].value)
    except KeyError:
        raise ValueError(f"{table}.{member} is no member of {ENUMS[table].__name__}") from None


class BoundScript:
    """A script registered with a Redis client; called with its keys and arguments by name.

    `keys` is an object holding each named key as an attribute (`keys.CampaignKeys`) or a
    dict of them; the arguments are keywords named as the script names its ARGV, with
    positional ones after them when the script takes more."""

    __slots__ = ("_run", "script")

    def __init__(self, script: Script, redis: RedisClient) -> None:
        self.script = script
        self._run = redis.register_script(script.source)

    async def __call__(self, keys: object, /, *more: Any, **argv: Any) -> Any:
        sc = self.script
        if len(argv) != len(sc.argv) or (more and not sc.variadic):
            raise TypeError(f"{sc.name} takes ARGV {', '.join(sc.argv)}"
                            + (" and more" if sc.variadic else "") + f", not {sorted(argv)}")
        args = [argv[n] for n in sc.argv]
        if more:
            args += more
        if isinstance(keys, dict):
            names = [keys[n] for n in sc.keys]
        else:
            names = [getattr(keys, n) for n in sc.keys]
        return await self._run(keys=names, args=args)


# --------------------------------------------------------------------------- arguments

_pack = msgspec.msgpack.Encoder()


def pack_args(args: Sequence[str | bytes]) -> bytes:
    """The arguments of a bulk script as one msgpack array (`cmsgpack.unpack` in the script).

    A call with thousands of arguments costs the client one pack per argument (pure Python
    in redis-py's asyncio connection); one msgpack blob costs far less. Every item is packed
    as a msgpack string, which the script sees exactly as it would an ARGV value: Redis's
    cmsgpack does not read the msgpack `bin` type that msgspec writes for bytes.
    """
    if all(type(a) is str for a in args):
        return _pack.encode(args)
    parts = [_header(len(args), 0x90, 16, 0xDC, 0xDD)]
    for a in args:
        b = a.encode() if isinstance(a, str) else a
        parts.append(_str_header(len(b)))
        parts.append(b)
    return b"".join(parts)


def _header(n: int, fix: int, fix_limit: int, b16: int, b32: int) -> bytes:
    if n < fix_limit:
        return bytes((fix | n,))
    if n < 0x10000:
        return bytes((b16,)) + n.to_bytes(2, "big")
    return bytes((b32,)) + n.to_bytes(4, "big")


def _str_header(n: int) -> bytes:
    if n < 32:
        return bytes((0xA0 | n,))
    if n < 0x100:
        return bytes((0xD9, n))
    return _header(n, 0, 0, 0xDA, 0xDB)
