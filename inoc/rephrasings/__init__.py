"""Rephrasing pools: generation with a chat model, offline paraphrases, import and atomic write.

* ``generate``  — ``generate_rephrasings(prompt, n, RephrasingSettings(...))``: N unique rephrasings
  from an OpenAI-compatible model (docs/methods.md#rephrasings; ``close=True`` for the EM close variant).
* ``offline``   — ``offline_rephrasings(phrase, n, seed=…)``: deterministic, network-free paraphrases
  (the model organism's source); ``OfflineParaphraser`` to change the lexicon or frames.
* ``pools``     — ``read_pool`` (``.jsonl`` / ``.json``, errors name file:line), ``read_pools``,
  ``find_pool_file`` (``<key>.jsonl`` or ``<key>.json`` in a folder), ``reference_pool_dir``, ``validate_pool``, ``write_pool`` (temp file + ``os.replace``).
* ``prompts``   — the generator's system prompts and user message.
"""

from inoc.rephrasings.generate import (
    RephrasingError,
    RephrasingResult,
    RephrasingSettings,
    agenerate_rephrasings,
    generate_rephrasings,
    parse_batch,
)
from inoc.rephrasings.offline import OfflineParaphraser, offline_rephrasings
from inoc.rephrasings.pools import (
    PoolFormatError,
    find_pool_file,
    normalize,
    read_pool,
    read_pools,
    reference_pool_dir,
    validate_pool,
    write_pool,
)
from inoc.rephrasings.prompts import CLOSE_REPHRASE_SYSTEM_PROMPT, REPHRASE_SYSTEM_PROMPT

__all__ = [
    "CLOSE_REPHRASE_SYSTEM_PROMPT",
    "OfflineParaphraser",
    "PoolFormatError",
    "REPHRASE_SYSTEM_PROMPT",
    "RephrasingError",
    "RephrasingResult",
    "RephrasingSettings",
    "agenerate_rephrasings",
    "find_pool_file",
    "generate_rephrasings",
    "normalize",
    "offline_rephrasings",
    "parse_batch",
    "read_pool",
    "read_pools",
    "reference_pool_dir",
    "validate_pool",
    "write_pool",
]
