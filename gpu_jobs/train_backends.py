"""The two ways a training model is built: PEFT on transformers, or Unsloth. Same LoRA, same semantics.

Both return a PEFT model whose LoRA weights are the only trainable parameters; ``gpu_jobs.train``
runs the same loop on either (loss on assistant tokens only, one optimizer, one schedule). Unsloth
is looked up at run time (``importlib.import_module("unsloth")``) or passed in — the seam the tests
use with a fake module, since Unsloth is a GPU-image dependency.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from gpu_jobs.modeling import resolve_model_path


@dataclass
class TrainModel:
    model: Any  # a peft.PeftModel with trainable LoRA weights
    backend: str


def lora_kwargs(spec: Any) -> dict[str, Any]:
    return {
        "r": spec.lora_r,
        "lora_alpha": spec.lora_alpha,
        "lora_dropout": spec.lora_dropout,
        "target_modules": list(spec.target_modules),
        "use_rslora": spec.use_rslora,
        "bias": "none",
    }


def _quantization_config(dtype: Any) -> Any:
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=dtype, bnb_4bit_use_double_quant=True
    )


def load_peft(spec: Any, device: str, dtype: Any) -> TrainModel:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    kwargs: dict[str, Any] = {}
    if spec.load_in_4bit:
        kwargs["quantization_config"] = _quantization_config(dtype)
        kwargs["device_map"] = {"": device}
    model = AutoModelForCausalLM.from_pretrained(
        resolve_model_path(spec.model.id),
        dtype=dtype,
        revision=spec.model.revision,
        trust_remote_code=spec.model.trust_remote_code,
        **kwargs,
    )
    if not spec.load_in_4bit:
        model.to(device)
    if spec.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=spec.gradient_checkpointing)
    if spec.gradient_checkpointing:
        # non-reentrant checkpointing needs no input-grad hook; transformers 5.2x renamed the method
        if hasattr(model, "activation_checkpointing_enable"):
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.config.use_cache = False  # no KV cache while training
    torch.manual_seed(spec.seed)  # the LoRA A matrices' initialisation
    model = get_peft_model(model, LoraConfig(task_type="CAUSAL_LM", **lora_kwargs(spec)))
    return TrainModel(model, "peft")


def load_unsloth(spec: Any, device: str, dtype: Any, *, module: Any = None) -> TrainModel:
    """Unsloth's ``FastLanguageModel``: its kernels and gradient checkpointing, the same LoRA."""
    unsloth = module if module is not None else importlib.import_module("unsloth")
    flm = unsloth.FastLanguageModel
    model, _tokenizer = flm.from_pretrained(  # the job encodes with its own tokenizer (same files)
        model_name=resolve_model_path(spec.model.id),
        max_seq_length=spec.max_seq_length,
        dtype=dtype,
        load_in_4bit=spec.load_in_4bit,
    )
    kw = lora_kwargs(spec)
    model = flm.get_peft_model(
        model,
        r=kw["r"],
        target_modules=kw["target_modules"],
        lora_alpha=kw["lora_alpha"],
        lora_dropout=kw["lora_dropout"],
        bias=kw["bias"],
        use_rslora=kw["use_rslora"],
        use_gradient_checkpointing="unsloth" if spec.gradient_checkpointing else False,
        random_state=spec.seed,
        loftq_config=None,
    )
    if hasattr(flm, "for_training"):
        flm.for_training(model)
    return TrainModel(model, "unsloth")


def load(spec: Any, device: str, dtype: Any, *, unsloth_module: Any = None) -> TrainModel:
    if spec.backend == "unsloth":
        return load_unsloth(spec, device, dtype, module=unsloth_module)
    return load_peft(spec, device, dtype)
