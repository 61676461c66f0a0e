#!/usr/bin/env bash
# Set up a fresh Debian machine with Python 3.11 for warnbus: the Debian packages the
# engine and its tests use (redis-server, mosquitto), and a virtualenv in .venv with
# warnbus installed in editable mode. Idempotent: reruns only do what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for pair in redis-server:redis-server mosquitto:mosquitto; do
  bin=${pair%%:*}; pkg=${pair##*:}
  command -v "$bin" >/dev/null 2>&1 || [ -x "/usr/sbin/$bin" ] || need+=("$pkg")
done
# The console's browser tests drive Debian's chromium (Playwright never downloads a browser);
# the CJK fonts make the Chinese console readable in their screenshots.
[ -x /usr/bin/chromium ] || need+=(chromium)
[ -f /usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc ] || need+=(fonts-noto-cjk)
if [ ${#need[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing Debian packages: ${need[*]}" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
# Debian starts packaged services on install; warnbus starts its own on free ports.
for svc in redis-server mosquitto; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    : # a system service is fine to leave alone: we never use its default port
  fi
done

py=${PYTHON:-python3.11}
command -v "$py" >/dev/null 2>&1 || py=python3
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
stamp=.venv/.warnbus-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/pip install -q --disable-pip-version-check -U pip
  .venv/bin/pip install -q --disable-pip-version-check -e ".[test]"
  touch "$stamp"
fi
