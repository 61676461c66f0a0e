"""Redis time per delivery of the first wave's Lua scripts, and of the audit entry's shape.

    .venv/bin/python benchmarks/scripts_micro.py

Runs CLAIM, RECORD, PUT_TARGETS and INIT_GRIDS of `warnbus/state/scripts.py` on chunks of
64 deliveries (3 per person, as voice + SMS + WeCom), then a loop that writes the attempt's
audit entry as 11 fields (as RECORD did before 2026-11-23) or as 4 (as it does now), and
prints Redis's own time (`INFO commandstats`, µs of EVALSHA) per delivery
(docs/benchmarks.md, "What limits each figure now"). Starts its own redis-server (AOF
everysec) in a temporary directory.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import msgspec
from redis import Redis

from warnbus.runtime.services import start_redis
from warnbus.state import scripts

CHUNKS, N = 300, 64
LOOP = """
local A = cmsgpack.unpack(ARGV[1])
for i = 2, #A, 10 do
  local id, target, channel, step, kind = A[i], A[i+1], A[i+2], A[i+3], A[i+4]
  local n, outcome, nxt, detail = A[i+5], A[i+6], A[i+7], A[i+8]
  %s
end
return 1
"""
AUDIT = {
    "loop alone": "",
    "audit, 11 fields": "redis.call('XADD', KEYS[1], '*', 'ev', 'attempt', 'at', A[1], 'd', id, "
                        "'tg', target, 'ch', channel, 'st', step, 'k', kind, 'n', n, "
                        "'o', outcome, 's', nxt, 'x', detail)",
    "audit, 4 fields": "redis.call('XADD', KEYS[1], '*', 'ev', 'attempt', 'at', A[1], 'a', "
                       "id .. '|' .. target .. '|' .. channel .. '|' .. step .. '|' .. kind .. "
                       "'|' .. n .. '|' .. outcome .. '|' .. nxt, 'x', detail)",
}


def evalsha_us(r: Redis) -> float:
    stats = r.info("commandstats").get("cmdstat_evalsha", {"usec": 0})
    return float(stats["usec"])


def record_args(ids: list[str], targets: list[str]) -> list[str]:
    args = ["1700000000.6"]
    for i, t in zip(ids, targets, strict=True):
        args += [i, t, "sms", "0", "warning", "1", "accepted", "sent",
                 "SM0123456789abcdef0123456789abcdef", "alert123456789|red|person"]
    return args


def main(url: str) -> None:
    r = Redis.from_url(url)
    r.hset("meta", mapping={"state": "active", "expires_at": "9999999999"})
    run = {name: r.register_script(getattr(scripts, name))
           for name in ("PUT_TARGETS", "INIT_GRIDS", "CLAIM", "RECORD")}
    spent = dict.fromkeys(run, 0.0)
    for j in range(CHUNKS):
        ids = [f"dl_{j}_{i:08d}abcdefghijkl" for i in range(N)]
        targets = [f"p{j:04d}{i // 3:05d}" for i in range(N)]
        people = sorted(set(targets))
        calls = {
            "PUT_TARGETS": (["targets", "first"],
                            ["1700000000.5"] + [x for t in people for x in (t, "x" * 60)]),
            "INIT_GRIDS": (["meta", "grids", "holds"], [x for t in people for x in ("g" + t, t)]),
            "CLAIM": (["meta", "dstate", "stopped"],
                      ["1700000000.5", "30"] + [x for i, t in zip(ids, targets, strict=True)
                                                for x in (i, "warning", t)]),
            "RECORD": (["meta", "dstate", "tstate", "audit", "dinfo"], record_args(ids, targets)),
        }
        for name, (keys, args) in calls.items():
            before = evalsha_us(r)
            run[name](keys=keys, args=[scripts.pack_args(args)])
            spent[name] += evalsha_us(r) - before
    for name, us in spent.items():
        print(f"{name:12} {us / (CHUNKS * N):5.2f} µs per delivery")
    enc = msgspec.msgpack.Encoder()
    for name, body in AUDIT.items():
        script = r.register_script(LOOP % body)
        before = evalsha_us(r)
        for j in range(CHUNKS):
            ids = [f"dl_{j}_{i:08d}" for i in range(N)]
            script(keys=["audit2"], args=[enc.encode(record_args(ids, ["p"] * N))])
        print(f"{name:17} {(evalsha_us(r) - before) / (CHUNKS * N):5.2f} µs per delivery")
    r.close()


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        svc = start_redis(Path(tmp), appendonly=True, appendfsync="everysec")
        try:
            main(svc.url)
        finally:
            svc.stop()
