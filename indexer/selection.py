"""Which files of a corpus folder are part of it: the rules ``indexer build`` and ``indexer watch`` share.

A file is left out, silently (it is not part of the corpus), when any part of its path
relative to the corpus root

* is hidden (starts with ``.``: ``.git/``, ``.foo.swp``, ``.~lock.x.odt#``, a sync client's
  ``.syncthing.x.tmp``);
* is an editor's or a download's temporary or backup file (:data:`TEMPORARY_PATTERNS`:
  ``notes.md~``, ``#notes.md#``, ``~$report.docx``, ``x.swp``, ``x.tmp``, ``x.part``,
  ``x.crdownload``, vim's ``4913`` probe, …), which appear and vanish around every save;
* matches one of the user's ``--exclude`` patterns, written as in ``.gitignore`` (gitignore
  semantics through the `pathspec` library: ``drafts/`` a folder anywhere, ``/build`` at the
  root only, ``*.log``, ``notes/**/old-*``, ``!keep.log`` to take one back).

Everything else is read; a file that then gives no document (an unsupported type, an empty
file, …) is reported by the build with its reason.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field

import pathspec

from store.errors import InvalidInput

TEMPORARY_PATTERNS = (
    "*~",
    "#*#",
    "~$*",
    "*.swp",
    "*.swo",
    "*.swx",
    "*.swpx",
    "*.kate-swp",
    "*.tmp",
    "*.temp",
    "*.bak",
    "*.part",
    "*.partial",
    "*.crdownload",
    "*.download",
    "4913",
)
"""File names of editors' swap, backup and write-test files and of unfinished downloads."""

__all__ = ["DEFAULT_SELECTION", "TEMPORARY_PATTERNS", "Selection"]


def _temporary(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in TEMPORARY_PATTERNS)


@dataclass(frozen=True)
class Selection:
    """The corpus rules: hidden and temporary files out, then the ``exclude`` patterns (gitignore syntax).

    ``exclude`` patterns are checked when the selection is made: a pattern gitignore cannot
    read raises :class:`InvalidInput`.
    """

    exclude: tuple[str, ...] = ()
    _spec: pathspec.PathSpec | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        patterns = [p for p in self.exclude if p.strip()]
        if not patterns:
            return
        try:
            spec = pathspec.GitIgnoreSpec.from_lines(patterns)
        except (ValueError, TypeError) as exc:
            raise InvalidInput(f"cannot read --exclude pattern: {exc}; write patterns as in .gitignore") from exc
        object.__setattr__(self, "_spec", spec)

    @classmethod
    def of(cls, exclude: Sequence[str] | None) -> Selection:
        """A selection from the ``--exclude`` patterns given (None: none)."""
        return cls(tuple(exclude or ()))

    def skips_name(self, name: str) -> bool:
        """Whether a file or folder of this name is never part of a corpus (hidden or temporary)."""
        return name.startswith(".") or _temporary(name)

    def ignored(self, rel: str, *, is_dir: bool = False) -> bool:
        """Whether the path ``rel`` (relative to the corpus root, ``/``-separated) is left out."""
        parts = [p for p in rel.split("/") if p]
        if any(p.startswith(".") for p in parts):
            return True
        if parts and _temporary(parts[-1]):
            return True
        if any(_temporary(p) for p in parts[:-1]):
            return True
        if self._spec is None:
            return False
        return self._spec.match_file(rel + "/" if is_dir else rel)


DEFAULT_SELECTION = Selection()
"""Hidden and temporary files out, nothing else excluded."""
