#!/usr/bin/env bash
# The main job on the built-in default dataset: standard active learning (reset: retrain from
# scratch every round, with the settings tuned on validation data and with the CAL paper's rule)
# against calkit's default CAL policy on digits, three seeds, the paper's budget checkpoints
# (10..30 % of the pool) in rounds of 2.5 %; prints the per-budget table with paired intervals.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh"
out="runs/demo-$(date +%Y%m%d-%H%M%S)"
calkit compare --dataset digits --model mlp --policies cal --seeds 3 --out "$out" "$@"
