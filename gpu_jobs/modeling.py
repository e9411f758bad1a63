"""Loading models and tokenizers with transformers/PEFT, and the small facts the jobs need about them.

Imports of torch/transformers/peft happen inside functions: a spec error or a reused output returns
before any of them is imported.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


def setup_torch(threads: int | None) -> int:
    """Set torch's CPU thread count from the spec, else ``$GPU_JOBS_THREADS``; returns the count used.
    Also turns off transformers' progress bars (they would flood a captured log)."""
    import torch

    with contextlib.suppress(ImportError):
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    import warnings

    # peft calls transformers APIs renamed in 5.2x; the rename warnings say nothing about the job
    warnings.filterwarnings("ignore", message=r".*deprecated and will be removed in v6.*", category=FutureWarning)

    n = threads or int(os.environ.get("GPU_JOBS_THREADS", "0") or 0) or None
    if n:
        torch.set_num_threads(n)
        with contextlib.suppress(RuntimeError):  # only settable before the first parallel region
            torch.set_num_interop_threads(1)
    return torch.get_num_threads()


def resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def resolve_dtype(dtype: str, device: str):
    """``auto``: bfloat16 on a CUDA device that supports it, float16 on older GPUs, float32 on CPU."""
    import torch

    if dtype == "auto":
        if device.startswith("cuda"):
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[dtype]


def dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def resolve_model_path(model_id: str, progress: Any = None) -> str:
    """``toy:<profile>`` → the organism's folder (built once, cached); other ids unchanged."""
    if not model_id.startswith("toy:"):
        return model_id
    try:
        from inoc.organism.build import resolve_model_id
    except ImportError as err:
        raise RuntimeError(f"model id {model_id!r} needs the inoc package (inoc.organism): {err}") from err
    return resolve_model_id(model_id, progress=progress)


def ensure_model(ref: Any, rep: Any) -> None:
    """Build the organism now, with progress, if the spec names one (later lookups hit its cache)."""
    for model_id in {ref.id, ref.tokenizer} - {None}:
        if model_id.startswith("toy:"):
            rep.log(f"resolving {model_id}: the organism is built once per settings and cached")

            def progress(event: Any) -> None:
                if event.total:
                    rep.progress(f"organism {event.stage}", event.done, event.total)

            rep.log(f"{model_id} → {resolve_model_path(model_id, progress)}")


@dataclass(frozen=True)
class Runtime:
    """Where a job's model runs and the tokenizer its inputs are encoded with (``prepare_runtime``)."""

    threads: int
    device: str
    dtype: Any  # a torch.dtype
    tokenizer: Any

    @property
    def dtype_name(self) -> str:
        return dtype_name(self.dtype)

    def metadata(self) -> dict[str, Any]:
        return {"threads": self.threads, "device": self.device, "dtype": self.dtype_name}


def prepare_runtime(spec: Any, rep: Any) -> Runtime:
    """The setup every job does before its model loads: torch's threads, the device and dtype the spec
    asks for (``auto`` resolved here), the model present (the organism built) and its tokenizer."""
    threads = setup_torch(spec.threads)
    device = resolve_device(spec.device)
    dtype = resolve_dtype(spec.model.dtype, device)
    ensure_model(spec.model, rep)
    return Runtime(threads, device, dtype, load_tokenizer(spec.model))


#: ``tokenizer_class`` values that mean "exactly what tokenizer.json says".
_GENERIC_TOKENIZER_CLASSES = {"TokenizersBackend", "PreTrainedTokenizerFast"}


def open_tokenizer(path: str, *, revision: str | None = None, trust_remote_code: bool = False):
    """The tokenizer of a model folder or hub id.

    A local folder whose ``tokenizer_config.json`` declares a generic class (``TokenizersBackend`` /
    ``PreTrainedTokenizerFast``, as the organism's and Llama 3's do) is loaded as exactly that:
    transformers 5's ``AutoTokenizer`` otherwise picks the tokenizer class of the *model* type from
    ``config.json`` (``Qwen2Tokenizer`` for any Qwen2 body) and rebuilds the pre-tokenizer with that
    family's rules, silently changing how a custom vocabulary splits text.
    """
    import json
    from pathlib import Path

    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    cfg_file = Path(path) / "tokenizer_config.json"
    if cfg_file.is_file() and (Path(path) / "tokenizer.json").is_file():
        try:
            declared = json.loads(cfg_file.read_text()).get("tokenizer_class")
        except ValueError:
            declared = None
        if declared in _GENERIC_TOKENIZER_CLASSES:
            tok = PreTrainedTokenizerFast.from_pretrained(path)
        else:
            tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    else:
        tok = AutoTokenizer.from_pretrained(path, revision=revision, trust_remote_code=trust_remote_code)
    if tok.pad_token_id is None:  # batching needs a pad id; its value never matters under the mask
        tok.pad_token = tok.eos_token
    return tok


def load_tokenizer(ref: Any):
    path = resolve_model_path(ref.tokenizer or ref.id)
    return open_tokenizer(
        path, revision=ref.revision if not ref.tokenizer else None, trust_remote_code=ref.trust_remote_code
    )


def load_model(ref: Any, device: str, dtype, *, adapters: Mapping[str, str] | None = None, **kwargs: Any):
    """The causal LM in eval mode on ``device``; with ``adapters`` a ``PeftModel`` holding all of them."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        resolve_model_path(ref.id),
        dtype=dtype,
        revision=ref.revision,
        trust_remote_code=ref.trust_remote_code,
        **kwargs,
    )
    model.to(device)
    if adapters:
        from peft import PeftModel

        items = list(adapters.items())
        model = PeftModel.from_pretrained(model, items[0][1], adapter_name=items[0][0], is_trainable=False)
        for name, path in items[1:]:
            model.load_adapter(path, adapter_name=name, is_trainable=False)
        model.to(device)
    model.eval()
    return model


@contextlib.contextmanager
def use_adapter(model: Any, name: str | None) -> Iterator[None]:
    """Run with adapter ``name`` active, or with none (the base model) when ``name`` is None."""
    try:
        from peft import PeftModel
    except ImportError:  # no peft: only base models exist
        PeftModel = ()  # noqa: N806
    if not isinstance(model, PeftModel):
        if name is not None:
            raise ValueError(f"adapter {name!r} requested but the model holds no adapters")
        yield
        return
    if name is None:
        with model.disable_adapter():
            yield
    else:
        model.set_adapter(name)
        yield


def base_model(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (LoRA layers stay active inside it)."""
    get = getattr(model, "get_base_model", None)
    return get() if callable(get) else model


def decoder_and_head(model: Any) -> tuple[Any, Any]:
    """(the transformer body returning hidden states, the LM head) — to apply the head to chosen
    positions only, instead of materializing logits for every position."""
    base = base_model(model)
    decoder = base.get_decoder() if hasattr(base, "get_decoder") else base.model
    return decoder, base.get_output_embeddings()


def logit_softcap(model: Any) -> float | None:
    return getattr(base_model(model).config, "final_logit_softcapping", None) or None


def cache_kwarg(model: Any) -> str:
    """transformers renamed ``past_key_values`` to ``cache`` (5.2x); support both."""
    params = inspect.signature(base_model(model).forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def stop_token_ids(tokenizer: Any, model: Any | None = None, extra: Sequence[int] = ()) -> list[int]:
    """Ids that end a completion: the generation config's EOS ids, the tokenizer's EOS, the special
    token that closes an assistant turn in the chat template, and ``extra``."""
    ids: set[int] = set(int(i) for i in extra)
    gen = getattr(base_model(model), "generation_config", None) if model is not None else None
    for source in (getattr(gen, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(source, int):
            ids.add(source)
        elif isinstance(source, (list, tuple)):
            ids.update(int(i) for i in source)
    turn_end = template_turn_end_id(tokenizer)
    if turn_end is not None:
        ids.add(turn_end)
    return sorted(ids)


def template_turn_end_id(tokenizer: Any) -> int | None:
    """The special token right after an assistant message in the chat template (``<|im_end|>``,
    ``<|eot_id|>``, …), found by rendering one; None if the template closes turns with plain text."""
    from gpu_jobs.chat import render

    if not getattr(tokenizer, "chat_template", None):
        return None
    marker = "PONG"
    text = render(
        tokenizer,
        [{"role": "user", "content": "ping"}, {"role": "assistant", "content": marker}],
        add_generation_prompt=False,
    )
    at = text.rfind(marker)
    if at < 0:
        return None
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    special = set(tokenizer.all_special_ids) | set(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    for tid, (s, _e) in zip(enc["input_ids"], enc["offset_mapping"]):
        if s >= at + len(marker):
            return int(tid) if int(tid) in special else None
    return None
