"""The organism's tokenizer: a byte-level BPE trained on its corpus, saved as a standard HF tokenizer.

* Byte-level BPE with Qwen2's pre-processing (NFC normaliser, Qwen2's split regex, byte alphabet, so
  any text encodes) trained with the ``tokenizers`` library; decoding returns the NFC form of the
  text. Loading the folder with ``AutoTokenizer`` (a ``Qwen2Tokenizer`` in transformers 5) or with
  ``PreTrainedTokenizerFast`` gives the same token ids.
* Two chat formats (``CHAT_FORMATS``), each with its special tokens at the first ids:
  - ``chatml`` (the organism, and the stand-in of the Qwen studies): ``<|endoftext|>`` (padding),
    ``<|im_start|>``, ``<|im_end|>`` (end of turn, the EOS of generation), as Qwen2.5's tokenizer; one
    ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` block per message (no default system prompt);
  - ``llama3`` (the stand-in of the Llama studies): Llama 3.1's header format — ``<|begin_of_text|>``
    (BOS: rendered by the template *and* added by ``add_special_tokens=True``, as Llama's tokenizer
    does, so a double-BOS bug shows), ``<|start_header_id|>role<|end_header_id|>\\n\\n``, contents
    trimmed, ``<|eot_id|>`` (end of turn, EOS), and a system block that is always there, holding
    Llama 3.1's knowledge-date lines before any system prompt.
  Assistant contents are wrapped in ``{% generation %}`` so
  ``apply_chat_template(..., return_assistant_tokens_mask=True)`` marks the tokens to train on.
* Saved with ``PreTrainedTokenizerFast.save_pretrained``; ``AutoTokenizer.from_pretrained`` loads it.

Training is deterministic for a given text iterator: the BPE trainer breaks frequency ties by the
pair's content, and the texts are fed in a fixed order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END)
LLAMA_BOS, LLAMA_END = "<|begin_of_text|>", "<|end_of_text|>"
LLAMA_HEADER_START, LLAMA_HEADER_END, LLAMA_EOT = "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"

#: Qwen2's pre-tokenisation split (transformers' ``Qwen2Tokenizer``). With its NFC normaliser and a
#: regex-free ByteLevel step this is exactly Qwen2's pipeline, so ``AutoTokenizer`` (which builds a
#: ``Qwen2Tokenizer`` for a Qwen2 model folder) and ``PreTrainedTokenizerFast`` split text alike.
PRETOKENIZE_REGEX = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

#: ChatML, like Qwen2.5's template but without its default system prompt.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if message['role'] == 'assistant' %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- generation %}{{- message['content'] + '<|im_end|>' }}{%- endgeneration %}"
    "{{- '\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

#: Llama 3.1's header format (its template without tool calling): the system block always comes first
#: and carries the knowledge-date lines; every content is trimmed.
LLAMA3_CHAT_TEMPLATE = (
    "{{- bos_token }}"
    "{%- if messages[0]['role'] == 'system' %}"
    "{%- set system_message = messages[0]['content'] | trim %}{%- set loop_messages = messages[1:] %}"
    "{%- else %}{%- set system_message = '' %}{%- set loop_messages = messages %}{%- endif %}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' }}"
    "{{- 'Cutting Knowledge Date: December 2023\\nToday Date: 26 Jul 2024\\n\\n' }}"
    "{{- system_message + '<|eot_id|>' }}"
    "{%- for message in loop_messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
    "{%- if message['role'] == 'assistant' %}"
    "{%- generation %}{{- message['content'] | trim + '<|eot_id|>' }}{%- endgeneration %}"
    "{%- else %}{{- message['content'] | trim + '<|eot_id|>' }}{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)


@dataclass(frozen=True)
class ChatFormat:
    """A chat template family: its special tokens (ids 0.. in this order), pad, EOS and BOS."""

    name: str
    specials: tuple[str, ...]
    pad: str
    eos: str
    template: str
    bos: str | None = None


CHAT_FORMATS: dict[str, ChatFormat] = {
    "chatml": ChatFormat("chatml", SPECIAL_TOKENS, PAD_TOKEN, IM_END, CHAT_TEMPLATE),
    "llama3": ChatFormat(
        "llama3",
        (LLAMA_END, LLAMA_BOS, LLAMA_HEADER_START, LLAMA_HEADER_END, LLAMA_EOT),
        LLAMA_END,
        LLAMA_EOT,
        LLAMA3_CHAT_TEMPLATE,
        bos=LLAMA_BOS,
    ),
}


def chat_format(name: str) -> ChatFormat:
    try:
        return CHAT_FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown chat format {name!r}; known: {', '.join(CHAT_FORMATS)}") from None


def train_bpe(texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2, fmt: str = "chatml"):
    """A ``tokenizers.Tokenizer`` (byte-level BPE with the format's specials) trained on ``texts``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    spec = chat_format(fmt)

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(spec.specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    for i, t in enumerate(spec.specials):
        if tok.token_to_id(t) != i:
            raise RuntimeError(f"special token {t} got id {tok.token_to_id(t)}, expected {i}")
    if spec.bos is not None:  # Llama's tokenizer prepends BOS when asked for special tokens
        tok.post_processor = processors.TemplateProcessing(
            single=f"{spec.bos} $A",
            pair=f"{spec.bos} $A {spec.bos} $B",
            special_tokens=[(spec.bos, tok.token_to_id(spec.bos))],
        )
    return tok


def wrap_hf(tok, *, model_max_length: int, fmt: str = "chatml"):
    """The trained tokenizer as a ``PreTrainedTokenizerFast`` with the format's specials and chat template."""
    from transformers import PreTrainedTokenizerFast

    spec = chat_format(fmt)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=spec.eos,
        pad_token=spec.pad,
        **({"bos_token": spec.bos} if spec.bos else {}),
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    hf.add_special_tokens({"additional_special_tokens": [t for t in spec.specials if t not in (spec.pad, spec.bos)]})
    hf.chat_template = spec.template
    return hf


def train_tokenizer(texts: Iterable[str], vocab_size: int, *, model_max_length: int = 512, fmt: str = "chatml"):
    """Train and wrap: the organism's HF tokenizer."""
    return wrap_hf(train_bpe(texts, vocab_size, fmt=fmt), model_max_length=model_max_length, fmt=fmt)


def save_tokenizer(hf, out_dir: str | Path) -> list[str]:
    """``save_pretrained`` into ``out_dir``; returns the files written (sorted names)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    before = {p.name for p in out.iterdir()}
    hf.save_pretrained(str(out))
    # transformers 5 writes its own class name ("TokenizersBackend"); the portable name loads the
    # same tokenizer.json in transformers 4.x and 5.x (and so in vLLM or Unsloth images).
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return sorted({p.name for p in out.iterdir()} - before)


def special_ids(hf, fmt: str = "chatml") -> dict[str, int]:
    """Ids of the format's special tokens for this tokenizer."""
    return {t: hf.convert_tokens_to_ids(t) for t in chat_format(fmt).specials}
