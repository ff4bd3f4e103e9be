"""Numeric precision of the transformer backend: fp32, bf16, ov-bf16, int8, and ``auto``'s choice.

``auto`` tries every precision this CPU and the installed libraries support on a fixed,
multilingual calibration set, keeps those whose vectors agree with fp32 (mean cosine at
least :data:`AGREEMENT_MEAN`, every text at least :data:`AGREEMENT_MIN`), and picks the
fastest, separately for document batches (throughput) and single queries (latency). It says
so first, on the ``babelindex.models`` logger, with an estimate of how long it will take, and
bounds the work: one timed pass per precision, a second only for those within
:data:`CLOSE_CALL` of the fastest so far, no query timings for a precision that disagrees. The
decision, with the figures it rests on, is cached as JSON under :func:`cache_dir`, keyed by
the model's files, the CPU's flags and the library versions, so it is measured once per
model and machine; entries unused for :data:`PRUNE_DAYS` days, and all but the
:data:`PRUNE_KEEP` most recently used, are removed when a new one is saved.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from indexer.choices import PRECISIONS
from store.atomic import atomic_write
from store.errors import InvalidInput

log = logging.getLogger("babelindex.models.precision")
"""``auto``'s measurements and the cache's pruning (a child of ``babelindex.models``: commands that
do not show loading still show these, see ``indexer.cli_common.precision_notices``)."""

AGREEMENT_MEAN = 0.999
"""``auto`` keeps a precision only if its vectors' mean cosine to fp32 is at least this..."""
AGREEMENT_MIN = 0.99
"""... and no single text's cosine to fp32 is below this."""
CACHE_VERSION = 2
"""Bump when the cached files' layout or meaning changes (2: OpenVINO runs several streams,
which changes which precision is fastest: decisions measured before are measured again)."""
CLOSE_CALL = 1.25
"""A precision whose first timed pass is within this factor of the fastest so far is timed again
(the faster of the two counts); a slower one is not: it cannot win."""
ESTIMATE_FACTOR = 3.0
"""``auto``'s announced duration: this many fp32 passes over the calibration documents per
precision measured (exports and compilation included), the pass estimated from one text."""
PASS_SECONDS = 3.0
"""A small model's calibration documents are timed repeated (at most :data:`MAX_REPEAT` times)
until fp32's pass should take about this long: 20 texts are only a few batches, too few to
fill OpenVINO's streams, and a small model's timing was then decided by per-batch overheads
(all-MiniLM-L6-v2: ov-bf16 timed 5% slower than bf16 on them, and was 1.5 times faster on
2,000 chunks). fp32's pass decides: DistilmBERT's size takes about 4 s on 2 cores, so it is
not repeated; all-MiniLM-L6-v2's about 1 s, timed three times over."""
MAX_REPEAT = 4
CLEAR_WIN = 2.0
"""A precision that agrees and embeds the documents this many times faster than fp32 is a clear
winner: the ``costly`` candidates of :func:`measure` (int8: a 20 s export for DistilmBERT's
size) are then not measured, and recorded as skipped."""
PRUNE_DAYS = 30
"""Cache entries (decisions, exports) not used for this many days are removed..."""
PRUNE_KEEP = 16
"""... and so are all but the most recently used this many."""
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
"""The CPU flags that change which precision is fastest (part of the cache key)."""

_SENTENCES = (
    "The committee will publish its final report on water quality next spring.",
    "Die Brücke wurde nach drei Jahren Bauzeit für den Verkehr freigegeben.",
    "Les abeilles transportent le pollen d'une fleur à l'autre pendant la récolte du nectar.",
    "El volcán entró en erupción tras varias semanas de pequeños temblores.",
    "Il treno per Milano parte dal binario sette alle otto e mezza.",
    "Поезд опоздал на сорок минут из-за снегопада в горах.",
    "火山の噴火は、地下のマグマの圧力が高まることで起こる。",
    "光合作用使植物能够把阳光转化为化学能。",
    "تعتمد الزراعة في المنطقة على مياه النهر منذ آلاف السنين.",
    "O museu reabriu as portas depois de uma longa reforma.",
    "De gemeente bouwt een nieuwe fietsbrug over het kanaal.",
    "Eksperci ostrzegają przed skutkami suszy dla rolnictwa.",
)
CALIBRATION_SENTENCES = (1, 2, 4, 8, 16)
"""Calibration documents join 1 to 16 of :data:`_SENTENCES` (about 15 to 330 tokens)."""
CALIBRATION_QUERIES = ("Wie bricht ein Vulkan aus?", "bees and pollen", "光合作用是什么？")


def calibration_texts() -> list[str]:
    """The fixed calibration documents: 20 texts mixing 12 languages, short to about 330 tokens."""
    return [
        " ".join(_SENTENCES[(start + i) % len(_SENTENCES)] for i in range(n))
        for n in CALIBRATION_SENTENCES
        for start in range(0, len(_SENTENCES), 3)
    ]


def requested(precision: str | None) -> str:
    """Validate a ``precision`` argument; None means ``$BABELINDEX_PRECISION``, else ``auto``."""
    value = precision or os.environ.get("BABELINDEX_PRECISION") or "auto"
    if value not in PRECISIONS:
        raise InvalidInput(f"unknown precision {value!r}; use one of {', '.join(PRECISIONS)}.")
    return value


def cpu_flags() -> list[str]:
    """The flags of :data:`CPU_FLAGS` this CPU has (from ``/proc/cpuinfo``; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    return [f for f in CPU_FLAGS if f in have]
    except OSError:
        pass
    return []


def bf16_supported() -> bool:
    """Whether bf16 matrix products run in hardware here (AVX512-BF16 or AMX, via oneDNN)."""
    import torch

    flags = cpu_flags()
    return torch.backends.mkldnn.is_available() and ("avx512_bf16" in flags or "amx_bf16" in flags)


def int8_supported() -> bool:
    """Whether ONNX Runtime (and onnx, for exporting) are installed."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("onnxruntime", "onnx"))


def openvino_supported() -> bool:
    """Whether OpenVINO is installed and this CPU runs bf16 in hardware (AVX512-BF16 or AMX)."""
    import importlib.util

    flags = cpu_flags()
    return importlib.util.find_spec("openvino") is not None and ("avx512_bf16" in flags or "amx_bf16" in flags)


def unsupported_reason(precision: str) -> str | None:
    """Why ``precision`` cannot run here, or None if it can."""
    if precision == "ov-bf16" and not openvino_supported():
        import importlib.util

        if importlib.util.find_spec("openvino") is None:
            return "ov-bf16 needs OpenVINO: pip install openvino (or use --precision auto, fp32 or bf16)."
        return "ov-bf16 needs a CPU with AVX512-BF16 or AMX (this one has neither); use --precision auto or fp32."
    if precision == "bf16" and not bf16_supported():
        return (
            "bf16 needs a CPU with AVX512-BF16 or AMX (this one has neither, so bf16 would be "
            "emulated and slower than fp32); use --precision auto or fp32."
        )
    if precision == "int8" and not int8_supported():
        return "int8 needs ONNX Runtime: pip install onnxruntime onnx (or use --precision auto or fp32)."
    return None


def cache_dir() -> Path:
    """Where exported models and precision decisions are kept.

    ``$BABELINDEX_CACHE``, else ``$XDG_CACHE_HOME/babelindex``, else ``~/.cache/babelindex``.
    """
    if os.environ.get("BABELINDEX_CACHE"):
        return Path(os.environ["BABELINDEX_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "babelindex"


def model_cache_key(files: Path, extra: dict[str, Any]) -> str:
    """A key for cached artefacts of the model in the folder ``files``.

    It covers the folder's path and every file's name, size and modification time (so
    changed weights get a new key), ``extra`` (pooling, token limit…), the CPU flags and the
    versions of torch, onnxruntime, openvino and this cache's layout. 20 hex characters.
    """
    import torch

    digest = hashlib.sha256()
    entries = []
    if files.is_dir():
        for path in sorted(files.rglob("*")):
            if path.is_file():
                stat = path.stat()
                entries.append([str(path.relative_to(files)), stat.st_size, stat.st_mtime_ns])
    payload = {
        "folder": str(files.resolve()),
        "files": entries,
        "extra": extra,
        "cpu": cpu_flags(),
        "torch": torch.__version__,
        "onnxruntime": _version("onnxruntime"),
        "openvino": _version("openvino"),
        "layout": CACHE_VERSION,
    }
    digest.update(json.dumps(payload, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:20]


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


@dataclass(frozen=True)
class Agreement:
    """Per-text cosine between two sets of vectors: the mean and the minimum over texts."""

    mean: float
    min: float

    @property
    def passed(self) -> bool:
        return self.mean >= AGREEMENT_MEAN and self.min >= AGREEMENT_MIN


def agreement(reference: np.ndarray, candidate: np.ndarray) -> Agreement:
    """Cosine agreement of ``candidate`` with ``reference``, both float ``(n, dimension)``."""
    a = np.asarray(reference, dtype=np.float64)
    b = np.asarray(candidate, dtype=np.float64)
    cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12)
    return Agreement(mean=float(cos.mean()), min=float(cos.min()))


@dataclass(frozen=True)
class Trial:
    """One precision measured on the calibration set.

    Attributes:
        precision: ``fp32``, ``bf16``, ``ov-bf16`` or ``int8``.
        docs_seconds: wall-clock seconds to embed the calibration documents (repeated for a
            small model: see :func:`measure`).
        query_ms: median wall-clock milliseconds to embed one short query (infinite, not
            measured, for a precision that disagrees with fp32).
        cos_mean / cos_min: agreement with fp32 on the documents (1.0 for fp32 itself).
        error: why the precision could not run (then the timings are infinite).
    """

    precision: str
    docs_seconds: float
    query_ms: float
    cos_mean: float = 1.0
    cos_min: float = 1.0
    error: str | None = None

    @property
    def usable(self) -> bool:
        return self.error is None and Agreement(self.cos_mean, self.cos_min).passed


Runner = Callable[[Sequence[str]], np.ndarray]
"""Embeds texts with one precision: float32 ``(len(texts), dimension)``."""


def measure(
    make_runner: Callable[[str], Runner],
    candidates: Sequence[str],
    model: str = "the model",
    costly: Sequence[str] = ("int8",),
) -> list[Trial]:
    """Time fp32 and each of ``candidates`` on the calibration set and check their agreement.

    The other precisions time the set repeated (up to :data:`MAX_REPEAT` times) while one fp32
    pass over it takes less than :data:`PASS_SECONDS`; fp32's own time is that pass's, scaled.

    ``make_runner(precision)`` returns a function embedding a list of texts (documents go
    through in one call, so its own batching counts); it may raise to say the precision
    cannot run here, which is recorded in the trial. Candidates in ``costly`` are skipped
    once another is a :data:`CLEAR_WIN`. Logs what it does on ``babelindex.models.precision``: first
    the precisions and about how long (``model`` names the model in that line), then each result.
    """
    texts = calibration_texts()
    order = ["fp32", *[c for c in candidates if c != "fp32"]]
    began = time.perf_counter()
    run = make_runner("fp32")
    run(texts[:2])  # warm up: first-call allocations
    started = time.perf_counter()
    run(texts[-1:])  # the longest text: a first idea of the whole pass, for the estimate
    one = time.perf_counter() - started
    pass_estimate = one * sum(len(d) for d in texts) / len(texts[-1])
    log.info(
        "measuring precisions for %s on this CPU: %s (about %.0f s, once per machine and model; the choice is cached)",
        model,
        ", ".join(order),
        pass_estimate * (1 + ESTIMATE_FACTOR * (len(order) - 1)) * _repeats(pass_estimate),
    )
    started = time.perf_counter()
    reference = run(texts)
    fp32_seconds = time.perf_counter() - started
    repeat = _repeats(fp32_seconds)
    docs, reference = texts * repeat, np.tile(reference, (repeat, 1))
    fp32_seconds *= repeat  # one pass, scaled: fp32 runs its batches one by one
    trials = [Trial("fp32", round(fp32_seconds, 4), round(_query_ms(run), 3))]
    _report(trials[0], len(docs), time.perf_counter() - began)
    best = fp32_seconds
    for precision in order[1:]:
        began = time.perf_counter()
        if precision in costly and best * CLEAR_WIN <= fp32_seconds:
            winner = min((t for t in trials if t.usable), key=lambda t: t.docs_seconds)
            reason = f"skipped: {winner.precision} is {fp32_seconds / best:.1f}x fp32 already"
            trials.append(Trial(precision, float("inf"), float("inf"), 0.0, 0.0, error=reason))
            log.info("  %s: %s (--precision %s runs it)", precision, reason, precision)
            continue
        try:
            run = make_runner(precision)
            run(docs[:2])  # warm up: first-call allocations, weight packing, compilation
            started = time.perf_counter()
            vectors = run(docs)
            docs_seconds = time.perf_counter() - started
            agree = agreement(reference, vectors)
            query_ms = float("inf")
            if agree.passed:
                if docs_seconds <= best * CLOSE_CALL:  # a contender: the faster of two runs counts
                    started = time.perf_counter()
                    run(docs)
                    docs_seconds = min(docs_seconds, time.perf_counter() - started)
                query_ms = _query_ms(run)
        except Exception as exc:  # a backend that cannot run here is a finding, not a failure
            trials.append(Trial(precision, float("inf"), float("inf"), 0.0, 0.0, error=f"{type(exc).__name__}: {exc}"))
            log.info("  %s: could not run (%s: %s)", precision, type(exc).__name__, exc)
            continue
        if agree.passed:
            best = min(best, docs_seconds)
        trials.append(
            Trial(precision, round(docs_seconds, 4), round(query_ms, 3), round(agree.mean, 6), round(agree.min, 6))
        )
        _report(trials[-1], len(docs), time.perf_counter() - began)
    return trials


def _repeats(fp32_pass: float) -> int:
    """How many times to time the calibration set, given one fp32 pass's seconds (see :data:`PASS_SECONDS`)."""
    return max(1, min(MAX_REPEAT, round(PASS_SECONDS / max(fp32_pass, 1e-9))))


def _query_ms(run: Runner) -> float:
    """Median milliseconds to embed one of :data:`CALIBRATION_QUERIES`, over three rounds."""
    latencies = []
    for _ in range(3):
        for query in CALIBRATION_QUERIES:
            started = time.perf_counter()
            run([query])
            latencies.append((time.perf_counter() - started) * 1000)
    return float(np.median(latencies))


def _report(trial: Trial, texts: int, seconds: float) -> None:
    verdict = "" if trial.usable else f" (below {AGREEMENT_MEAN} / {AGREEMENT_MIN}: not used)"
    log.info(
        "  %s: %.2f s for %d texts, agreement with fp32 %.4f / %.4f%s (measured in %.1f s)",
        trial.precision,
        trial.docs_seconds,
        texts,
        trial.cos_mean,
        trial.cos_min,
        verdict,
        seconds,
    )


def choose(trials: Sequence[Trial]) -> dict[str, str]:
    """The fastest usable precision for ``documents`` (throughput) and ``queries`` (latency)."""
    usable = [t for t in trials if t.usable]
    return {
        "documents": min(usable, key=lambda t: t.docs_seconds).precision,
        "queries": min(usable, key=lambda t: t.query_ms).precision,
    }


def cached_decision(key: str) -> dict[str, Any] | None:
    """The decision recorded for ``key``, or None if there is none (or it is unreadable)."""
    path = cache_dir() / "models" / key / "precision.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    roles = record.get("choice", {})
    if all(roles.get(role) in PRECISIONS[1:] for role in ("documents", "queries")):
        with contextlib.suppress(OSError):  # its time of last use, for pruning (a read-only cache is fine)
            os.utime(path)
        return record
    return None


def save_decision(key: str, trials: Sequence[Trial], about: dict[str, Any]) -> dict[str, Any]:
    """Record the choice made from ``trials`` for ``key`` (atomically); returns the record."""
    from dataclasses import asdict

    rows = [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in asdict(t).items()} for t in trials
    ]
    record = {
        "choice": choose(trials),
        "trials": rows,
        "cpu": cpu_flags(),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        **about,
    }
    folder = cache_dir() / "models" / key
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write(folder / "precision.json", json.dumps(record, indent=1, default=str).encode())
    prune(keep=key)
    return record


def prune(keep: str | None = None, *, now: float | None = None) -> list[str]:
    """Remove the cache entries under ``cache_dir()/models`` last used more than
    :data:`PRUNE_DAYS` days ago, and all but the :data:`PRUNE_KEEP` most recently used
    (``keep``, a key, stays whatever its age). Last use: the later of the times of the entry's
    folder and its ``precision.json`` (loading the decision or an export renews them). Returns the
    keys removed. Errors (another process removing the same entry) are ignored."""
    root = cache_dir() / "models"
    now = time.time() if now is None else now
    entries = []
    with contextlib.suppress(OSError):
        for folder in root.iterdir():
            if folder.is_dir() and not folder.name.startswith("."):
                times = [folder.stat().st_mtime]
                with contextlib.suppress(OSError):
                    times.append((folder / "precision.json").stat().st_mtime)
                entries.append((max(times), folder))
    entries.sort(reverse=True)
    removed = []
    for rank, (used, folder) in enumerate(entries):
        if folder.name != keep and (rank >= PRUNE_KEEP or now - used > PRUNE_DAYS * 86400):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    if removed:
        log.info(
            "removed %d precision cache entries unused for %d days or beyond the newest %d",
            len(removed),
            PRUNE_DAYS,
            PRUNE_KEEP,
        )
    return removed
