"""Client CPU per command of redis-py's asyncio pools: the engine's bounded blocking pool,
the plain pool and a single connection, `GET` in a loop.

    .venv/bin/python benchmarks/redis_checkout_micro.py

(docs/benchmarks.md, "Noticed, left alone"). Starts its own redis-server in a temporary
directory.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import redis.asyncio as aioredis

from warnbus.runtime.services import start_redis

CALLS = 20_000


async def per_call_us(client: aioredis.Redis) -> float:
    await client.ping()
    t = time.process_time()
    for _ in range(CALLS):
        await client.get("x")
    await client.aclose()
    return 1e6 * (time.process_time() - t) / CALLS


async def main(url: str) -> None:
    for _ in range(2):
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64)
        print("blocking pool (the engine's) "
              f"{await per_call_us(aioredis.Redis(connection_pool=pool)):6.1f} µs")
        print("plain pool                   "
              f"{await per_call_us(aioredis.Redis.from_url(url)):6.1f} µs")
        single = aioredis.Redis.from_url(url, single_connection_client=True)
        print(f"single connection            {await per_call_us(single):6.1f} µs")
        # redis-py 8 sets socket_timeout=5 by default: every send then runs in
        # asyncio.wait_for (a task of its own) and every read in a timeout context.
        pool = aioredis.BlockingConnectionPool.from_url(url, max_connections=64,
                                                        socket_timeout=None)
        print("blocking pool, no socket_timeout "
              f"{await per_call_us(aioredis.Redis(connection_pool=pool)):6.1f} µs")


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        svc = start_redis(Path(tmp))
        try:
            asyncio.run(main(svc.url))
        finally:
            svc.stop()
