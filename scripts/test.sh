#!/usr/bin/env bash
# Installs what the tests need, then runs the whole suite (slow tests included).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
python -m pytest -q "$@"
