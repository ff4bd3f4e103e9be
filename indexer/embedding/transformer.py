"""Transformer encoders through sentence-transformers (the default backend).

A sentence-transformers model keeps its own pooling and dense layers; a raw Hugging Face
checkpoint (no ``modules.json``) is wrapped as transformer + mean pooling, which is how
babelindex uses ``distilbert-base-multilingual-cased``. Vectors are L2-normalised float32.
Queries and documents are embedded with the model's prompts (:mod:`indexer.embedding.prompts`),
tokenized as sentence-transformers tokenizes them (``preprocess(texts, prompt=…)``), so that a
pooling layer with ``include_prompt=False`` leaves the prompt's tokens out in every precision.
The transformer runs in fp32, in bf16 (torch, see :mod:`indexer.embedding.bf16_backend`),
in bf16 through OpenVINO (``ov-bf16``, see :mod:`indexer.embedding.openvino_backend`) or in
int8 (ONNX Runtime, see :mod:`indexer.embedding.onnx_backend`); pooling, dense and normalize
layers always run in fp32, the model's own, on the body's token embeddings. torch and sentence-transformers are imported only when a model is loaded.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import os
import socket
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

from indexer.embedding import bf16_backend
from indexer.embedding.base import PROBE_TEXT, check_vectors, token_budget_batches
from indexer.embedding.precision import (
    agreement,
    cache_dir,
    cached_decision,
    measure,
    model_cache_key,
    requested,
    save_decision,
    unsupported_reason,
)
from indexer.embedding.prompts import model_prompts, resolve_prompts
from indexer.embedding.registry import display, hub_cache_dir, local_snapshot, suggestion
from store.errors import InvalidInput, ModelError, ModelNotAvailable

MAX_MODEL_TOKENS = 512
TOKEN_BUDGET = 8192
"""Padded tokens per forward pass (e.g. 32 texts of 256 tokens, or 128 of 64)."""
MAX_BATCH = 128
MIN_PARALLEL_BUDGET = 512
"""The smallest token budget a batch of a ``parallel`` body gets when few texts are split
between its streams (two batches per stream at least, down to this size)."""
INT8_SANITY = 0.95
"""A cached int8 export whose probe vector is further than this (cosine) from fp32's is taken
for a damaged or stale file and exported again. A sanity check only: ``auto`` judges quality."""
OPENVINO_SANITY = 0.99
"""The same for a cached OpenVINO conversion (bf16: much closer to fp32 than int8)."""


class TransformerEmbedder:
    """The :class:`~indexer.embedding.base.Embedder` for sentence-transformers models.

    Args:
        name: how the model was named (a registry name, Hub id or directory); recorded.
        device: torch device; ``cpu`` by default.
        precision: ``auto`` (default; see :mod:`indexer.embedding.precision`), ``fp32``,
            ``bf16``, ``ov-bf16`` or ``int8``; None reads ``$BABELINDEX_PRECISION``.
        source: what to load (a Hub id or a directory); default ``name``.
        model: an already loaded ``sentence_transformers.SentenceTransformer`` to use instead
            of loading ``source`` (see :func:`from_sentence_transformer`); its
            ``max_seq_length`` is capped at 512 tokens.
        query_prompt / document_prompt: the text to put before each query / document chunk
            instead of the model's own prompts (``""``: none; None: the model's own, see
            :mod:`indexer.embedding.prompts`).

    Attributes:
        precision: the precision used for ``documents`` and for ``queries``.
        calibration: the measurements ``auto`` chose from (None for a fixed precision).
        prompts: the query and document prompts it embeds with.
        max_tokens: the model's input limit less its special tokens and the document prompt's
            tokens: the most tokens a chunk may have to be embedded whole, prompt included.
    """

    def __init__(
        self,
        name: str,
        device: str = "cpu",
        *,
        precision: str | None = None,
        source: str | None = None,
        model: Any = None,
        query_prompt: str | None = None,
        document_prompt: str | None = None,
    ):
        self.name = name
        self.source = source or name
        if model is None:
            self._model, self._folder = _load(self.source, device, name)
        else:
            self._model, self._folder = model, _folder_of(self.source)
        seq = self._model.max_seq_length or MAX_MODEL_TOKENS
        self._model.max_seq_length = min(seq, MAX_MODEL_TOKENS)
        tokenizer = self._model.tokenizer
        self._specials = len(tokenizer("", add_special_tokens=True)["input_ids"])
        self.dimension = int(self._model.get_embedding_dimension())
        self._counter = copy.deepcopy(tokenizer.backend_tokenizer)
        self._counter.no_truncation()
        self._counter.no_padding()
        self.prompts = resolve_prompts(model_prompts(self._model, name, self.source), query_prompt, document_prompt)
        self._prompt_tokens = {
            role: self.count_tokens([text])[0] if text else 0
            for role, text in (("documents", self.prompts.document), ("queries", self.prompts.query))
        }
        self.max_tokens = self._model.max_seq_length - self._specials - self._prompt_tokens["documents"]
        if self.max_tokens < 1:
            raise InvalidInput(
                f"the document prompt {self.prompts.document!r} is {self._prompt_tokens['documents']} tokens, which "
                f"leaves nothing of the {self._model.max_seq_length} tokens {display(name)} reads; "
                "pass a shorter --document-prompt."
            )
        self._pooling = _pooling_mode(self._model)
        self._bf16 = False
        self._bodies: dict[str, Any] = {}
        """Replacement transformer bodies by precision: ``int8`` (ONNX Runtime), ``ov-bf16`` (OpenVINO)."""
        self._pool: ThreadPoolExecutor | None = None
        """The threads that keep a ``parallel`` body's batches in flight, made on first use."""
        self.calibration: dict[str, Any] | None = None
        self.precision = self._choose_precision(requested(precision))

    @property
    def query_prompt(self) -> str:
        return self.prompts.query

    @property
    def document_prompt(self) -> str:
        return self.prompts.document

    def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.precision["documents"], "documents")

    def embed_queries(self, texts: Sequence[str]) -> np.ndarray:
        return self._encode(texts, self.precision["queries"], "queries")

    def _encode(self, texts: Sequence[str], precision: str, role: str = "documents") -> np.ndarray:
        """float32 ``(len(texts), dimension)`` unit vectors, in token-budget batches, each text
        after the prompt of ``role`` (``documents`` or ``queries``). A body that runs several
        batches at once (``parallel``: OpenVINO's streams) gets that many in flight, from as many
        threads; the tokenizer runs here, in the caller's thread (it is not safe to share)."""
        texts = list(texts)
        prompt = self.prompts.document if role == "documents" else self.prompts.query
        extra = self._specials + self._prompt_tokens[role]
        out = np.empty((len(texts), self.dimension), dtype=np.float32)
        counts = [min(n + extra, self._model.max_seq_length) for n in self.count_tokens(texts)]
        body = self._bodies.get(precision)
        parallel = getattr(body, "parallel", 1)
        budget = getattr(body, "token_budget", TOKEN_BUDGET)
        if parallel > 1:  # a few texts: smaller batches, so that every stream gets some
            budget = max(MIN_PARALLEL_BUDGET, min(budget, sum(counts) // (2 * parallel)))
        batches = token_budget_batches(counts, budget, MAX_BATCH)

        def features_of(batch: np.ndarray) -> dict[str, Any]:
            # sentence-transformers puts the prompt in and, for a pooling layer with
            # include_prompt=False, says how many tokens it took (features["prompt_length"]).
            features = self._model.preprocess([texts[i] for i in batch], prompt=prompt or None)
            if self._model.device.type != "cpu":  # a loaded model the user put on a GPU
                features = {k: v.to(self._model.device) if hasattr(v, "to") else v for k, v in features.items()}
            return features

        if parallel <= 1 or len(batches) <= 1:
            for batch in batches:
                out[batch] = self._vectors(features_of(batch), precision)
            return check_vectors(out, texts)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(parallel, thread_name_prefix="babelindex-embed")
        pending: deque[tuple[np.ndarray, Future[np.ndarray]]] = deque()
        for batch in batches:
            pending.append((batch, self._pool.submit(self._vectors, features_of(batch), precision)))
            if len(pending) > parallel:  # one more tokenized and waiting, no further
                done, future = pending.popleft()
                out[done] = future.result()
        for done, future in pending:
            out[done] = future.result()
        return check_vectors(out, texts)

    def _vectors(self, features: dict[str, Any], precision: str) -> np.ndarray:
        """float32 ``(batch, dimension)`` of one tokenized batch (in any thread)."""
        import torch

        with torch.inference_mode():
            return self._forward(features, precision).cpu().numpy()

    def _forward(self, features: dict[str, Any], precision: str) -> Any:
        """Sentence embeddings, float32 tensor ``(batch, dimension)``, of one tokenized batch."""
        if precision in self._bodies:
            features["token_embeddings"] = self._bodies[precision](features)
            for module in list(self._model)[1:]:  # the model's own pooling, dense, normalize
                features = module(features)
        elif precision == "bf16":
            with bf16_backend.active():
                features = self._model(features)
        else:
            features = self._model(features)
        return features["sentence_embedding"].float()

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens of each text alone (no prompt, no special tokens)."""
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=False)]

    def fingerprint(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "backend": "sentence-transformers",
            "revision": _revision(self._folder, self.source),
            "pooling": self._pooling,
            "max_tokens": self.max_tokens,
            "dimension": self.dimension,
            "query_prompt": self.prompts.query,
            "document_prompt": self.prompts.document,
        }

    # -- precision ------------------------------------------------------------------------
    def _choose_precision(self, wanted: str) -> dict[str, str]:
        """Prepare ``wanted`` (or, for ``auto``, the cached or freshly measured choice)."""
        if wanted != "auto":
            reason = unsupported_reason(wanted)
            if reason:
                raise InvalidInput(reason)
            self._prepare(wanted)
            return {"documents": wanted, "queries": wanted}
        record = cached_decision(self._cache_key())
        if record is None:
            candidates = [p for p in ("bf16", "ov-bf16", "int8") if unsupported_reason(p) is None]
            trials = measure(self._trial_runner, candidates, model=display(self.name))
            record = save_decision(self._cache_key(), trials, {"model": self.name, "source": self.source})
        self.calibration = record
        for precision in sorted(set(record["choice"].values())):
            self._prepare(precision)
        return dict(record["choice"])

    def _trial_runner(self, precision: str):
        self._prepare(precision)
        return lambda texts: self._encode(texts, precision)

    def _cache_key(self) -> str:
        return model_cache_key(
            self._folder,
            {
                "pooling": self._pooling,
                "max_seq_length": self._model.max_seq_length,
                "modules": [type(m).__name__ for m in self._model],
            },
        )

    def _prepare(self, precision: str) -> None:
        """Make ``precision`` ready to run: bf16 weight copies, the int8 ONNX session or the
        compiled OpenVINO model."""
        if precision == "bf16" and not self._bf16:
            self._bf16 = bf16_backend.enable(self._model) > 0
        elif precision in ("int8", "ov-bf16") and precision not in self._bodies:
            self._bodies[precision] = self._exported_body(precision)

    def _exported_body(self, precision: str) -> Any:
        """The int8 ONNX or OpenVINO body from the cache, exported now if missing, damaged or
        not agreeing with fp32 on a probe text."""
        import torch

        from indexer.embedding.onnx_backend import INPUT_NAMES

        first = self._model[0]
        if not hasattr(first, "auto_model"):
            raise InvalidInput(
                f"{precision} is not available for {self.name!r} (its first module is not a transformer); "
                "use --precision auto, fp32 or bf16."
            )
        probe = self._model.preprocess([PROBE_TEXT])
        names = [n for n in INPUT_NAMES if n in probe]
        folder = cache_dir() / "models" / self._cache_key()
        if precision == "int8":
            from indexer.embedding.onnx_backend import OnnxBody, export_int8

            path, sanity = folder / "model.int8.onnx", INT8_SANITY
            export = lambda: export_int8(first.auto_model, names, path)  # noqa: E731
            load: Any = OnnxBody
        else:
            from indexer.embedding.openvino_backend import MODEL_FILE, OpenVinoBody, convert

            path, sanity = folder / "openvino" / MODEL_FILE, OPENVINO_SANITY
            export = lambda: convert(first.auto_model, names, path.parent)  # noqa: E731
            load = lambda p: OpenVinoBody(p, max_tokens=self._model.max_seq_length)  # noqa: E731
        with torch.inference_mode():
            reference = self._forward(dict(probe), "fp32").numpy()
        for attempt in range(2):
            if attempt or not path.exists():
                try:
                    export()
                except Exception as exc:
                    raise ModelError(
                        f"could not export {self.name!r} for {precision} ({type(exc).__name__}: {exc}); "
                        "use --precision auto, fp32 or bf16."
                    ) from exc
            try:
                self._bodies[precision] = load(path)
                with torch.inference_mode():
                    if agreement(reference, self._forward(dict(probe), precision).numpy()).min >= sanity:
                        with contextlib.suppress(OSError):
                            os.utime(folder)  # in use: not to be pruned
                        return self._bodies.pop(precision)
            except Exception:  # a damaged or stale file: export again once
                if attempt:
                    raise
            self._bodies.pop(precision, None)
        raise ModelError(
            f"the {precision} export of {self.name!r} does not agree with its fp32 vectors; "
            "use --precision auto, fp32 or bf16."
        )


def from_sentence_transformer(
    model: Any, *, precision: str | None = None, query_prompt: str | None = None, document_prompt: str | None = None
) -> TransformerEmbedder:
    """The embedder of a loaded ``sentence_transformers.SentenceTransformer``, used as it is
    (its own modules, device and prompts; ``query_prompt`` / ``document_prompt`` replace the
    prompts). It is named as the model it was loaded from: the Hub id of
    a Hub cache snapshot, else the directory its transformer was loaded from, so that an index
    records a name ``load_embedder`` can load again. Raises ``InvalidInput`` for a model that
    does not say where it came from."""
    first = model[0] if len(model) else None
    path = getattr(getattr(getattr(first, "auto_model", None), "config", None), "_name_or_path", None)
    if not isinstance(path, str) or not path:
        raise InvalidInput(
            "this SentenceTransformer does not say which model it is (its first module is not a transformer "
            "loaded from a Hub id or a directory): save it with model.save(DIR) and pass model=DIR."
        )
    name, parts = path, Path(path).parts
    if "snapshots" in parts and parts[parts.index("snapshots") - 1].startswith("models--"):
        name = parts[parts.index("snapshots") - 1].removeprefix("models--").replace("--", "/")
    return TransformerEmbedder(
        name,
        precision=precision,
        source=path,
        model=model,
        query_prompt=query_prompt,
        document_prompt=document_prompt,
    )


def _folder_of(source: str) -> Path:
    """The folder holding the files of ``source`` (a directory, or a Hub id in the cache)."""
    return Path(source) if os.path.isdir(source) else (local_snapshot(source) or Path(source))


def _load(source: str, device: str, name: str):
    """Load ``source`` from a directory, the local cache or the Hub, with a clear error.

    Returns the ``SentenceTransformer`` and the folder its files are in.
    """
    quiet_libraries()
    from sentence_transformers import SentenceTransformer

    folder = Path(source) if os.path.isdir(source) else local_snapshot(source)
    if folder is not None:
        return _load_folder(folder, device), folder
    if not _hub_reachable():
        raise ModelNotAvailable(
            f"the model {display(name)} is not in the local Hugging Face cache and the Hub cannot be "
            "reached from here. Three ways out: (1) connect to the network once so it can be "
            "downloaded (or point HF_HOME at a cache that has it); (2) pass a local directory "
            "holding the model with --model /path/to/model; (3) use the offline multilingual "
            "model with --model use-multilingual." + suggestion(name)
        )
    try:
        model = SentenceTransformer(source, device=device, cache_folder=hub_cache_dir())
    except OSError as exc:
        raise ModelNotAvailable(f"could not load the model {display(name)}: {exc}{suggestion(name)}") from exc
    return model, local_snapshot(source) or Path(source)


def _load_folder(folder: Path, device: str):
    """A sentence-transformers model from ``folder``; a raw checkpoint gets mean pooling."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    if (folder / "modules.json").exists():
        return SentenceTransformer(str(folder), device=device)
    # A raw checkpoint: transformer + mean pooling, without sentence-transformers' warning.
    body = Transformer(str(folder), max_seq_length=MAX_MODEL_TOKENS)
    pooling = Pooling(body.get_embedding_dimension(), pooling_mode="mean")
    return SentenceTransformer(modules=[body, pooling], device=device)


def quiet_libraries() -> None:
    """Silence the loaders' own progress bars and notices: babelindex reports progress itself."""
    import huggingface_hub.utils
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    huggingface_hub.utils.disable_progress_bars()


def is_available(source: str) -> bool:
    """Whether ``source`` can be loaded now: a local directory, in the cache, or Hub reachable."""
    return os.path.isdir(source) or local_snapshot(source) is not None or _hub_reachable()


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face Hub answers a TCP connection (honours ``HF_HUB_OFFLINE``)."""
    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0") or os.environ.get("TRANSFORMERS_OFFLINE", "") not in (
        "",
        "0",
    ):
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


def _revision(folder: Path, name: str) -> str:
    """A stable id of the weights: the Hub commit if known, else a hash of the config files."""
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
