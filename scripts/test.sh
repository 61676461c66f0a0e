#!/usr/bin/env bash
# Set up (see bootstrap.sh) and run the whole test suite: ruff, mypy (strict), pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH:/usr/sbin"
echo "== ruff"
ruff check .
echo "== mypy (strict)"
mypy
echo "== pytest"
set +e
pytest "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests: that is a failure here, never a pass.
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
