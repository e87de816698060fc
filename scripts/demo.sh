#!/usr/bin/env bash
# The main job on the built-in default dataset: a short active-learning run on digits that
# prints a per-round table, then the report (table + learning-curve PNG).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
out="runs/demo-$(date +%Y%m%d-%H%M%S)"
calkit run --dataset digits --model mlp --policy reset --acquisition entropy \
    --initial 100 --round-size 100 --rounds 8 --seed 0 --out "$out" "$@"
calkit report "$out"
