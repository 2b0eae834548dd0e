#!/usr/bin/env bash
# Installs llama-cpp-python's OpenAI-compatible server into .venv-llama (for the real-server test of the OpenAI
# backend, tests/all/openai_backend.rs). Idempotent: does nothing when the venv already imports llama_cpp.server at
# the pinned version.
#
# pip compiles llama.cpp from source (CPU only, no examples/tests/tools). scikit-build-core fetches the cmake and
# ninja wheels from PyPI when the machine has none, so only python3 (with venv/ensurepip) and a C/C++ compiler are
# needed. Measured here for 0.3.36 (2 cores, CMAKE_BUILD_PARALLEL_LEVEL=2, nice -n 10 beside a cargo build): 633 s
# (10.5 min) for the whole install, almost all of it compiling llama.cpp; the venv is 173 MB.
# pip keeps the built wheel in its cache (~/.cache/pip), so a later venv on the same machine (CI's fresh clone)
# installs in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

LLAMA_CPP_PYTHON_VERSION=0.3.36
venv=${ARGUS_LLAMA_VENV:-$PWD/.venv-llama}
py="$venv/bin/python"

installed() {
  "$py" - "$LLAMA_CPP_PYTHON_VERSION" <<'PY' 2>/dev/null
import sys, importlib.metadata
import llama_cpp.server.app  # noqa: F401  (the server and its extras: fastapi, uvicorn, sse-starlette, ...)
sys.exit(0 if importlib.metadata.version("llama_cpp_python") == sys.argv[1] else 1)
PY
}

if [ -x "$py" ] && installed; then
  echo "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION already in $venv"
  exit 0
fi

python3 -m venv "$venv"
"$py" -m pip install -q --upgrade pip
start=$(date +%s)
CMAKE_ARGS="-DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_BLAS=OFF -DLLAMA_CURL=OFF \
-DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
-DLLAVA_BUILD=OFF -DMTMD_BUILD=OFF" \
CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2} \
  nice -n 10 "$py" -m pip install "llama-cpp-python[server]==$LLAMA_CPP_PYTHON_VERSION"
echo "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION installed in $venv in $(( $(date +%s) - start )) s"
installed || { echo "llama_cpp.server does not import from $venv" >&2; exit 1; }
