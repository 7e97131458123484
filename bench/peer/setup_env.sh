#!/usr/bin/env bash
# Creates the peer environment .venv-peer: the model author's reference implementation
# (quran-muaalem 0.2.2), which needs transformers 4.57.x, kept apart from the project's .venv
# (transformers 5.x, where that package fails to import). Idempotent: a stamp marks a finished
# setup. Needs only PyPI. torch is installed first and pinned, so that nothing resolves an
# unpinned torch; set TORCH_INDEX to a wheel index (e.g. the CPU one) to choose its build.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv-peer"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION="${TORCH_VERSION:-2.13.0}"
STAMP="$VENV/.peer-ready-torch$TORCH_VERSION-muaalem0.2.2"

if [[ -f "$STAMP" ]]; then
    exit 0
fi

test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
"${PIP[@]}" "torch==$TORCH_VERSION" ${TORCH_INDEX:+--index-url "$TORCH_INDEX"}
# quran-muaalem imports transformers' wav2vec2_bert internals that 5.x removed.
"${PIP[@]}" "torch==$TORCH_VERSION" "transformers>=4.57,<4.58" "quran-muaalem==0.2.2" \
    "quran-transcript==0.6.4" "numpy>=2.2" "safetensors>=0.4"
"$VENV/bin/python" -c "import quran_muaalem, transformers, torch; print('peer env:', 'transformers', transformers.__version__, 'torch', torch.__version__)"
touch "$STAMP"
