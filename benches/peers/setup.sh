#!/usr/bin/env bash
# Installs the benchmark peers (not needed by the tests): PyTorch + transformers in .venv-peers for
# `argus bench encoder`; llama-cpp-python comes from scripts/setup-llama-server.sh (.venv-llama) for
# `argus bench generate`. PyTorch's wheel pulls about 2.5 GB of CUDA packages from the package index.
set -euo pipefail
cd "$(dirname "$0")/../.."
if ! .venv-peers/bin/python -c "import torch, transformers" 2>/dev/null; then
  python3 -m venv .venv-peers
  .venv-peers/bin/pip install -q torch transformers numpy
fi
bash scripts/setup-llama-server.sh
