"""bf16 inference of a transformer body through OpenVINO (precision ``ov-bf16``).

:func:`convert` turns the Hugging Face model under a sentence-transformers pipeline
(``input_ids``, ``attention_mask`` [, ``token_type_ids``] → ``last_hidden_state``) into an
OpenVINO model with ``openvino.convert_model`` (batch and token dimensions dynamic) and saves
it, weights in fp32, as OpenVINO IR (``model.xml`` + ``model.bin``). :class:`OpenVinoBody`
compiles it for the CPU with bf16 as the inference precision (OpenVINO keeps softmax, layer
norms and accumulations in fp32) and returns float32 token embeddings that the model's own
pooling, dense and normalize layers then turn into sentence vectors, exactly as for fp32.
The compiled model is cached (``CACHE_DIR`` beside the IR, ``CACHE_MODE`` ``OPTIMIZE_SIZE``: a
blob of a few hundred kB that reads its weights from the IR, where the full blob would double
the 540 MB at DistilmBERT's size; measured: 0.15 s to load against 0.38 s to compile).
openvino is imported only here, and only when ``ov-bf16`` is used.

OpenVINO's converter sends usage telemetry (to Google Analytics: an event when ``openvino`` is
imported, others per conversion) unless the user has declined it in a consent file. babelindex
imports it with ``openvino_telemetry`` blocked, so that it falls back to its own do-nothing
stub, as it does where that package is not installed (see :func:`openvino`), and converts
with the stub in place even if ``openvino`` was imported before (:func:`without_telemetry`).
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from indexer.embedding.onnx_backend import positional_body, quiet, trace_inputs

MODEL_FILE = "model.xml"
"""The IR's graph, in the folder :func:`convert` writes; ``model.bin`` beside it holds the weights."""
PERFORMANCE_MODE = "THROUGHPUT"
"""Several inference streams sharing the cores (on 2 cores: two streams of one thread), with
as many batches in flight: measured on DistilmBERT's shape and all-MiniLM-L6-v2, 1.2 to 2.3
times the documents per second of one stream using every thread (``LATENCY``), whose small
per-layer matrix products leave threads waiting on each other; a single query was no slower."""
PAD_MULTIPLE = 16
"""Batches are padded to a multiple of this many tokens: the CPU plugin's bf16 kernels (AMX
tiles of 16 rows) run whole tiles, and fewer distinct shapes reach its shape cache. Measured
1.15 times the throughput of exact lengths; padded tokens are masked, so vectors do not change."""
TOKEN_BUDGET = 4096
"""Padded tokens per batch: each stream takes one batch, so half :data:`transformer.TOKEN_BUDGET`."""


def convert(body: Any, input_names: Sequence[str], target: Path) -> Path:
    """Convert ``body`` (a ``transformers`` model) to OpenVINO IR in the folder ``target``.

    The folder appears only when complete (written beside it, then renamed); an existing one
    is replaced. Returns the path of its :data:`MODEL_FILE`.
    """
    import torch

    ov = openvino()
    target.parent.mkdir(parents=True, exist_ok=True)
    example = trace_inputs()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".convert-") as tmp:
        with quiet(), without_telemetry(), torch.no_grad():
            model = ov.convert_model(
                positional_body(body, input_names).eval(),
                example_input=tuple(example[n] for n in input_names),
                input=[(ov.PartialShape([-1, -1]), ov.Type.i64)] * len(input_names),
            )
        for port, name in zip(model.inputs, input_names, strict=True):
            port.get_tensor().set_names({name})
        folder = Path(tmp) / "ir"
        ov.save_model(model, folder / MODEL_FILE, compress_to_fp16=False)
        if target.exists():
            shutil.rmtree(target)
        folder.rename(target)
    return target / MODEL_FILE


def openvino() -> Any:
    """The ``openvino`` module, imported (if it is not yet) with ``openvino_telemetry`` blocked."""
    import sys

    if "openvino" not in sys.modules and "openvino_telemetry" not in sys.modules:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]  # import fails: the stub is used
    import openvino as ov

    return ov


TELEMETRY_MODULES = (
    "openvino.tools.ovc.convert_impl",
    "openvino.tools.ovc.telemetry_utils",
    "openvino.tools.ovc.utils",
)
"""The modules of OpenVINO's converter that send telemetry through their module-level ``tm``."""


@contextlib.contextmanager
def without_telemetry() -> Iterator[None]:
    """Inside this block, OpenVINO's converter uses ``openvino.tools.ovc.telemetry_stub``, the
    do-nothing stand-in it falls back to where ``openvino_telemetry`` is not installed."""
    import importlib

    openvino()
    from openvino.tools.ovc import telemetry_stub

    modules = [importlib.import_module(name) for name in TELEMETRY_MODULES]
    before = [getattr(module, "tm", None) for module in modules]
    for module in modules:
        setattr(module, "tm", telemetry_stub)  # noqa: B010
    try:
        yield
    finally:
        for module, tm in zip(modules, before, strict=True):
            if tm is not None:
                setattr(module, "tm", tm)  # noqa: B010


class OpenVinoBody:
    """An OpenVINO transformer body compiled for bf16 inference, loaded once, run per batch.

    Args:
        path: the IR from :func:`convert`.
        threads: inference threads (default: torch's thread count, i.e. the usable cores).
        max_tokens: the longest input the model takes (its position embeddings): padding to
            :data:`PAD_MULTIPLE` never goes past it.

    Attributes:
        parallel: how many batches to keep in flight (OpenVINO's optimal number of requests:
            one per stream); the caller runs them from that many threads.
        token_budget: padded tokens per batch.

    Safe to call from several threads (each gets its own inference request).
    """

    def __init__(self, path: Path, threads: int | None = None, max_tokens: int = 512):
        import torch

        ov = openvino()
        config = {
            "INFERENCE_PRECISION_HINT": "bf16",
            "PERFORMANCE_HINT": PERFORMANCE_MODE,
            "INFERENCE_NUM_THREADS": threads or torch.get_num_threads(),
            "CACHE_DIR": str(path.parent / "compiled"),
            "CACHE_MODE": "OPTIMIZE_SIZE",
        }
        self.compiled = ov.Core().compile_model(str(path), "CPU", config)
        self.input_names = [port.get_any_name() for port in self.compiled.inputs]
        self.parallel = max(1, int(self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")))
        self.token_budget = TOKEN_BUDGET
        self.max_tokens = max_tokens
        self._local = threading.local()

    def __call__(self, features: dict[str, Any]) -> Any:
        """Token embeddings, float32 torch tensor ``(batch, tokens, hidden)``, for ``features``
        (the tokenizer's int64 tensors ``(batch, tokens)``)."""
        import torch

        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        feeds = [np.ascontiguousarray(features[name].numpy(), dtype=np.int64) for name in self.input_names]
        tokens = feeds[0].shape[1]
        padded = padded_length(tokens, self.max_tokens) if len(feeds[0]) > 1 else tokens
        if padded > tokens:  # masked positions: any id will do, 0 is in every vocabulary
            feeds = [np.pad(feed, ((0, 0), (0, padded - tokens))) for feed in feeds]
        result = request.infer(feeds, share_outputs=False)
        return torch.from_numpy(np.ascontiguousarray(np.asarray(result[0], dtype=np.float32)[:, :tokens]))


def padded_length(tokens: int, limit: int) -> int:
    """``tokens`` rounded up to a multiple of :data:`PAD_MULTIPLE`, but not past ``limit``
    (nor below ``tokens``)."""
    return max(tokens, min(-(-tokens // PAD_MULTIPLE) * PAD_MULTIPLE, limit))
