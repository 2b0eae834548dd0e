#!/usr/bin/env bash
# Runs on a lent GPU machine (no Rust, no network) from the repository root, with .gpu/ carried there:
#   .gpu/argus             the stripped `--features cuda` release binary (../shared/models/GPU.md)
#   .gpu/minilm/           config.json + tokenizer.json of the demo encoder
#   .gpu/smollm2-skeleton.gguf   `argus bench skeleton --from models/SmolLM2-135M-Instruct.Q4_1.gguf --to ...`
# Compares CPU and CUDA on the real architectures with seeded random weights of the real shapes (encoder outputs to
# 1e-3, greedy tokens) and times both. Results go to $OUT.
set -uo pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda-13.0/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
nproc | tee -a "$OUT/gpu.txt"
./.gpu/argus --version | tee -a "$OUT/gpu.txt"
# A device that is not there is an error, not a crash (cuda:7 does not exist on a one-GPU machine).
./.gpu/argus --device cuda:7 bench device-check --encoder-files .gpu/minilm --skeleton .gpu/smollm2-skeleton.gguf \
  --work /tmp/dc-missing 2>&1 | tail -2 | tee "$OUT/missing-device.txt"
for threads in 1 8; do
  /usr/bin/time -v ./.gpu/argus --threads "$threads" --device cuda bench device-check --encoder-files .gpu/minilm \
    --skeleton .gpu/smollm2-skeleton.gguf --work /tmp/dc --greedy 32 >"$OUT/device-check-$threads-threads.txt" \
    2>"$OUT/device-check-$threads-threads.err"
  echo "exit $? (threads $threads)" | tee -a "$OUT/device-check-$threads-threads.txt"
  cat "$OUT/device-check-$threads-threads.txt"
done
tail -25 "$OUT/device-check-8-threads.err"
