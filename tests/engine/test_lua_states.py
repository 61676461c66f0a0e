"""The Lua scripts write and compare only members of the Python state enums.

Each script's text (its .lua file beside the module that runs it) is parsed: it may not hold a
state as a literal, every constant it names (`DS.SENDING`, `GS_CLOSED[...]`, `MF.STATE`) must
be a member or set of the enums it is generated from, and every member must be known to some
script (or be listed below as Python's alone, with the reason). The generated tables are read
back from a real Redis; states a script gets from Python are checked there too.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from warnbus.domain.meta import META_FIELDS
from warnbus.domain.models import Attempt, Delivery, DeliveryKind, Level, Outcome, TargetKind
from warnbus.domain.states import AuditEvent, CampaignState, DeliveryState, GridState
from warnbus.state import keys, queue, ratelimit, scripts, store
from warnbus.state.store import SendRecord, Store

_LOADED_BY = (store, queue, ratelimit)  # importing them loads every script
HELPERS = Path(scripts.__file__).with_name("helpers.lua").read_text()
BODIES = {**{n: s.body for n, s in scripts.LOADED.items()}, "helpers": HELPERS}
STRING = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")
MEMBER = re.compile(r"\b([A-Z]{2})\.([A-Za-z_][A-Za-z0-9_]*)")
UPPER = re.compile(r"\b([A-Z][A-Z0-9_]+)\b")
ATTRIBUTE = re.compile(r"\.[A-Za-z_][A-Za-z0-9_]*")
#: Members no script needs to know, and why.
PYTHON_ONLY: dict[StrEnum, str] = {
    CampaignState.PLANNING: "never stored: what a campaign is before its meta has a state",
    DeliveryKind.CANCEL: "a claim sends a 解除 notice whatever the campaign's state",
    AuditEvent.DOOR_ORDER: "appended with the order in one transaction: nothing is compared",
}
STATE_VALUES = {m.value for e in scripts.ENUMS.values() for m in e}


def code(name: str) -> str:
    return scripts.strip_comments(BODIES[name])


def literals(text: str) -> list[str]:
    return [a or b for a, b in STRING.findall(text)]


def names(text: str) -> set[str]:
    """The upper-case names a script's code uses, not in strings nor after a dot."""
    return set(UPPER.findall(ATTRIBUTE.sub("", STRING.sub("''", text))))


def test_every_script_was_found() -> None:
    assert {n.split(".")[1] for n in scripts.LOADED} >= {
        "claim", "record", "status", "ack", "put_targets", "init_grids", "close_grids",
        "advance", "finish", "enqueue", "done", "schedule", "promote", "take_tokens"}


@pytest.mark.parametrize("name", sorted(BODIES))
def test_no_state_or_meta_field_is_a_literal(name: str) -> None:
    found = [s for s in literals(code(name)) if s in STATE_VALUES or s in META_FIELDS]
    assert not found, f"{name} writes {found} by hand: use the generated constants"


@pytest.mark.parametrize("name", sorted(BODIES))
def test_every_constant_a_script_names_exists(name: str) -> None:
    text = code(name)
    for table, member in MEMBER.findall(text):
        if table == "MF":
            assert member.lower() in META_FIELDS, f"{name}: MF.{member} is no meta field"
        else:
            assert table in scripts.ENUMS, f"{name}: {table} is no state enum"
            assert member in scripts.ENUMS[table].__members__, f"{name}: {table}.{member}"
    bare = names(text) - {"KEYS", "ARGV"}
    assert bare <= set(scripts.CONSTANTS), f"{name} names {bare - set(scripts.CONSTANTS)}"


def test_every_member_is_known_to_the_scripts() -> None:
    used: set[str] = set()
    for name in BODIES:
        text = code(name)
        used |= {f"{t}.{m}" for t, m in MEMBER.findall(text)}
        used |= names(text)
    known: set[StrEnum] = set()
    for table, enum in scripts.ENUMS.items():
        known |= {m for m in enum if f"{table}.{m.name}" in used}
    for name, members in scripts.SETS.items():
        if name in used:
            known |= members
    for name, mapping in scripts.MAPS.items():
        if name in used:
            known |= set(mapping)
    unknown = {m for e in scripts.ENUMS.values() for m in e if m not in known}
    assert unknown == set(PYTHON_ONLY), (
        f"known to no script: {sorted(unknown - set(PYTHON_ONLY))}; known after all: "
        f"{sorted(set(PYTHON_ONLY) - unknown)}")


def test_each_script_names_its_keys_and_arguments() -> None:
    ack = scripts.LOADED["store.ack"]
    assert ack.keys == ("meta", "acks", "holds", "grids", "stopped", "tstate", "audit", "first",
                        "dstate", "accepted", "late")
    assert ack.argv == ("person", "ack_blob", "now", "via", "delivery_id", "by", "reply_via")
    ck = keys.campaign("cp_x")
    for name, sc in scripts.LOADED.items():
        if name.startswith(("store.", "deliveries.")):
            assert all(k in ck.__slots__ for k in sc.keys), name  # all of them campaign keys


@pytest.mark.parametrize(("body", "why"), [
    ("local a = unpack(ARGV)\nreturn 1", "first code lines"),
    ("local k = unpack(KEYS)\nreturn redis.call('GET', k)", "first code lines"),
    ("local k = unpack(KEYS)\nlocal a = unpack(ARGV)\nreturn KEYS[2]", "only through"),
    ("local k = unpack(KEYS)\nlocal a = unpack(ARGV)\nreturn ARGV[2]", "only through"),
    ("local k = unpack(KEYS)\nlocal a, b = unpack(ARGV, 1, 3)\nreturn ARGV[4]", "names 2"),
])
def test_a_script_that_does_not_name_them_is_refused(body: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        scripts.parse("bad", body)


def test_comments_and_strings_are_told_apart() -> None:
    text = "local x = '--' -- a comment 'q'\nlocal y = \"a\\\"--b\" -- 'z'"
    assert scripts.strip_comments(text) == "local x = '--'\nlocal y = \"a\\\"--b\""


async def test_generated_tables_read_back_as_the_enums(redis: Redis) -> None:
    for name, definition in scripts.CONSTANTS.items():
        if not definition.startswith("{"):
            continue
        src = (f"local X = {definition}\nlocal out = {{}}\n"
               "for k, v in pairs(X) do table.insert(out, k); table.insert(out, tostring(v)) end\n"
               "return out")
        flat = [x.decode() for x in await redis.eval(src, 0)]
        got = dict(zip(flat[::2], flat[1::2], strict=True))
        if name in scripts.ENUMS:
            want = {m.name: m.value for m in scripts.ENUMS[name]}
        elif name == "MF":
            want = {f.upper(): f for f in META_FIELDS}
        elif name in scripts.SETS:
            want = {m.value: "true" for m in scripts.SETS[name]}
        else:
            want = {k.value: str(v) for k, v in scripts.MAPS[name].items()}
        assert got == want, name


def test_members_a_script_names_are_constants_of_their_values() -> None:
    defined = re.compile(r"^local ([A-Z]{2})_([A-Z][A-Z0-9_]*) = '([^']*)'$", re.M)
    seen = 0
    for name, sc in scripts.LOADED.items():
        for table, member, value in defined.findall(sc.source):
            want = member.lower() if table == "MF" else scripts.ENUMS[table][member].value
            assert value == want, (name, table, member)
            seen += 1
        assert not MEMBER.search(sc.source), f"{name}: a member left as a table lookup"
    assert seen > 30
    with pytest.raises(ValueError, match=r"DS\.SENDINGG"):
        scripts.parse("typo", "local k = unpack(KEYS)\nlocal a = unpack(ARGV)\nreturn DS.SENDINGG")


def _delivery(cid: str) -> Delivery:
    return Delivery("dl_1", cid, "al_1", "p1", TargetKind.PERSON, "sms", 0, DeliveryKind.WARNING,
                    Level.RED, "+8613800000001", "text", 0.0)


async def test_a_state_python_passes_outside_its_set_is_refused(redis: Redis) -> None:
    st = Store(redis)
    cid = "cp_lua_states"
    ck = keys.campaign(cid)
    await redis.hset(ck.meta, mapping={"state": "active", "level": "red"})
    await redis.hset(ck.grids, "g1", "calling|0|p1")
    with pytest.raises(ResponseError, match="not an ended state"):
        await st.finish(cid, CampaignState.ACTIVE, 1.0)
    with pytest.raises(ResponseError, match="not a closed state"):
        await st.close_grids(cid, ["g1"], GridState.CALLING, [], 1.0)
    d = _delivery(cid)
    bad = SendRecord(d, Attempt(d.id, 1, "sms", 1.0, Outcome.ACCEPTED), DeliveryState.QUEUED)
    good = SendRecord(d, Attempt(d.id, 1, "sms", 1.0, Outcome.ACCEPTED), DeliveryState.SENT)
    with pytest.raises(ResponseError, match="not a recorded state"):
        await st.record([good, bad], 1.0)
    assert not await redis.exists(ck.dstate, ck.audit), "a refused record wrote nothing"
    assert (await redis.hget(ck.meta, "state")) == b"active"
    assert (await redis.hget(ck.grids, "g1")) == b"calling|0|p1"


async def test_a_call_names_every_argument(redis: Redis) -> None:
    finish = scripts.LOADED["store.finish"].bind(redis)
    ck = keys.campaign("cp_args")
    with pytest.raises(TypeError, match="new_state, now"):
        await finish(ck, new_state="expired")
    with pytest.raises(TypeError):
        await finish(ck, "extra", new_state="expired", now=1.0)
    assert await finish(ck, new_state="expired", now=1.0) == 0  # no such campaign: not active
