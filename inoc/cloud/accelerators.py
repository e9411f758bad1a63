"""Accelerator candidates (``compute.accelerators``), what they hold, and what a model needs.

The numbers here are public specifications (GPU memory) and rough relative speeds; they size disks,
reject a candidate that cannot hold the model before anything is launched, and scale the throughput
assumptions of ``inoc plan`` (see ``estimate``). Unknown accelerators pass the checks unscaled.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: GiB of memory per device (public specifications; A100 is the 40 GB part).
GPU_MEMORY_GB: dict[str, float] = {
    "T4": 16,
    "L4": 24,
    "A10": 24,
    "A10G": 24,
    "RTX4090": 24,
    "A40": 48,
    "L40": 48,
    "L40S": 48,
    "A6000": 48,
    "RTX6000-Ada": 48,
    "A100": 40,
    "A100-80GB": 80,
    "H100": 80,
    "H100-MEGA": 80,
    "H200": 141,
    "GH200": 96,
    "B200": 180,
}

#: Throughput relative to one A100-80GB for LLM decode/prefill/LoRA training (memory bandwidth and
#: dense bf16 FLOPs, rounded): H100 SXM ~3.3 TB/s and ~3x the FLOPs, L40S 0.86 TB/s, A100-40GB 1.6 TB/s.
RELATIVE_SPEED: dict[str, float] = {
    "T4": 0.1,
    "L4": 0.2,
    "A10": 0.3,
    "A10G": 0.3,
    "RTX4090": 0.45,
    "A40": 0.4,
    "L40": 0.45,
    "L40S": 0.5,
    "A6000": 0.45,
    "RTX6000-Ada": 0.5,
    "A100": 0.85,
    "A100-80GB": 1.0,
    "H100": 2.0,
    "H100-MEGA": 2.0,
    "H200": 2.3,
    "GH200": 2.2,
    "B200": 3.5,
}

#: bf16 weights take 2 bytes a parameter; 20% on top for the KV cache and activations of a vLLM engine
#: (the 32B study serves at max_model_len 2048 with gpu_memory_utilization 0.94, as the original).
BYTES_PER_PARAM = 2.0
HEADROOM = 1.2
DEFAULT_PARAMS_B = 8.0


class AcceleratorError(ValueError):
    """A ``compute.accelerators`` entry is malformed or cannot hold the model."""


@dataclass(frozen=True)
class Candidate:
    name: str
    count: int = 1

    @property
    def memory_gb(self) -> float | None:
        per = GPU_MEMORY_GB.get(self.name)
        return None if per is None else per * self.count

    @property
    def speed(self) -> float:
        """Throughput relative to one A100-80GB (unknown accelerators count as 1.0 per device)."""
        return RELATIVE_SPEED.get(self.name, 1.0) * self.count

    def __str__(self) -> str:
        return f"{self.name}:{self.count}"


def parse_candidates(entries: list[str], field: str = "compute.accelerators") -> list[Candidate]:
    """``["L40S:1", "A100-80GB"]`` → candidates; a malformed entry names the field and its index."""
    if not entries:
        raise AcceleratorError(f"{field}: at least one accelerator is needed (e.g. ['A100-80GB:1'])")
    out = []
    for i, raw in enumerate(entries):
        m = re.fullmatch(r"\s*([A-Za-z0-9][A-Za-z0-9_.-]*)\s*(?::\s*(\d+))?\s*", str(raw))
        if not m or (m.group(2) is not None and int(m.group(2)) < 1):
            raise AcceleratorError(f"{field}[{i}]: {raw!r} is not NAME or NAME:COUNT (e.g. 'A100-80GB:1')")
        out.append(Candidate(m.group(1), int(m.group(2) or 1)))
    return out


def model_params_b(model_id: str) -> float | None:
    """Billions of parameters read from a model id (``Qwen/Qwen2.5-32B-Instruct`` → 32); None if absent.
    The organism (``toy:…``) is a few million parameters."""
    if model_id.startswith("toy:"):
        return 0.01
    name = model_id.rstrip("/").rsplit("/", 1)[-1]
    hits = re.findall(r"(?<![0-9.])(\d+(?:\.\d+)?)[bB](?![a-zA-Z])", name)
    return float(hits[-1]) if hits else None


def required_memory_gb(params_b: float) -> float:
    return params_b * BYTES_PER_PARAM * HEADROOM


def check_fit(candidates: list[Candidate], params_b: float, model_id: str, field: str = "compute.accelerators") -> None:
    """Refuse candidates that cannot hold the model in bf16 (the vLLM eval engine): a cluster is shared
    by train, generate and score jobs, so every candidate must fit the largest of them."""
    need = required_memory_gb(params_b)
    small = [c for c in candidates if c.memory_gb is not None and c.memory_gb < need]
    if small:
        names = ", ".join(f"{c} ({c.memory_gb:g} GB)" for c in small)
        raise AcceleratorError(
            f"{field}: {names} cannot hold {model_id} (~{params_b:g}B parameters need ~{need:.0f} GB in bf16 "
            f"with KV-cache headroom); use 80 GB parts such as ['A100-80GB:1', 'H100:1']"
        )


def disk_size_gb(params_b: float) -> int:
    """Disk for two copies of the weights (the model and its Unsloth mirror), two virtualenvs and the
    job's scratch: the next power of two above 4 GB per billion parameters + 40 GB, at least 128."""
    return max(128, 2 ** math.ceil(math.log2(params_b * 4 + 40)))
