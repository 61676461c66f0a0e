#!/usr/bin/env bash
# The full benchmark runs behind the figures in docs/benchmarks.md: each scenario at its full
# size, 3 runs, JSON into benchmarks/results/<scenario>.json (one object per file).
# Takes about 10 minutes on the 2-core reference machine; everything runs on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
out=benchmarks/results
mkdir -p "$out"
bench() { .venv/bin/warnbus bench "$@" --json; }
bench county --runs 3 > "$out/county.json"
bench county --runs 3 --redis-max-connections 10000 > "$out/county-pool10k.json"
bench province --counties 100 --runs 3 > "$out/province.json"
bench acks --counties 10 --runs 3 > "$out/acks.json"
bench match --counties 100 --runs 3 > "$out/match.json"
bench peer --runs 3 > "$out/peer.json"
# Profile of one province run, engine-only (pyinstrument adds ~30 % overhead: the profile
# shows where time goes, the figures above are from runs without it).
bench province --counties 100 --runs 1 --profile "$out/province-profile" > "$out/province-profiled.json"
