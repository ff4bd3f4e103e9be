"""``build_index``: a corpus folder into an index directory, incrementally.

Documents stream from :func:`~indexer.reading.read_corpus` into the ingestion engine
(:class:`~indexer.writer.Writer`), which embeds the new and changed ones in batches and
writes each with its chunks and vectors in one transaction (so an interrupted build resumes
where it stopped: a document counts as indexed only once all its vectors are stored).
Documents of the same corpus root that are gone are removed. Last, the FAISS index is
brought in line with SQLite and published. ``engine="ray"`` reads and embeds on a Ray
cluster instead (:mod:`indexer.ray_engine`), through the same engine.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from indexer.choices import ENGINES
from indexer.cleaning import path_text
from indexer.embedding import Embedder
from indexer.reading import Skipped, read_corpus, walk
from indexer.record_files import parse_field_rule
from indexer.selection import Selection
from indexer.tune_queries import store_tune_queries
from indexer.writer import BuildReport, Progress, Writer, check_chunk_tokens, open_model, resolve_settings
from store.errors import InvalidInput
from store.index_dir import IndexDir
from store.records import FieldRule

__all__ = ["ENGINES", "BuildReport", "Progress", "build_index"]


def build_index(
    corpus: str | Path,
    index: str | Path,
    *,
    model: str | Embedder | None = None,
    chunk_tokens: int | None = None,
    overlap_tokens: int | None = None,
    index_type: str | None = None,
    text_field: str | None = None,
    id_field: str | None = None,
    fields: Sequence[str | FieldRule] = (),
    progress: Progress | None = None,
    precision: str | None = None,
    engine: str = "local",
    ray_address: str | None = None,
    wait: float = 0.0,
    exclude: Sequence[str] = (),
    query_prompt: str | None = None,
    document_prompt: str | None = None,
    tune_queries: Sequence[str] | None = None,
) -> BuildReport:
    """Index the files under ``corpus`` (a folder or one file) into the index ``index``.

    Args:
        model: a registry name (``indexer models``), Hub id, directory or loaded
            :class:`Embedder`. Default: the model the index was built with, or ``distilmbert``
            (``distilbert-base-multilingual-cased``) for a new index.
        precision: ``auto``, ``fp32``, ``bf16`` or ``int8`` when a model is loaded here
            (default ``$BABELINDEX_PRECISION``, else ``auto``: the fastest that agrees with fp32).
        chunk_tokens / overlap_tokens: chunk size and overlap in model tokens (default: as
            recorded in the index, else 256 / 32). Changing them re-chunks every document.
        index_type: one of ``indexer.choices.INDEX_TYPES`` (default: as recorded, else ``auto``).
        text_field / id_field: the record fields of ``.jsonl``/``.csv`` files, for the whole
            corpus (default: as recorded in the index, else the text field detected in each
            file and ids ``<file>#<record number>``; ``""`` goes back to those defaults).
        fields: record fields per file, as :class:`~store.records.FieldRule` or as the
            ``--fields`` option writes them (``"faq.csv:text=answer,id=qid"``,
            :func:`indexer.record_files.parse_field_rule`). Record fields given are recorded in
            the index, so that later builds and ``indexer watch`` read records the same way.
        engine: ``local`` (this process) or ``ray``: reading, chunking and embedding on a Ray
            cluster, merged here into the same index (see :mod:`indexer.ray_engine`).
        ray_address: the Ray cluster to use with ``engine="ray"`` (default: the one this
            process is connected to, else ``$RAY_ADDRESS``, else a local one started here).
        wait: seconds to keep trying for the writer lock while another writer (a server's
            upserts, another build) holds it; 0 fails at once with ``IndexLocked``.
        exclude: patterns of files and folders to leave out, as in ``.gitignore``
            (:mod:`indexer.selection`; hidden and editors' temporary files are always left out).
            Documents of files excluded now are removed, as a clean build would not have them.
        query_prompt / document_prompt: the text put before each query / chunk instead of the
            model's prompts (``""``: none). Default: as the index records them, else the
            model's own (see :mod:`indexer.embedding.prompts`). Other prompts than an existing
            index's raise ``ModelMismatch``.
        tune_queries: query texts like those the index will be asked (e.g. read with
            :func:`indexer.tune_queries.read_tune_queries`): an IVF index tunes ``nprobe`` on
            them (a sample of at most 1,000, embedded as queries and kept in the index for
            later retraining) instead of on stored vectors.
    Raises:
        ModelMismatch: the index was built with another model.
        IndexLocked: another process is writing the index.
        MissingDependency: ``engine="ray"`` without Ray installed.
    """
    started = time.perf_counter()
    corpus = Path(corpus)
    if not corpus.exists():
        raise InvalidInput(f"the corpus {corpus} does not exist; give a folder or a file to index.")
    if engine not in ENGINES:
        raise InvalidInput(f"unknown engine {engine!r}; use one of {', '.join(ENGINES)}.")
    if engine == "ray":
        from indexer import ray_engine

        ray_engine.require_ray()
    progress = progress or Progress()
    rules = [parse_field_rule(r) if isinstance(r, str) else r for r in fields]
    selection = Selection.of(exclude)
    is_new = not Path(index).exists()
    with IndexDir.open_for_writing(index, wait=wait) as idx:
        try:
            embedder = open_model(idx, model, precision, query_prompt=query_prompt, document_prompt=document_prompt)
            check_chunk_tokens(chunk_tokens, embedder)
        except BaseException:
            if is_new:  # nothing was recorded: leave no empty index behind
                shutil.rmtree(index, ignore_errors=True)
            raise
        settings = resolve_settings(
            idx, chunk_tokens, overlap_tokens, index_type, text_field=text_field, id_field=id_field, field_rules=rules
        )
        report = BuildReport(index=str(index), model=embedder.name)
        if engine == "ray":
            writer = ray_engine.run(
                idx,
                embedder,
                settings,
                corpus,
                settings.fields,
                report,
                progress,
                model=model,
                ray_address=ray_address,
                selection=selection,
            )
        else:
            writer = Writer(idx, embedder, settings, report, corpus=path_text(str(corpus.resolve())), progress=progress)
            progress.files_total(sum(1 for _ in walk(corpus, idx.path, selection)))
            last = None
            for item in read_corpus(corpus, settings.fields, exclude=idx.path, selection=selection):
                if item.source != last:
                    if last is not None:
                        progress.file_read()
                    last = item.source
                if isinstance(item, Skipped):
                    writer.skip(item)
                else:
                    writer.add(item)
                progress.document_read()
            if last is not None:
                progress.file_read()
            writer.finish()
        published = time.perf_counter()
        if tune_queries is not None:
            store_tune_queries(idx, embedder, tune_queries)
        writer.publish()
        if engine == "ray":
            report.steps["publish"] = round(time.perf_counter() - published, 3)
    progress.close()
    report.seconds = round(time.perf_counter() - started, 3)
    return report
