#!/usr/bin/env bash
# SkyPilot `setup` of every inoc cluster: runs once per cluster, in the synced checkout (~/sky_workdir).
#
# Two virtualenvs, because Unsloth and vLLM pin different things (see sky/README.md, "Versions"):
#   $INOC_ENVS/train  ← inoc[gpu-train]  (Unsloth, bitsandbytes)  — gpu_jobs.train
#   $INOC_ENVS/infer  ← inoc[gpu-infer]  (vLLM)                   — gpu_jobs.generate / gpu_jobs.score
# Both are made at once so that any job kind can be queued on any cluster (packing). Editable
# installs: `sky exec` re-syncs the checkout, and the jobs then run the synced code.
set -euo pipefail
ENVS="${INOC_ENVS:-$HOME/inoc-envs}"
python3 -m pip install --quiet --user 'uv==0.13.9' 2>/dev/null || python3 -m pip install --quiet 'uv==0.13.9'
export PATH="$HOME/.local/bin:$PATH"
for kind in train infer; do
  if "$ENVS/$kind/bin/python" -c "import inoc, gpu_jobs" 2>/dev/null; then
    echo "[inoc setup] $ENVS/$kind is ready"
    continue
  fi
  uv venv --quiet --python 3.11 "$ENVS/$kind"
  uv pip install --quiet --python "$ENVS/$kind/bin/python" -e ".[gpu-$kind]"
  echo "[inoc setup] installed inoc[gpu-$kind] into $ENVS/$kind"
done
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
