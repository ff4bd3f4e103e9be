"""Language names and codes as users type them, resolved to the codes an index stores.

An index stores ISO 639-1 codes (``de``, ``zh``: see :mod:`indexer.language`), or, for
imported vectors, whatever code a row gave (``deu``, ``pt-BR``). A ``lang`` filter may name a
language by its ISO 639-1 code (``de``), its ISO 639-2/B, 639-2/T or 639-3 code (``ger``,
``deu``), its English name (``German``, ``Swiss German``) or its name in itself (``Deutsch``),
in any case. A regional or script tag keeps its subtags (``pt-br`` → ``pt-BR``).

The ISO tables come from ``iso639-lang`` (a pure-Python package of about 2 MB with no
dependencies, kept current with the ISO 639-3 registrar's releases: every ISO 639 code and
the registrar's names); :data:`NAMES` adds the endonyms and the everyday English names
those tables lack. A language without a 639-1 code resolves to its macrolanguage's when it
has one (Mandarin ``cmn`` → ``zh``, Egyptian Arabic ``arz`` → ``ar``), as the language
detector folds them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from iso639 import Lang

NAMES = {
    # Names in the language itself
    "afrikaans": "af", "shqip": "sq", "العربية": "ar", "հայերեն": "hy", "azərbaycan": "az",
    "euskara": "eu", "беларуская": "be", "বাংলা": "bn", "bangla": "bn", "български": "bg",
    "català": "ca", "中文": "zh", "汉语": "zh", "漢語": "zh", "普通话": "zh", "hrvatski": "hr",
    "čeština": "cs", "česky": "cs", "dansk": "da", "nederlands": "nl", "eesti": "et",
    "suomi": "fi", "français": "fr", "francais": "fr", "galego": "gl", "ქართული": "ka",
    "deutsch": "de", "ελληνικά": "el", "ગુજરાતી": "gu", "עברית": "he", "हिन्दी": "hi",
    "magyar": "hu", "íslenska": "is", "bahasa indonesia": "id", "gaeilge": "ga",
    "italiano": "it", "日本語": "ja", "ಕನ್ನಡ": "kn", "қазақ": "kk", "ខ្មែរ": "km", "한국어": "ko",
    "кыргызча": "ky", "ລາວ": "lo", "latina": "la", "latviešu": "lv", "lietuvių": "lt",
    "македонски": "mk", "bahasa melayu": "ms", "മലയാളം": "ml", "मराठी": "mr", "монгол": "mn",
    "မြန်မာ": "my", "नेपाली": "ne", "norsk": "no", "فارسی": "fa", "polski": "pl",
    "português": "pt", "portugues": "pt", "ਪੰਜਾਬੀ": "pa", "română": "ro", "русский": "ru",
    "српски": "sr", "srpski": "sr", "සිංහල": "si", "slovenčina": "sk", "slovenščina": "sl",
    "español": "es", "espanol": "es", "castellano": "es", "kiswahili": "sw", "svenska": "sv",
    "தமிழ்": "ta", "తెలుగు": "te", "ไทย": "th", "türkçe": "tr", "українська": "uk",
    "اردو": "ur", "oʻzbek": "uz", "o'zbek": "uz", "tiếng việt": "vi", "cymraeg": "cy",
    # Everyday English names the ISO reference names lack
    "greek": "el", "farsi": "fa", "slovene": "sl", "occitan": "oc", "sotho": "st",
    "mandarin": "zh", "cantonese": "zh", "flemish": "nl", "moldovan": "ro",
}  # fmt: skip
"""Lower-case names → ISO 639-1 codes, beyond the names of the ISO tables."""

PREFERRED_NAMES = {"el": "Greek", "ms": "Malay", "ne": "Nepali", "sw": "Swahili", "oc": "Occitan", "st": "Sotho"}
"""Names to show where the ISO reference name is long (``Modern Greek (1453-)``)."""

_TAG = re.compile(r"([A-Za-z]{2,3})([-_][A-Za-z0-9]{2,8}){1,2}\Z")
_QUALIFIER = re.compile(r"\s*\([^)]*\)\s*\Z")


@dataclass(frozen=True)
class Language:
    """A language as a filter names it.

    Attributes:
        code: the code indexes store for it: ISO 639-1 (``de``) when it has one, else ISO 639-3
            (``gsw``); a tag with subtags as written canonically (``pt-BR``).
        name: its English name (``German``).
        codes: every code an index may store for it (``("de", "deu", "ger")``), ``code`` first.
    """

    code: str
    name: str
    codes: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.name} ({self.code})"


@functools.lru_cache(maxsize=4096)
def resolve(text: str) -> Language | None:
    """The language ``text`` names (a code or a name, any case, surrounding spaces ignored),
    or ``None`` if it names none."""
    text = " ".join(text.split())
    tag = _TAG.match(text)
    if tag:
        base = resolve(tag[1])
        if base is None:
            return None
        subtags = [_subtag(s) for s in re.split(r"[-_]", text)[1:]]
        code = "-".join([base.code, *subtags])
        return Language(code, base.name, tuple(dict.fromkeys([code, text])))
    lang = _lookup(text)
    if lang is None:
        return None
    if not lang.pt1:
        macro = lang.macro()
        if macro is not None and macro.pt1:
            lang = macro
    codes = tuple(dict.fromkeys(c for c in (lang.pt1, lang.pt3, lang.pt2b, lang.pt2t) if c))
    return Language(codes[0], PREFERRED_NAMES.get(codes[0]) or _QUALIFIER.sub("", lang.name), codes)


def _subtag(text: str) -> str:
    """BCP 47 casing: regions upper-case (``BR``), scripts title-case (``Hant``)."""
    if len(text) == 2 or text.isdigit():
        return text.upper()
    return text.title() if len(text) == 4 else text.lower()


def _lookup(text: str) -> Lang | None:
    from iso639 import Lang
    from iso639.exceptions import InvalidLanguageValue

    folded = text.casefold()
    if folded.isascii() and folded.isalpha() and len(folded) in (2, 3):
        try:
            return Lang(folded)
        except InvalidLanguageValue:
            pass
    code = NAMES.get(folded)
    if code is not None:
        return Lang(code)
    return _names().get(folded)


@functools.cache
def _names() -> dict[str, Lang]:
    """Every ISO name and other name, lower-case, and without a trailing qualifier
    (``Malay (macrolanguage)`` → ``malay``), of the languages with a 639-1 code first."""
    from iso639 import iter_langs

    langs = sorted(iter_langs(), key=lambda lang: not lang.pt1)
    found: dict[str, Lang] = {}
    for lang in langs:
        for name in (lang.name, *lang.other_names()):
            found.setdefault(name.casefold(), lang)
    for lang in langs:
        for name in (lang.name, *lang.other_names()):
            found.setdefault(_QUALIFIER.sub("", name).casefold(), lang)
    return found
