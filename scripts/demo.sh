#!/usr/bin/env bash
# Set up (see bootstrap.sh) and run the main job: `warnbus demo` on the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/warnbus demo "$@"
