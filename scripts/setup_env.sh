#!/usr/bin/env bash
# Creates .venv (once) and installs calkit with what it needs. Sourced by demo.sh and test.sh.
# torch is pinned to the CPU build first: an unpinned torch can pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
VENV="${CALKIT_VENV:-$PWD/.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
fi
if ! "$VENV/bin/python" -c "import torch, calkit, pytest, matplotlib, fastapi, uvicorn, httpx, playwright, krippendorff, statsmodels" 2>/dev/null; then
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "torch==2.13.0"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check -e ".[dev]"
fi
export PATH="$VENV/bin:$PATH"
