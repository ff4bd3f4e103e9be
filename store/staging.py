"""The staging area of an index directory: shards of embedded chunks waiting to be merged.

A distributed build (``--engine ray``) receives embedded chunks from its workers and writes
them here, under ``staging/<build id>/``, before the single writer merges them into SQLite
and FAISS. Each build folder holds ``build.json`` (what the shards were made for: corpus
root, model fingerprint, dimension) and shards ``shard-<NNNNNN>.parquet``: one row per chunk,
whole documents only. A shard is written under a temporary name, fsynced and renamed, so a
shard with its final name is complete; a build whose driver died leaves its complete shards
for the next build to merge, and temporaries that are discarded. The folder is removed once
its shards are merged.

Shard columns: ``key`` (the document's place in the corpus: file number << 32 | item number),
``doc_id``, ``source``, ``content_hash``, ``metadata`` (JSON object text), ``n_chars``,
``n_chunks`` (chunks of the document; 0: one placeholder row for a document that gave no
chunk), ``ord``, ``text``, ``start``, ``end`` (character offsets), ``n_tokens``, ``lang`` and
``vector`` (list of ``dimension`` float32, L2-normalised; NaN for a chunk the model gave no
usable vector; empty in a placeholder row).
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

from store.atomic import atomic_write, atomic_writer, fsync_dir
from store.faults import crash_point

STAGING_DIR = "staging"
BUILD_FILE = "build.json"


class StagedBuild:
    """One build's folder of shards: ``staging/<build id>/``."""

    def __init__(self, path: Path):
        self.path = path
        self._next = 1 + max((int(p.stem.split("-")[1]) for p in self.shards()), default=0)

    @property
    def info(self) -> dict[str, Any]:
        """The contents of ``build.json`` (empty if it is missing or unreadable)."""
        try:
            data = json.loads((self.path / BUILD_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def shards(self) -> list[Path]:
        """The complete shards, in the order they were written."""
        return sorted(self.path.glob("shard-*.parquet"))

    def write_shard(self, table: Any) -> Path:
        """Write a ``pyarrow.Table`` as the next shard: temporary name, fsync, rename, fsync dir."""
        import pyarrow.parquet as pq

        name = f"shard-{self._next:06d}.parquet"
        with atomic_writer(self.path / name) as fh:
            pq.write_table(table, fh)
        self._next += 1
        crash_point("shard")
        return self.path / name

    def read_shard(self, path: Path) -> Any:
        """A shard as a ``pyarrow.Table``."""
        import pyarrow.parquet as pq

        return pq.read_table(path)

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)
        parent = self.path.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()


class StagingArea:
    """``<index>/staging/``: the builds whose shards wait to be merged."""

    def __init__(self, index_path: Path):
        self.path = Path(index_path) / STAGING_DIR

    def staged_shards(self) -> list[Path]:
        """The complete shards waiting in every build folder, sorted (no temporaries removed)."""
        return sorted(self.path.glob("*/shard-*.parquet")) if self.path.is_dir() else []

    def leftovers(self) -> list[StagedBuild]:
        """Builds an earlier process left behind (its driver died before merging), oldest first.

        Their temporary files (shards that were being written) are removed: they are incomplete.
        """
        if not self.path.is_dir():
            return []
        builds = []
        for folder in sorted(p for p in self.path.iterdir() if p.is_dir()):
            for tmp in folder.glob(".*.tmp"):
                tmp.unlink(missing_ok=True)
            builds.append(StagedBuild(folder))
        return builds

    def new_build(self, info: dict[str, Any]) -> StagedBuild:
        """A new, empty build folder with ``info`` recorded in its ``build.json``."""
        build_id = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + "-" + uuid.uuid4().hex[:8]
        folder = self.path / build_id
        folder.mkdir(parents=True)
        atomic_write(folder / BUILD_FILE, json.dumps(info, ensure_ascii=False).encode())
        fsync_dir(self.path)
        return StagedBuild(folder)
