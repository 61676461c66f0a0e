"""One owner for a campaign's keys: only `warnbus/state/` reads or writes them.

A lint over the source (its syntax trees, not its text): outside `warnbus/state/`, no module
builds a campaign's key names or names the campaign indexes of `warnbus.state.keys`, writes
a campaign key name by hand, or reaches into the store's Redis client; and the alert's path
(`warnbus/flow/`) sends no Redis command at all. The engine's web, console, runtime and tools
go through the store's named methods (`Store`, `Store.messages`, `Store.console`) and the
queue's classes (`Lanes`, `Timers`, `Inbox`).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from warnbus.state import keys

REPO = Path(__file__).resolve().parents[2]
#: What only the state layer may name: the keys of a campaign and the campaign indexes.
CAMPAIGN_KEYS = frozenset({"campaign", "CampaignKeys", "console_campaign", "alert_index",
                           "CAMPAIGNS", "MESSAGES", "ACTIVE", "ENDED", "INBOX", "DEAD"})
#: Key names as written by hand (the campaign hash tag, the indexes' names).
HAND_WRITTEN = ("{c:", keys.CAMPAIGNS, keys.MESSAGES, keys.INBOX, keys.DEAD, keys.ACTIVE,
                keys.ENDED, f"{keys.PREFIX}:alert:")
#: Outside observers that measure what an engine wrote, with their own client, as the tests
#: do; they change nothing of a campaign (ending one goes through `Store.finish`).
OBSERVERS = {
    "warnbus/tools/bench/env.py": "the bench's poll of inbox and lane depths",
    "warnbus/tools/bench/fanout.py": "the bench's count of attempts over every campaign",
}


def sources() -> list[Path]:
    out = []
    for top in ("warnbus", "channels", "rules"):
        out += [p for p in sorted((REPO / top).rglob("*.py"))
                if not p.is_relative_to(REPO / "warnbus" / "state")]
    return out


def problems(source: str, *, in_flow: bool) -> list[str]:
    """What a module outside the state layer does that only the state layer may."""
    tree = ast.parse(source)
    keys_names = {"keys"}  # names the keys module is bound to
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "warnbus.state":
            keys_names |= {a.asname or a.name for a in node.names if a.name == "keys"}
        elif isinstance(node, ast.ImportFrom) and node.module == "warnbus.state.keys":
            found += [f"imports keys.{a.name}" for a in node.names if a.name in CAMPAIGN_KEYS]
        elif isinstance(node, ast.Import):
            keys_names |= {a.asname for a in node.names
                           if a.name == "warnbus.state.keys" and a.asname}
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Attribute):
            base = node.value
            if (isinstance(base, ast.Name) and base.id in keys_names
                    and node.attr in CAMPAIGN_KEYS):
                found.append(f"{line}: keys.{node.attr}")
            if node.attr == "_redis" and not (isinstance(base, ast.Name) and base.id == "self"):
                found.append(f"{line}: reaches into a client's _redis")
            if in_flow and isinstance(base, ast.Attribute) and base.attr == "redis":
                found.append(f"{line}: a Redis command in the alert's path (.redis.{node.attr})")
            if in_flow and node.attr == "pipeline":
                found.append(f"{line}: a Redis pipeline in the alert's path")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            hits = [k for k in HAND_WRITTEN if k in node.value]
            if hits:
                found.append(f"{line}: a key name by hand ({hits[0]!r})")
    return found


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_outside_the_state_layer_touches_a_campaign_key(path: Path) -> None:
    rel = str(path.relative_to(REPO))
    if rel in OBSERVERS:
        pytest.skip(f"an outside observer: {OBSERVERS[rel]}")
    found = problems(path.read_text(), in_flow=rel.startswith("warnbus/flow/"))
    assert not found, f"{rel}: " + "; ".join(found)


def test_the_observers_exist() -> None:
    for rel in OBSERVERS:
        assert (REPO / rel).is_file(), rel


@pytest.mark.parametrize(("source", "in_flow", "what"), [
    ("from warnbus.state import keys\nk = keys.campaign(c).meta", False, "keys.campaign"),
    ("from warnbus.state import keys as K\nK.CAMPAIGNS", False, "keys.CAMPAIGNS"),
    ("import warnbus.state.keys as ks\nks.console_campaign(c)", False, "keys.console_campaign"),
    ("from warnbus.state.keys import alert_index", False, "imports keys.alert_index"),
    ("x = f'wb:{{c:{cid}}}:meta'", False, "by hand"),
    ("x = 'wb:inbox'", False, "by hand"),
    ("await ctx.store._redis.hget(k, 'level')", False, "_redis"),
    ("await ctx.redis.hmget(k, ids)", True, "alert's path"),
    ("pipe = self.ctx.redis.pipeline()", True, "pipeline"),
])
def test_the_check_finds_what_it_forbids(source: str, in_flow: bool, what: str) -> None:
    assert any(what in p for p in problems(source, in_flow=in_flow)), problems(
        source, in_flow=in_flow)


def test_constructing_state_objects_and_other_keys_are_allowed() -> None:
    assert problems("DeviceStatusBook(ctx.redis)\nRateLimiter(ctx.redis)", in_flow=True) == []
    console = ("from warnbus.state import keys\nawait self.redis.hget(keys.CONSOLE_USERS, n)\n"
               "keys.lane('sms', 0)")
    assert problems(console, in_flow=False) == []
