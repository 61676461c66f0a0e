#!/usr/bin/env bash
# Regenerate the console's documentation screenshots (docs/img/console-*.png) of issue 17's
# Show list, desktop (1280x800) and phone (390x844): the browser tests that take them, with
# WARNBUS_DOC_SHOTS=1 so each named shot is copied from artifacts/screenshots/ to docs/img/.
# Slow (headless Chromium, a few minutes): not part of an ordinary test run. Look at every
# image before committing it.
set -euo pipefail
cd "$(dirname "$0")/.."
WARNBUS_DOC_SHOTS=1 exec .venv/bin/pytest -q -p no:randomly \
  tests/console/test_console_browser_lift.py \
  tests/console/test_console_browser_live.py \
  tests/console/test_console_browser_desk.py \
  tests/console/test_console_desk_browser.py::test_rejected_draft_edited_resubmitted_and_the_record_filed \
  "$@"
