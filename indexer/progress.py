"""The progress callbacks of long writes (a build, an eval's build): cheap to import."""

from __future__ import annotations


class Progress:
    """Progress callbacks; the CLI passes tqdm bars (a subclass), the library default does nothing."""

    def document_read(self) -> None:
        """One document (or skipped file) was read."""

    def chunks_embedded(self, n: int) -> None:
        """``n`` more chunks were embedded."""

    def close(self) -> None:
        """The work is over."""
