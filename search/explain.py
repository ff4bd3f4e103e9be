"""Why a search filter matches nothing, in words: the rule that no filter fails silently.

:meth:`Explainer.check` runs after the filter's chunks are known. A filter that names what the
index does not hold raises :class:`~store.errors.InvalidFilter` saying what it does hold:

- a language no passage is in (``the index holds no German (de) passages; it holds: en (120),
  fr (40)``), and a ``lang`` text that is neither a language nor a code the index stores
  (even when the other languages of the list find passages);
- a ``source`` no document matches, with the stored form of an on-disk path
  (``corpus/en/a.txt`` → ``en/a.txt``) or the closest stored sources;
- a metadata key no document has (compared with anything but ``None``), with the keys
  documents have and the closest one.

Each part of the filter is checked alone; when each matches something but not all together,
the answer is simply empty. The checks read the store only when the filter matches nothing (or
a ``lang`` text names no language), within the search's time budget; what the index holds is
cached per published version.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from search.filters import KEY
from search.languages import resolve
from store import holdings
from store.errors import InvalidFilter, InvalidInput
from store.filtering import GLOB_CHARS, Filter
from store.index_dir import IndexDir

SHOWN = 12
"""Languages, keys or sources named in one message (then "and N more")."""


class Explainer:
    """Checks filters against what one index holds; shared by a view's threads."""

    def __init__(self, store: IndexDir):
        self._store = store
        self._meta = store.meta
        self._languages: tuple[int, dict[str, int]] | None = None  # (published version, value)
        self._keys: tuple[int, holdings.KeyTally] | None = None

    def check(self, filt: Filter, lang: str | Sequence[str] | None, empty: bool, budget_seconds: float) -> None:
        """Raise :class:`InvalidFilter` if ``filt`` (built from ``lang`` and the other
        arguments) names what the index does not hold; ``empty``: it allows no chunk.

        Where the checks would take longer than ``budget_seconds``, nothing is raised (the
        answer stays empty)."""
        texts = [] if lang is None else [lang] if isinstance(lang, str) else list(lang)
        unknown = [t for t in texts if resolve(t) is None]
        if not empty and not unknown:
            return
        try:
            with self._meta.budget(budget_seconds, "explaining this filter"):
                problems = self._problems(filt, texts, unknown, empty)
        except InvalidInput:  # over the budget: no explanation
            return
        if problems:
            raise InvalidFilter(" ".join(problems))

    def _problems(self, filt: Filter, texts: list[str], unknown: list[str], empty: bool) -> list[str]:
        if empty and not holdings.any_chunk(self._meta, Filter()):
            return []  # an empty index: every answer is empty
        problems: list[str] = []
        unknown = [t for t in unknown if t.strip() not in self.languages()]
        if unknown:
            problems.append(self._unknown_languages(unknown))
        if not empty:
            return problems
        if filt.langs is not None and not holdings.any_chunk(self._meta, Filter(langs=filt.langs)):
            named = [lang for t in texts if (lang := resolve(t)) is not None]
            if named:
                problems.append(
                    f"The index holds no {' or '.join(map(str, named))} passages; "
                    f"it holds: {_listing(self.languages())}."
                )
        if filt.source is not None and not holdings.any_document(self._meta, Filter(source=filt.source)):
            problems.append(self._no_source(filt.source))
        keys = dict.fromkeys(k for k, op, v in filt.where if not (op == "=" and v is None))
        missing = [k for k in keys if not holdings.has_key(self._meta, k)]
        if missing:
            problems.append(self._unknown_keys(missing))
        return problems

    # -- what the index holds, per published version ---------------------------------------
    def languages(self) -> dict[str, int]:
        """Passages per language of the live index (cached per published version)."""
        version = self._published()
        if self._languages is None or self._languages[0] != version:
            self._languages = (version, holdings.chunk_languages(self._meta))
        return self._languages[1]

    def keys(self) -> holdings.KeyTally:
        """The metadata keys of up to ``holdings.KEY_SAMPLE`` live documents (cached per version)."""
        version = self._published()
        if self._keys is None or self._keys[0] != version:
            self._keys = (version, holdings.metadata_keys(self._meta))
        return self._keys[1]

    def _published(self) -> int:
        info = self._store.faiss_info()
        return -1 if info is None else info.version

    # -- messages ---------------------------------------------------------------------------
    def _unknown_languages(self, texts: list[str]) -> str:
        names = " or ".join(repr(t) for t in texts)
        return (
            f"{names} names no language: give an ISO 639 code ('de', 'deu'), or a language's English name "
            f"or its own ('German', 'Deutsch'). The index holds: {_listing(self.languages())}."
        )

    def _unknown_keys(self, missing: list[str]) -> str:
        tally = self.keys()
        known = {k: n for k, n in tally.counts.items() if KEY.match(k)}
        names = " or ".join(repr(k) for k in missing)
        if not known:
            return (
                f"No document has the metadata key {names}: this index's documents have no metadata "
                "(it comes from JSONL and CSV fields, and from the metadata of upserted documents)."
            )
        hints = [m for k in missing for m in difflib.get_close_matches(k, list(known), n=1, cutoff=0.6)]
        hint = f" Did you mean {' or '.join(map(repr, dict.fromkeys(hints)))}?" if hints else ""
        of = "" if tally.complete else f" (of the newest {tally.documents:,} documents)"
        return f"No document has the metadata key {names}.{hint} The keys documents have{of}: {_listing(known)}."

    def _no_source(self, source: str) -> str:
        kind = "glob" if GLOB_CHARS.search(source) and not source.endswith("/") else "prefix"
        doc = holdings.document_source(self._meta, source)
        if doc is not None:
            return (
                f"No document's source matches the {kind} {source!r}: that is a document id; its source is "
                f"{doc!r} (search by id with Index.get_document)."
            )
        stored = self._stored_form(source)
        rule = "sources are paths relative to the corpus root, as `indexer search` shows them"
        if stored is not None:
            return f"No document's source matches the {kind} {source!r}: {rule}. Did you mean {stored!r}?"
        literal = GLOB_CHARS.split(source, maxsplit=1)[0]
        near = holdings.sources_near(self._meta, list(dict.fromkeys([literal, literal.lower()])))
        close = difflib.get_close_matches(literal, near, n=3, cutoff=0.0)
        shown = ", ".join(map(repr, close))
        return (
            f"No document's source matches the {kind} {source!r} ({rule}, case-sensitive); "
            f"the closest stored sources: {shown}."
        )

    def _stored_form(self, source: str) -> str | None:
        """The longest tail of an on-disk path (``/data/corpus/en/a.txt``, ``corpus/en/``,
        ``.\\corpus\\en\\*.txt``) that matches a stored source, or ``None``."""
        parts = source.replace("\\", "/").split("/")
        tails = ["/".join(parts[i:]) for i in range(len(parts))]
        for tail in dict.fromkeys(t for t in tails if t and t not in ("/", source)):
            if tail.startswith("./"):
                continue
            if holdings.any_document(self._meta, Filter(source=tail)):
                return tail
        return None


def _listing(counts: Mapping[str, Any]) -> str:
    """``en (120), fr (40), … and 3 more``: the first :data:`SHOWN` entries of ``counts``."""
    if not counts:
        return "nothing"
    items = [f"{k} ({n:,})" for k, n in list(counts.items())[:SHOWN]]
    more = len(counts) - SHOWN
    return ", ".join(items) + (f" and {more} more" if more > 0 else "")
