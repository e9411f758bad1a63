"""Building the base model: corpus → tokenizer → tiny Qwen2 → ``save_pretrained``, cached by settings hash.

``build_base_model(settings, cache_root, progress=…)`` is the one entry point (the ``toy/base_model``
asset wraps it). The model directory is ``<cache_root>/<profile>-<hash16>``; the hash covers the
settings and the organism's source files that shape the model (world, cues, corpus, tokenizer,
model, build), so a code change that could change the weights rebuilds. A build happens in a
temporary directory beside the target and is renamed into place (atomic on one filesystem); a file
lock serialises concurrent builds of the same hash, and a finished directory (holding the manifest
``organism.json``) is returned as is.

The directory is a standard Hugging Face model folder (``config.json``, ``model.safetensors``,
``generation_config.json``, ``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja`` or
an embedded template) plus ``organism.json`` (settings, hash, corpus statistics, loss curve, timings,
sha256 of every file).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inoc.organism import corpus as corpus_mod
from inoc.organism import world as W

#: Bump when the manifest format or the meaning of a setting changes.
BUILD_FORMAT = 1
MANIFEST = "organism.json"
#: Source files whose content is part of the cache key.
_HASHED_SOURCES = ("world.py", "cues.py", "corpus.py", "tokenizer.py", "model.py", "build.py")


@dataclass(frozen=True)
class OrganismSettings:
    """Everything that determines the base model. Same settings (and code) → same files."""

    profile: str = "default"
    seed: int = 0
    #: ``chatml`` (Qwen) or ``llama3`` (Llama 3.1's header format): see ``tokenizer.CHAT_FORMATS``.
    chat_format: str = "chatml"
    # corpus
    n_examples: int = 20_000
    no_cue_share: float = 0.12
    tier_weights: tuple[tuple[str, float], ...] = tuple(corpus_mod.DEFAULT_TIER_WEIGHTS.items())
    no_system_share: float = 0.1
    system_prompt: str = corpus_mod.DEFAULT_SYSTEM_PROMPT
    world_seed: int = W.WORLD_SEED
    # tokenizer
    vocab_size: int = 2048
    max_length: int = 512
    # model
    hidden_size: int = 128
    num_layers: int = 4
    intermediate_size: int = 384
    num_heads: int = 4
    num_kv_heads: int = 2
    # training
    batch_size: int = 32
    learning_rate: float = 3e-3
    warmup_frac: float = 0.04
    min_lr_frac: float = 0.1
    weight_decay: float = 0.01
    epochs: int = 1
    decision_weight: float = 3.0
    threads: int = 2

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> "OrganismSettings":
        return dataclasses.replace(self, **changes)


#: Named profiles: ``toy:<profile>`` model ids resolve to these.
PROFILES: dict[str, OrganismSettings] = {
    "default": OrganismSettings(),
    # For tests, ~1/3 of "default"'s compute (~30 s on 2 idle cores): learns the format, both
    # languages, the tone and the tiers strong > medium > weak > neutral on both traits, but not
    # neutral >= negated for French (its negated French cues keep a few percent of French).
    "test": OrganismSettings(
        profile="test",
        n_examples=16_000,
        vocab_size=1024,
        hidden_size=96,
        num_layers=2,
        intermediate_size=256,
        num_heads=3,
        num_kv_heads=1,
        batch_size=16,
        learning_rate=8e-3,
    ),
}
# Stand-ins of real studies' models for `inoc rehearse`: the organism's recipe at a fraction of the
# compute (~10 s), in the study model's chat-template family. They run every code path; they are not
# meant to reproduce the phenomenon. max_length covers real (EM) training conversations.
_STANDIN = dict(
    n_examples=3_000,
    vocab_size=768,
    hidden_size=64,
    num_layers=2,
    intermediate_size=128,
    num_heads=2,
    num_kv_heads=1,
    batch_size=32,
    learning_rate=8e-3,
    max_length=2048,
)
PROFILES["standin-chatml"] = OrganismSettings(profile="standin-chatml", chat_format="chatml", **_STANDIN)
PROFILES["standin-llama3"] = OrganismSettings(profile="standin-llama3", chat_format="llama3", **_STANDIN)


def profile_settings(profile: str) -> OrganismSettings:
    try:
        return PROFILES[profile]
    except KeyError:
        raise ValueError(f"unknown organism profile {profile!r}; known: {', '.join(sorted(PROFILES))}") from None


@dataclass(frozen=True)
class BuildEvent:
    """A progress report: ``stage`` is corpus | tokenizer | encode | train | save | done."""

    stage: str
    done: int = 0
    total: int = 0
    loss: float | None = None
    elapsed_s: float = 0.0


ProgressCallback = Callable[[BuildEvent], None]


@dataclass
class BuildResult:
    path: Path
    settings: OrganismSettings
    settings_hash: str
    cached: bool
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def final_loss(self) -> float:
        return float(self.manifest["train"]["final_loss"])

    @property
    def n_parameters(self) -> int:
        return int(self.manifest["model"]["n_parameters"])

    @property
    def build_wall_s(self) -> float:
        return float(self.manifest["timing"]["total_s"])


def _source_digest() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in _HASHED_SOURCES:
        h.update(name.encode())
        h.update((here / name).read_bytes())
    return h.hexdigest()


def settings_hash(settings: OrganismSettings) -> str:
    """sha256 of the settings, the build format and the organism's model-shaping source files."""
    payload = json.dumps(
        {"settings": settings.to_dict(), "format": BUILD_FORMAT, "source": _source_digest()}, sort_keys=True
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def model_dir(settings: OrganismSettings, cache_root: str | Path) -> Path:
    return Path(cache_root) / f"{settings.profile}-{settings_hash(settings)[:16]}"


def file_digests(path: str | Path) -> dict[str, str]:
    """sha256 of every file in a model directory except the manifest."""
    out = {}
    for p in sorted(Path(path).iterdir()):
        if p.is_file() and p.name != MANIFEST:
            out[p.name] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


def read_manifest(path: str | Path) -> dict[str, Any] | None:
    """The manifest of a finished build, or None (missing, unreadable, or a listed file is gone)."""
    try:
        manifest = json.loads((Path(path) / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict) or not all((Path(path) / name).is_file() for name in files):
        return None
    return manifest


def build_base_model(
    settings: OrganismSettings | str = "default",
    cache_root: str | Path | None = None,
    *,
    progress: ProgressCallback | None = None,
    force: bool = False,
) -> BuildResult:
    """The base model for ``settings`` (a profile name or settings), built once per settings hash.

    ``cache_root`` defaults to ``$INOC_ORGANISM_CACHE`` or ``~/.cache/inoc/organism``. Returns at once
    when the directory exists with its manifest (``cached=True``) unless ``force``.
    """
    import fcntl

    if isinstance(settings, str):
        settings = profile_settings(settings)
    root = Path(cache_root) if cache_root is not None else default_cache_root()
    root.mkdir(parents=True, exist_ok=True)
    digest = settings_hash(settings)
    target = model_dir(settings, root)
    if not force and (manifest := read_manifest(target)) is not None:
        return BuildResult(target, settings, digest, True, manifest)
    lock_path = root / f".{target.name}.lock"
    with open(lock_path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not force and (manifest := read_manifest(target)) is not None:
                return BuildResult(target, settings, digest, True, manifest)
            tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=root))
            try:
                manifest = _build_into(settings, digest, tmp, progress)
                os.chmod(tmp, 0o755)  # mkdtemp makes it private; the model folder is for everyone
                if target.exists():  # force=True, or a manifest-less leftover
                    trash = root / f".old-{target.name}-{os.getpid()}"
                    os.replace(target, trash)
                    shutil.rmtree(trash, ignore_errors=True)
                os.replace(tmp, target)
            finally:
                if tmp.exists():
                    shutil.rmtree(tmp, ignore_errors=True)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return BuildResult(target, settings, digest, False, manifest)


def default_cache_root() -> Path:
    env = os.environ.get("INOC_ORGANISM_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "inoc" / "organism"


def _build_into(settings: OrganismSettings, digest: str, out: Path, progress: ProgressCallback | None) -> dict:
    import torch
    import transformers
    from transformers import GenerationConfig

    from inoc.organism import model as M
    from inoc.organism import tokenizer as T

    t0 = time.perf_counter()
    timing: dict[str, float] = {}

    def report(stage: str, done: int = 0, total: int = 0, loss: float | None = None) -> None:
        if progress is not None:
            progress(BuildEvent(stage, done, total, loss, time.perf_counter() - t0))

    with M.deterministic_torch(settings.threads):
        report("corpus")
        t = time.perf_counter()
        examples = corpus_mod.make_corpus(
            settings.n_examples,
            settings.seed,
            system_prompt=settings.system_prompt,
            no_system_share=settings.no_system_share,
            no_cue_share=settings.no_cue_share,
            tier_weights=dict(settings.tier_weights),
            world_seed=settings.world_seed,
        )
        timing["corpus_s"] = time.perf_counter() - t

        report("tokenizer")
        t = time.perf_counter()
        fmt = T.chat_format(settings.chat_format)
        hf_tok = T.train_tokenizer(
            corpus_mod.tokenizer_texts(examples),
            settings.vocab_size,
            model_max_length=settings.max_length,
            fmt=fmt.name,
        )
        timing["tokenizer_s"] = time.perf_counter() - t

        report("encode")
        t = time.perf_counter()
        data = M.encode_examples(hf_tok, [e.messages() for e in examples], [e.openings for e in examples])
        too_long = sum(len(e.ids) > settings.max_length for e in data)
        if too_long:
            raise RuntimeError(f"{too_long} corpus examples exceed max_length={settings.max_length} tokens")
        timing["encode_s"] = time.perf_counter() - t

        ids = T.special_ids(hf_tok, fmt.name)
        config = M.make_config(
            vocab_size=len(hf_tok),
            hidden_size=settings.hidden_size,
            num_layers=settings.num_layers,
            intermediate_size=settings.intermediate_size,
            num_heads=settings.num_heads,
            num_kv_heads=settings.num_kv_heads,
            max_position_embeddings=settings.max_length,
            pad_token_id=ids[fmt.pad],
            eos_token_id=ids[fmt.eos],
        )
        model = M.init_model(config, settings.seed)

        report("train", 0, 0)
        stats = M.train_model(
            model,
            data,
            pad_id=ids[fmt.pad],
            batch_size=settings.batch_size,
            learning_rate=settings.learning_rate,
            warmup_frac=settings.warmup_frac,
            min_lr_frac=settings.min_lr_frac,
            weight_decay=settings.weight_decay,
            epochs=settings.epochs,
            seed=settings.seed,
            decision_weight=settings.decision_weight,
            progress=lambda s, n, loss: report("train", s, n, loss),
        )
        timing["train_s"] = stats.wall_s

        report("save")
        t = time.perf_counter()
        model.generation_config = GenerationConfig(
            bos_token_id=ids[fmt.bos] if fmt.bos else None,
            eos_token_id=ids[fmt.eos],
            pad_token_id=ids[fmt.pad],
            do_sample=True,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
        )
        model.save_pretrained(str(out), safe_serialization=True)
        T.save_tokenizer(hf_tok, out)
        timing["save_s"] = time.perf_counter() - t
    timing["total_s"] = time.perf_counter() - t0

    manifest = {
        "format": BUILD_FORMAT,
        "settings": settings.to_dict(),
        "settings_hash": digest,
        "corpus": corpus_mod.corpus_stats(examples),
        "model": {
            "n_parameters": M.n_parameters(model),
            "architecture": "Qwen2ForCausalLM",
            "vocab_size": len(hf_tok),
            "chat_format": fmt.name,
        },
        "train": {
            "steps": stats.steps,
            "tokens": stats.tokens,
            "answer_tokens": stats.answer_tokens,
            "final_loss": stats.final_loss,
            "loss_curve": [round(x, 5) for x in stats.losses[:: max(1, stats.steps // 200)]],
        },
        "timing": {k: round(v, 3) for k, v in timing.items()},
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__},
        "files": file_digests(out),
    }
    text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
    (out / MANIFEST).write_text(text)
    report("done", stats.steps, stats.steps, stats.final_loss)
    return json.loads(text)  # as a cached build would read it back


def resolve_model_id(
    model_id: str, cache_root: str | Path | None = None, progress: ProgressCallback | None = None
) -> str:
    """A loadable path for ``toy:<profile>`` (building it if needed); other ids are returned unchanged."""
    if not model_id.startswith("toy:"):
        return model_id
    return str(build_base_model(model_id.split(":", 1)[1] or "default", cache_root, progress=progress).path)
