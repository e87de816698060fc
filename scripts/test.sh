#!/usr/bin/env bash
# Installs what the tests need, then runs the whole suite (slow tests included).
# The browser tests drive Debian's Chromium with Playwright; it is installed here when missing
# (apt-get, as root: CI runs as root). Without it those tests are skipped, with the reason.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "installing chromium for the browser tests (apt-get)..." >&2
        (DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 \
            || { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }) \
            || echo "could not install chromium: the browser tests will be skipped" >&2
    else
        echo "chromium is missing (install it as root: apt-get install chromium); the browser tests will be skipped" >&2
    fi
fi
python -m pytest -q "$@"
