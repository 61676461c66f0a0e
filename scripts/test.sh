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
# One worker per core (WARNBUS_TEST_WORKERS to choose): each has its own Redis and broker, and
# a file's tests stay on one worker (their module fixtures are built once). The slowest tests
# are listed at the end, so a run that creeps towards its time limit says where.
set +e
pytest -n "${WARNBUS_TEST_WORKERS:-auto}" --dist loadfile --durations=25 "$@"
rc=$?
set -e
# pytest exits 5 when it collected no tests: that is a failure here, never a pass.
if [ "$rc" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$rc"
