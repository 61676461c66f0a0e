"""Enqueue 68,000 lane entries as a pipeline of XADDs and as `ENQUEUE` script calls.

    .venv/bin/python benchmarks/enqueue_micro.py

Prints client CPU, wall time and Redis CPU for each way, twice (docs/benchmarks.md, item 2).
Starts its own redis-server (AOF everysec) in a temporary directory.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from redis.asyncio import Redis

from warnbus.runtime.services import start_redis
from warnbus.state.scripts import ENQUEUE, pack_args

ENTRIES, CHUNK, PAYLOAD = 68_000, 1_000, b"x" * 400


async def main(url: str) -> None:
    r = Redis.from_url(url)
    script = r.register_script(ENQUEUE)

    async def redis_cpu() -> float:
        info = await r.info("cpu")
        return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])

    for mode in ("pipeline", "script", "pipeline", "script"):
        await r.flushall()
        c0, t0, p0 = await redis_cpu(), time.perf_counter(), time.process_time()
        for _ in range(0, ENTRIES, CHUNK):
            if mode == "pipeline":
                pipe = r.pipeline(transaction=False)
                for _ in range(CHUNK):
                    pipe.xadd("wb:q:{q:sms}:0", {"d": PAYLOAD})
                await pipe.execute()
            else:
                await script(keys=["wb:q:{q:sms}:0"], args=[pack_args([PAYLOAD] * CHUNK)])
        print(f"{mode:9} wall {time.perf_counter() - t0:6.3f} s  client CPU "
              f"{time.process_time() - p0:6.3f} s  redis CPU {await redis_cpu() - c0:6.3f} s")
    await r.aclose()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        svc = start_redis(Path(tmp), appendonly=True, appendfsync="everysec")
        try:
            asyncio.run(main(svc.url))
        finally:
            svc.stop()
