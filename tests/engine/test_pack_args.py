"""`pack_args`: what a bulk script unpacks is exactly what the client packed (real Redis)."""

from __future__ import annotations

import pytest
from redis.asyncio import Redis as AsyncRedis

from warnbus.state.scripts import pack_args

# Returns the unpacked items, so the test compares them byte for byte.
ECHO = "return cmsgpack.unpack(ARGV[1])"

CASES = {
    "empty": [],
    "short strings": ["a", "b", ""],
    "chinese": ["红色预警", "请立即转移"],
    "fixstr edge": ["x" * 31, "y" * 32],
    "str8 / str16 edges": ["a" * 255, "b" * 256, "c" * 65535],
    "str32": ["d" * 70000],
    "binary, not utf-8": [b"\xff\x00\xc4\x01", b"\x80" * 300],
    "mixed": ["1700000000.25", b"\x93\xa1a", "30.0"],
    "array16": ["v"] * 20,
    "array32": [b"w"] * 70000,
}


@pytest.mark.parametrize("args", list(CASES.values()), ids=list(CASES))
async def test_the_script_sees_exactly_the_packed_arguments(
    redis: AsyncRedis, args: list[str | bytes]
) -> None:
    got = await redis.eval(ECHO, 0, pack_args(args))
    want = [a.encode() if isinstance(a, str) else a for a in args]
    assert (got or []) == want
