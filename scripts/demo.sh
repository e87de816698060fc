#!/usr/bin/env bash
# The main job on the built-in default dataset: standard active learning (reset: retrain from
# scratch every round) against calkit's default CAL policy on digits, three seeds, the paper's
# budget checkpoints (10..30 % of the pool); prints the per-budget speed-up table.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
out="runs/demo-$(date +%Y%m%d-%H%M%S)"
calkit compare --dataset digits --model mlp --policies cal --seeds 3 --round-size 36 --out "$out" "$@"
