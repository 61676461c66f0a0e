#!/usr/bin/env bash
# The full benchmark runs behind the figures in docs/benchmarks.md: each scenario at its full
# size, 3 runs, JSON into benchmarks/results/<scenario>.json (one object per file).
# Takes about 12 minutes on the 2-core reference machine; everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
mkdir -p "$out"
bench() { .venv/bin/warnbus bench "$@" --json; }
bench county --runs 3 > "$out/county.json"
bench province --counties 100 --runs 3 > "$out/province.json"
bench province --counties 100 --runs 3 --workers 2 > "$out/province-workers2.json"
bench acks --counties 10 --runs 3 > "$out/acks.json"
for via in dtmf sms wecom; do
  bench acks --counties 10 --runs 3 --via "$via" > "$out/acks-$via.json"
  bench acks --counties 10 --runs 3 --via "$via" --api-processes 2 > "$out/acks-$via-api2.json"
done
bench match --counties 100 --runs 3 > "$out/match.json"
bench peer --runs 3 > "$out/peer.json"
# The profile in docs/benchmarks.md is taken separately, with py-spy (see there).
