"""The state layer's Redis client is typed where it is given (issue 15, step 5).

A lint over `warnbus/state/` (syntax trees): every parameter that takes the Redis client is
annotated `RedisClient` (one server's client or a cluster's), never `Any` or nothing; inside,
a class may keep it as `Any` to decode the replies itself. And the alias admits both
clients redis-py has, which the store is run with (`test_redis_cluster`).
"""

from __future__ import annotations

import ast
import typing
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from warnbus.state.client import RedisClient

STATE = Path(__file__).resolve().parents[2] / "warnbus" / "state"
#: Parameter names that hold a Redis client in the state layer.
CLIENT_NAMES = frozenset({"redis", "client", "r", "conn"})


def untyped_clients(source: str, path: str = "<test>") -> list[str]:
    """`path:line name: annotation` of each client parameter not typed `RedisClient`."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        args = node.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            if arg.arg not in CLIENT_NAMES:
                continue
            note = ast.unparse(arg.annotation) if arg.annotation is not None else "(none)"
            if note != "RedisClient":
                out.append(f"{path}:{node.lineno} {node.name}({arg.arg}: {note})")
    return out


def test_every_client_parameter_of_the_state_layer_is_typed() -> None:
    found = [p for f in sorted(STATE.glob("*.py"))
             for p in untyped_clients(f.read_text(), f.relative_to(STATE.parents[1]).as_posix())]
    assert found == []


def test_the_lint_sees_an_untyped_client() -> None:
    src = ("class A:\n    def __init__(self, redis: Any) -> None: ...\n"
           "async def f(redis, n: int) -> None: ...\n"
           "def g(redis: Redis) -> None: ...\n"
           "def ok(redis: RedisClient, other: Any) -> None: ...\n")
    assert sorted(p.split(" ", 1)[1] for p in untyped_clients(src)) == [
        "__init__(redis: Any)", "f(redis: (none))", "g(redis: Redis)"]


def test_the_client_type_is_a_servers_or_a_clusters() -> None:
    assert set(typing.get_args(RedisClient)) == {Redis, RedisCluster}
