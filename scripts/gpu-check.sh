#!/usr/bin/env bash
# Runs on a lent GPU machine (no Rust, no network) from the repository root, with .gpu/ carried there:
#   .gpu/argus.gz          the stripped `--features cuda` release binary, gzipped (../shared/models/GPU.md)
#   .gpu/minilm/           config.json + tokenizer.json of the demo encoder
#   .gpu/smollm2-skeleton.gguf   `argus bench skeleton --from models/SmolLM2-135M-Instruct.Q4_1.gguf --to ...`
# Compares CPU and CUDA on the real architectures with seeded random weights of the real shapes (encoder outputs to
# 1e-3, greedy tokens) and times both. Results go to $OUT.
set -uo pipefail
OUT=${OUT:-gpu-out}; mkdir -p "$OUT"
export LD_LIBRARY_PATH=/usr/local/cuda-13.0/lib64:/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}
gunzip -c .gpu/argus.gz > /tmp/argus && chmod +x /tmp/argus
TIME=""; [ -x /usr/bin/time ] && TIME="/usr/bin/time -v"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$OUT/gpu.txt"
nproc | tee -a "$OUT/gpu.txt"
/tmp/argus --version | tee -a "$OUT/gpu.txt"
# A device that is not there is an error, not a crash (cuda:7 does not exist on a one-GPU machine).
/tmp/argus --device cuda:7 bench device-check --encoder-files .gpu/minilm --skeleton .gpu/smollm2-skeleton.gguf \
  --work /tmp/dc-missing 2>&1 | tail -2 | tee "$OUT/missing-device.txt"
for threads in 1 8; do
  $TIME /tmp/argus --threads "$threads" --device cuda bench device-check --encoder-files .gpu/minilm \
    --skeleton .gpu/smollm2-skeleton.gguf --work /tmp/dc --greedy 32 >"$OUT/device-check-$threads-threads.txt" \
    2>"$OUT/device-check-$threads-threads.err"
  echo "exit $? (threads $threads)" | tee -a "$OUT/device-check-$threads-threads.txt"
  cat "$OUT/device-check-$threads-threads.txt"
done
tail -25 "$OUT/device-check-8-threads.err"
# The rationale job end to end on the GPU (random weights write gibberish: what is checked is that it runs, streams,
# stores and counts).
/tmp/argus import --db /tmp/gpu.sqlite assets/demo/liar2-sample.csv | tail -1
/tmp/argus --device cuda rationales --db /tmp/gpu.sqlite --model /tmp/dc/random-writer.gguf --limit 2 \
  --max-tokens 32 --temperature 0 2>&1 | tail -3 | tee "$OUT/rationales-cuda.txt"
/tmp/argus stats --db /tmp/gpu.sqlite --json | tee -a "$OUT/rationales-cuda.txt"
