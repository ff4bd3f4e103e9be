"""Bytes to text: BOMs, UTF-8, then detection (charset-normalizer); binary files refused.

Returns text or raises :class:`NotText` with a reason a person can act on.
"""

from __future__ import annotations

import codecs

import charset_normalizer

_MAGIC = [
    (b"\x89PNG\r\n\x1a\n", "PNG image"),
    (b"\xff\xd8\xff", "JPEG image"),
    (b"GIF8", "GIF image"),
    (b"PK\x03\x04", "ZIP archive (docx, xlsx, jar, …)"),
    (b"\x7fELF", "ELF executable"),
    (b"%PDF-", "PDF document with a text extension"),
    (b"\x1f\x8b", "gzip archive"),
    (b"BZh", "bzip2 archive"),
    (b"\xfd7zXZ\x00", "xz archive"),
    (b"7z\xbc\xaf\x27\x1c", "7-Zip archive"),
    (b"SQLite format 3\x00", "SQLite database"),
    (b"MZ", "Windows executable"),
    (b"\x00\x00\x01\x00", "icon"),
    (b"RIFF", "RIFF media (wav, avi, webp)"),
    (b"OggS", "Ogg media"),
    (b"ID3", "MP3 audio"),
]
_BOMS = [
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
]


class NotText(Exception):
    """The bytes are not text; ``str(exc)`` says why."""


def decode(data: bytes) -> str:
    """Decode file content to ``str``; raise :class:`NotText` for binary or undecodable data."""
    return decode_with_note(data)[0]


def decode_with_note(data: bytes) -> tuple[str, str | None]:
    """:func:`decode`, and a note of what was changed or guessed (bytes that are not UTF-8
    replaced by U+FFFD, a false UTF-16 byte-order mark), or None."""
    if not data:
        raise NotText("empty file")
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            if encoding.startswith("utf-16") and not _really_utf16(data[len(bom) :], encoding):
                text, note = _decode_without_bom(data[len(bom) :])
                false_bom = f"starts with bytes {bom.hex(' ').upper()}, but is not UTF-16: they were dropped"
                return text, false_bom + (f"; {note}" if note else "")
            try:
                return data[len(bom) :].decode(encoding), None
            except UnicodeDecodeError as exc:
                raise NotText(f"starts with a {encoding} byte-order mark but is not valid {encoding}") from exc
    return _decode_without_bom(data)


def _really_utf16(rest: bytes, encoding: str) -> bool:
    """Whether bytes after a UTF-16 byte-order mark are UTF-16 text: not valid UTF-8 without
    NULs (which UTF-16 of any script almost never is), decodable, and with whitespace, Latin
    or CJK punctuation or kana among its characters (a Latin-1 or UTF-8 text read as UTF-16
    gives CJK-looking characters only)."""
    if rest and b"\x00" not in rest:
        try:
            rest.decode("utf-8")
            return False
        except UnicodeDecodeError:
            pass
    try:
        sample = rest[:8192].decode(encoding, errors="strict") if len(rest) <= 8192 else rest.decode(encoding)[:4096]
    except UnicodeDecodeError:
        return False
    if len(sample) < 8:
        return True
    common = sum(1 for ch in sample if ord(ch) < 0x250 or 0x3000 <= ord(ch) <= 0x30FF or 0xFF00 <= ord(ch) <= 0xFFEF)
    return common >= 0.05 * len(sample)


def _decode_without_bom(data: bytes) -> tuple[str, str | None]:
    if not data:
        return "", None
    if b"\x00" not in data[:8192]:  # NULs are valid UTF-8, but mean UTF-16 or binary
        try:
            return data.decode("utf-8"), None
        except UnicodeDecodeError:
            pass
    head = data[:16]
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            raise NotText(f"binary file ({kind})")
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        return utf16, None
    damaged = _damaged_utf8(data)
    if damaged is not None:
        return damaged
    if b"\x00" in data[:8192]:
        raise NotText("binary file (contains NUL bytes)")
    western = _western_european(data)
    if western is not None:
        return western, None
    best = charset_normalizer.from_bytes(data[:1_000_000]).best()
    if best is None:
        raise NotText("binary or undecodable file (no text encoding fits)")
    try:
        return data.decode(best.encoding), None
    except (UnicodeDecodeError, LookupError) as exc:
        raise NotText(f"undecodable text (detected {best.encoding}, but it does not fit)") from exc


WESTERN_LANGUAGES = frozenset(
    {"en", "de", "fr", "es", "pt", "it", "nl", "ca", "sv", "da", "no", "nb", "fi", "gl", "eu", "lb", "af", "oc"}
)
_WESTERN_MARKS = set("«»‘’‚“”„–—…€£¥§°·¡¿©®™ªº×÷")


def _western_european(data: bytes) -> str | None:
    """Windows-1252 (a superset of Latin-1) text in a Western European language, or None.

    Single-byte code pages cannot be told apart from the bytes alone (``très`` in
    Windows-1252 is ``trčs`` in Windows-1250), and detectors often guess a Central
    European one. The most common legacy encoding wins when every non-ASCII character it
    gives is a Latin letter or common punctuation and the language it gives is Western.
    """
    import unicodedata

    from indexer.language import detect

    try:
        text = data.decode("cp1252")
    except UnicodeDecodeError:
        return None
    sample = text[:20000]
    for ch in set(sample):
        if ord(ch) > 127 and ch not in _WESTERN_MARKS and not (ch.isalpha() and "LATIN" in unicodedata.name(ch, "")):
            return None
    return text if detect(sample) in WESTERN_LANGUAGES else None


def _damaged_utf8(data: bytes) -> tuple[str, str] | None:
    """UTF-8 with some invalid bytes (a truncated or mis-concatenated file, or parts in
    Latin-1 or CP1251 pasted into UTF-8): the text, with U+FFFD for each bad sequence, and a
    note of how many bytes were replaced; when the bytes of valid multi-byte characters
    (which text in a single-byte encoding almost never forms by chance) outnumber the
    invalid bytes and there are at least 3 such characters; else None (more likely another
    encoding)."""
    if b"\x00" in data[:8192]:
        return None
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd") - data.count("\ufffd".encode())
    if bad <= 0:
        return None
    ascii_bytes = len(text.encode("ascii", "ignore"))
    valid_multibyte_chars = len(text) - ascii_bytes - text.count("\ufffd")
    valid_bytes = len(text.encode("utf-8")) - 3 * bad  # the replacements' own bytes are not in data
    invalid_bytes = len(data) - valid_bytes
    valid_multibyte_bytes = valid_bytes - ascii_bytes
    if valid_multibyte_chars < 3 or valid_multibyte_bytes <= invalid_bytes:
        return None
    return text, f"{invalid_bytes} byte{'s' if invalid_bytes != 1 else ''} that are not UTF-8 replaced by U+FFFD"


def _utf16_without_bom(data: bytes) -> str | None:
    """UTF-16 text without a BOM: NULs in every other byte of a mostly-ASCII sample."""
    sample = data[:4096]
    if len(sample) < 4:
        return None
    even, odd = sample[0::2], sample[1::2]
    for zeros, encoding in ((odd, "utf-16-le"), (even, "utf-16-be")):
        if zeros.count(0) >= 0.4 * len(zeros):
            try:
                text = data.decode(encoding)
            except UnicodeDecodeError:
                return None
            if sum(ch.isprintable() or ch.isspace() for ch in text[:2000]) >= 0.95 * min(len(text), 2000):
                return text
    return None
