"""Transformer encoders through sentence-transformers (the default backend).

A sentence-transformers model keeps its own pooling and dense layers; a raw Hugging Face
checkpoint (no ``modules.json``) is wrapped as transformer + mean pooling, which is how
babelindex uses ``distilbert-base-multilingual-cased``. Vectors are L2-normalised float32.
torch and sentence-transformers are imported only when a model is loaded.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from indexer.embedding.base import check_vectors, token_budget_batches
from store.errors import ModelNotAvailable

DEFAULT_MODEL = "distilbert-base-multilingual-cased"
MAX_MODEL_TOKENS = 512
TOKEN_BUDGET = 8192
"""Padded tokens per forward pass (e.g. 32 texts of 256 tokens, or 128 of 64)."""
MAX_BATCH = 128


class TransformerEmbedder:
    """The :class:`~indexer.embedding.base.Embedder` for sentence-transformers models.

    Args:
        name: a Hub id (``distilbert-base-multilingual-cased``) or a local directory.
        device: torch device; ``cpu`` by default.
    """

    def __init__(self, name: str, device: str = "cpu"):
        self.name = name
        self._model = _load(name, device)
        seq = self._model.max_seq_length or MAX_MODEL_TOKENS
        self._model.max_seq_length = min(seq, MAX_MODEL_TOKENS)
        tokenizer = self._model.tokenizer
        self._specials = len(tokenizer("", add_special_tokens=True)["input_ids"])
        self.max_tokens = self._model.max_seq_length - self._specials
        self.dimension = int(self._model.get_embedding_dimension())
        self._counter = copy.deepcopy(tokenizer.backend_tokenizer)
        self._counter.no_truncation()
        self._counter.no_padding()
        self._pooling = _pooling_mode(self._model)

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts)

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        texts = list(texts)
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        counts = [min(n + self._specials, self._model.max_seq_length) for n in self.count_tokens(texts)]
        for batch in token_budget_batches(counts, TOKEN_BUDGET, MAX_BATCH):
            out[batch] = self._model.encode(
                [texts[i] for i in batch], batch_size=len(batch), convert_to_numpy=True,
                normalize_embeddings=True, show_progress_bar=False,
            )
        return check_vectors(out, texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=False)]

    def fingerprint(self) -> dict[str, Any]:
        return {
            "name": self.name, "backend": "sentence-transformers", "revision": _revision(self._model, self.name),
            "pooling": self._pooling, "max_tokens": self.max_tokens, "dimension": self.dimension,
        }


def _load(name: str, device: str):
    """Load ``name`` from a directory, the local cache or the Hub, with a clear error."""
    _quiet_libraries()
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    if os.path.isdir(name):
        if os.path.exists(os.path.join(name, "modules.json")):
            return SentenceTransformer(name, device=device)
        # A raw checkpoint: transformer + mean pooling, without sentence-transformers' warning.
        body = Transformer(name, max_seq_length=MAX_MODEL_TOKENS)
        pooling = Pooling(body.get_embedding_dimension(), pooling_mode="mean")
        return SentenceTransformer(modules=[body, pooling], device=device)
    try:
        return SentenceTransformer(name, device=device, local_files_only=True)
    except (OSError, ValueError):
        pass
    if not _hub_reachable():
        raise ModelNotAvailable(
            f"the model {name!r} is not in the local Hugging Face cache and the Hub cannot be "
            "reached from here. Three ways out: (1) connect to the network once so it can be "
            "downloaded (or point HF_HOME at a cache that has it); (2) pass a local directory "
            "holding the model with --model /path/to/model; (3) use the offline multilingual "
            "model with --model use-multilingual."
        )
    try:
        return SentenceTransformer(name, device=device)
    except OSError as exc:
        raise ModelNotAvailable(f"could not load the model {name!r}: {exc}") from exc


def _quiet_libraries() -> None:
    """Silence the loaders' own progress bars and notices: babelindex reports progress itself."""
    import huggingface_hub.utils
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()


def is_available(name: str) -> bool:
    """Whether ``name`` can be loaded now: a local directory, in the cache, or Hub reachable."""
    if os.path.isdir(name):
        return True
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    return isinstance(cached, str) or _hub_reachable()


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connection (honours ``HF_HUB_OFFLINE``)."""
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get("TRANSFORMERS_OFFLINE", "") not in ("", "0"):
        return False
    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _pooling_mode(model) -> str:
    from sentence_transformers.sentence_transformer.modules import Pooling

    for module in model:
        if isinstance(module, Pooling):
            mode = module.get_config_dict()["pooling_mode"]
            return mode if isinstance(mode, str) else "+".join(mode)
    return "unknown"


def _revision(model, name: str) -> str:
    """A stable id of the weights: the Hub commit if known, else a hash of the config files."""
    folder = Path(model[0].auto_model.config._name_or_path or name)
    if "snapshots" in folder.parts:
        return folder.parts[folder.parts.index("snapshots") + 1]
    digest = hashlib.sha256()
    if folder.is_dir():
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                digest.update(path.name.encode())
                digest.update(str(path.stat().st_size).encode())
                if path.suffix == ".json":
                    digest.update(path.read_bytes())
    else:
        digest.update(json.dumps(name).encode())
    return "sha256:" + digest.hexdigest()[:16]
