"""int8 inference of a transformer body through ONNX Runtime.

:func:`export_int8` exports the Hugging Face model under a sentence-transformers pipeline
(``input_ids``, ``attention_mask`` [, ``token_type_ids``] → ``last_hidden_state``) with
``torch.onnx.export`` and quantizes its weights to int8 with ONNX Runtime's dynamic
quantization (activations are quantized per batch at run time, so no calibration data is
needed). :class:`OnnxBody` runs the result and returns token embeddings that the model's
own pooling (and dense) layers then turn into sentence vectors, in fp32.
onnxruntime and onnx are imported only here, and only when int8 is used.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from store.atomic import atomic_rename

OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
ALLOW_SPINNING = "0"
"""ONNX Runtime worker threads sleep when idle instead of spinning (spinning takes a core from
tokenization and from other processes). Measured here on single queries: p99 12 ms without
spinning against 27–30 ms with it; medians 8 ms against 6–23 ms."""


def export_int8(body: Any, input_names: Sequence[str], target: Path) -> Path:
    """Export ``body`` (a ``transformers`` model) to ONNX, quantize to int8, save at ``target``.

    The fp32 export is written to a temporary folder beside ``target`` and removed; the
    int8 file appears at ``target`` only when complete (an atomic rename). Returns ``target``.
    """
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target.parent.mkdir(parents=True, exist_ok=True)
    wrapper = positional_body(body, input_names).eval()
    inputs = trace_inputs()
    axes = {name: {0: "batch", 1: "tokens"} for name in [*input_names, "token_embeddings"]}
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp:
        fp32 = Path(tmp) / "model.fp32.onnx"
        int8 = Path(tmp) / "model.int8.onnx"
        with quiet(), torch.no_grad():
            torch.onnx.export(
                wrapper,
                tuple(inputs[n] for n in input_names),
                str(fp32),
                input_names=list(input_names),
                output_names=["token_embeddings"],
                dynamic_axes=axes,
                opset_version=OPSET,
                dynamo=False,
            )
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
        atomic_rename(int8, target)
    return target


def trace_inputs() -> dict[str, Any]:
    """Example inputs to trace a body with: int64 tensors ``(2, 16)``, the second row padded
    after 9 tokens (traced without padding, the graph may drop the attention mask)."""
    import torch

    ids = torch.full((2, 16), 5, dtype=torch.long)
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    inputs["attention_mask"][1, 9:] = 0
    return inputs


def positional_body(model: Any, names: Sequence[str]) -> Any:
    """``model`` as a module of positional inputs ``names`` → ``last_hidden_state`` (for export)."""
    import torch

    class Body(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors):
            return self.model(**dict(zip(names, tensors, strict=True)), return_dict=True).last_hidden_state

    return Body()


class OnnxBody:
    """An int8 ONNX transformer body, loaded once, run per batch.

    Args:
        path: the quantized model from :func:`export_int8`.
        threads: intra-op threads (default: torch's thread count, i.e. the usable cores).
    """

    def __init__(self, path: Path, threads: int | None = None):
        import onnxruntime as ort
        import torch

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", ALLOW_SPINNING)
        options.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]

    def __call__(self, features: dict[str, Any]) -> Any:
        """Token embeddings, float32 torch tensor ``(batch, tokens, hidden)``, for ``features``
        (the tokenizer's int64 tensors ``(batch, tokens)``)."""
        import torch

        feeds = {name: np.ascontiguousarray(features[name].numpy(), dtype=np.int64) for name in self.input_names}
        return torch.from_numpy(self.session.run(None, feeds)[0])


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence the exporter's tracer warnings and the quantizer's advice while they run."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)
