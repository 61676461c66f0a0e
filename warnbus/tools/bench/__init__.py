"""`warnbus bench`: repeatable performance figures for the engine (issue 5, docs/benchmarks.md).

Scenarios (each one module): `fanout` (county and province first waves), `acks` (signed ack
links over real HTTP), `match` (polygon, circle and geocode matching), `peer` (the same fan-out
done naively with apprise, side by side). All of them run against a real `redis-server`
(AOF, appendfsync always by default: `--appendfsync everysec` to compare) and, where speakers
are involved, a real `mosquitto`, both started here on 127.0.0.1 in a temporary directory;
nothing is downloaded and no traffic leaves the machine.

The runner lives in the `warnbus` package, not in the repository's `benchmarks/` folder, so
that `warnbus bench` works from an installed wheel: an operator can measure the machine the
engine will run on, which is where the figures matter.
"""
