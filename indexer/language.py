"""Language identification with py3langid (langid.py's model, shipped in the package, offline).

Codes are ISO 639-1 (``de``, ``zh``). Texts too short or too ambiguous to tell give ``None``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

MIN_CHARS = 12
MIN_CONFIDENCE = 0.5
SAMPLE_CHARS = 1500
"""Characters read per text: plenty to tell a language, and detection time stays flat."""

_identifier = None


def detect(text: str) -> str | None:
    """The language of ``text`` (ISO 639-1), or ``None`` if it is too short or unclear."""
    global _identifier
    sample = text[:SAMPLE_CHARS]
    if sum(ch.isalpha() for ch in sample) < MIN_CHARS and not _has_cjk(sample):
        return None
    if _identifier is None:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier

        _identifier = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    lang, confidence = _identifier.classify(sample)
    return lang if confidence >= MIN_CONFIDENCE else None


def majority(langs: Sequence[str | None], weights: Sequence[int]) -> str | None:
    """The language covering most weight (e.g. characters) among known ones."""
    tally: Counter[str] = Counter()
    for lang, weight in zip(langs, weights, strict=True):
        if lang:
            tally[lang] += weight
    return tally.most_common(1)[0][0] if tally else None


def _has_cjk(text: str) -> bool:
    return any("\u3040" <= ch <= "\u9fff" or "\uac00" <= ch <= "\ud7af" for ch in text)
