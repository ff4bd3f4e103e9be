"""The progress callbacks of long writes (a build, an eval's build): cheap to import."""

from __future__ import annotations


class Progress:
    """Progress callbacks; the CLI passes tqdm bars (a subclass), the library default does nothing."""

    def files_total(self, n: int) -> None:
        """The build will read ``n`` files (counted before reading, cheaply)."""

    def file_read(self) -> None:
        """One more file was read (all its documents)."""

    def document_read(self) -> None:
        """One document (or skipped file) was read."""

    def chunks_embedded(self, n: int) -> None:
        """``n`` more chunks were embedded."""

    def close(self) -> None:
        """The work is over."""
