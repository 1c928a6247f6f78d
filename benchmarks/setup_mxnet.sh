#!/usr/bin/env bash
# Create benchmarks/.venv-mxnet with the original MXNet 1.9.1 (CPU) for benchmarks/ops.py.
# Usage: benchmarks/setup_mxnet.sh [python]   (default: python3; tested with CPython 3.11)
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="${1:-python3}"
venv="$here/.venv-mxnet"
"$python" -m venv "$venv"
"$venv/bin/pip" install --quiet mxnet==1.9.1 numpy==1.23.5
"$venv/bin/python" -c "import mxnet, numpy; print('mxnet', mxnet.__version__, 'numpy', numpy.__version__)"
