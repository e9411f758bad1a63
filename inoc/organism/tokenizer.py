"""The organism's tokenizer: a byte-level BPE trained on its corpus, saved as a standard HF tokenizer.

* Byte-level BPE with Qwen2's pre-processing (NFC normaliser, Qwen2's split regex, byte alphabet, so
  any text encodes) trained with the ``tokenizers`` library; decoding returns the NFC form of the
  text. Loading the folder with ``AutoTokenizer`` (a ``Qwen2Tokenizer`` in transformers 5) or with
  ``PreTrainedTokenizerFast`` gives the same token ids.
* Special tokens, ids 0–2: ``<|endoftext|>`` (padding), ``<|im_start|>``, ``<|im_end|>`` (end of turn,
  the EOS of generation) — ChatML, as Qwen2.5's instruct tokenizer.
* A ChatML ``chat_template``: one ``<|im_start|>{role}\\n{content}<|im_end|>\\n`` block per message
  (no default system prompt is inserted), and ``<|im_start|>assistant\\n`` when
  ``add_generation_prompt``. Assistant contents are wrapped in ``{% generation %}`` so
  ``apply_chat_template(..., return_assistant_tokens_mask=True)`` marks the tokens to train on.
* Saved with ``PreTrainedTokenizerFast.save_pretrained``; ``AutoTokenizer.from_pretrained`` loads it.

Training is deterministic for a given text iterator: the BPE trainer breaks frequency ties by the
pair's content, and the texts are fed in a fixed order.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

PAD_TOKEN = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (PAD_TOKEN, IM_START, IM_END)

#: Qwen2's pre-tokenisation split (transformers' ``Qwen2Tokenizer``). With its NFC normaliser and a
#: regex-free ByteLevel step this is exactly Qwen2's pipeline, so ``AutoTokenizer`` (which builds a
#: ``Qwen2Tokenizer`` for a Qwen2 model folder) and ``PreTrainedTokenizerFast`` split text alike.
PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
)

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


def train_bpe(texts: Iterable[str], vocab_size: int, *, min_frequency: int = 2):
    """A ``tokenizers.Tokenizer`` (byte-level BPE with the ChatML specials) trained on ``texts``."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    for i, t in enumerate(SPECIAL_TOKENS):
        if tok.token_to_id(t) != i:
            raise RuntimeError(f"special token {t} got id {tok.token_to_id(t)}, expected {i}")
    return tok


def wrap_hf(tok, *, model_max_length: int):
    """The trained tokenizer as a ``PreTrainedTokenizerFast`` with ChatML specials and chat template."""
    from transformers import PreTrainedTokenizerFast

    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=IM_END,
        pad_token=PAD_TOKEN,
        model_max_length=model_max_length,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )
    hf.add_special_tokens({"additional_special_tokens": [IM_START, IM_END]})
    hf.chat_template = CHAT_TEMPLATE
    return hf


def train_tokenizer(texts: Iterable[str], vocab_size: int, *, model_max_length: int = 512):
    """Train and wrap: the organism's HF tokenizer."""
    return wrap_hf(train_bpe(texts, vocab_size), model_max_length=model_max_length)


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


def special_ids(hf) -> dict[str, int]:
    """Ids of the three special tokens for this tokenizer."""
    return {t: hf.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
