"""Text and file names made safe to store, with a count of what was changed.

SQLite (and the model's tokenizer) take UTF-8, so two kinds of characters that Python
strings may hold cannot pass:

* **lone surrogates** (U+D800–U+DFFF), e.g. from a JSON ``"\\ud800"`` escape: each is
  replaced by U+FFFD, the replacement character;
* **NUL** (U+0000): removed (full-text search stops reading a text at a NUL).

:func:`clean_text` returns the text and a note saying how many were changed (None when
nothing was), which a build reports as a warning of the document.

File names are bytes on POSIX; Python shows the bytes that are not UTF-8 as surrogate
escapes (U+DC80–U+DCFF). :func:`path_text` turns a name into a string that is stored,
shown and searched as is: a name that is valid UTF-8 and holds no backslash stays
unchanged; otherwise each backslash is doubled (``\\\\``) and each undecodable byte is
written ``\\xNN`` (two lowercase hex digits), so ``bad-<0xff>.txt`` becomes ``bad-\\xff.txt``.
The rule is lossless (:func:`path_bytes` gives the bytes back) and stable: the same file
gets the same document id on every build.
"""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")
_ESCAPE = re.compile(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})")


def clean_text(text: str) -> tuple[str, str | None]:
    """``text`` without NULs and with U+FFFD for each lone surrogate, and a note of the
    changes (``"3 NUL characters removed"``), or None if there were none."""
    if text.isascii() and "\x00" not in text:
        return text, None
    if _BAD_TEXT.search(text) is None:
        return text, None
    nuls = text.count("\x00")
    text = text.replace("\x00", "") if nuls else text
    text, surrogates = _SURROGATE.subn("\ufffd", text)
    parts = []
    if nuls:
        parts.append(f"{nuls} NUL character{'s' if nuls != 1 else ''} removed")
    if surrogates:
        parts.append(f"{surrogates} lone surrogate{'s' if surrogates != 1 else ''} replaced by U+FFFD")
    return text, ", ".join(parts)


def clean_value(value: object) -> object:
    """A JSON-like value (str, list, dict, numbers) with every string cleaned as by
    :func:`clean_text` (dictionary keys too); other values unchanged."""
    if isinstance(value, str):
        return clean_text(value)[0]
    if isinstance(value, list):
        return [clean_value(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(str(k))[0]: clean_value(v) for k, v in value.items()}
    return value


def path_text(name: str) -> str:
    """A file name (as :func:`os.fsdecode` gives it) as a storable, readable string; see the
    module docstring for the rule."""
    if "\\" not in name and _SURROGATE.search(name) is None:
        return name
    return _SURROGATE.sub(_escape_surrogate, name.replace("\\", "\\\\"))


def path_bytes(text: str) -> bytes:
    """The file name bytes that :func:`path_text` wrote as ``text`` (its inverse)."""
    if "\\" not in text:
        return text.encode("utf-8", "surrogateescape")
    out = bytearray()
    pos = 0
    for m in _ESCAPE.finditer(text):
        out += text[pos : m.start()].encode("utf-8")
        code = m[1]
        if code == "\\":
            out += b"\\"
        elif code[0] == "x":
            out.append(int(code[1:], 16))
        else:
            out += chr(int(code[1:], 16)).encode("utf-8", "surrogatepass")
        pos = m.end()
    out += text[pos:].encode("utf-8")
    return bytes(out)


def _escape_surrogate(m: re.Match[str]) -> str:
    code = ord(m[0])
    if 0xDC80 <= code <= 0xDCFF:  # an undecodable byte, as surrogateescape gives it
        return f"\\x{code - 0xDC00:02x}"
    return f"\\u{code:04x}"
