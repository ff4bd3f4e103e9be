"""The ``indexer`` command: a thin shell over :mod:`indexer.build` and :mod:`search`.

Parses options, calls the library, prints. Library errors (``BabelIndexError``) become
``click.ClickException`` (exit code 1) with the library's message; usage errors exit 2.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import unicodedata
from pathlib import Path

import click

from indexer.cli_common import (
    ALLOW_HOST_OPTION,
    EXCLUDE_OPTION,
    INDEX_OPTION,
    MMAP_OPTION,
    PRECISION_OPTION,
    PROMPT_OPTIONS,
    WAIT_OPTION,
    fail,
    precision_notices,
    read_token,
    token_options,
    with_progress,
)
from indexer.mcp_cli import mcp
from indexer.watch_cli import EventLog, make_watcher, watch, watch_options
from search.choices import ENGINES, GROUP_BY, INDEX_TYPES, MODES
from store.errors import BabelIndexError

TUNE_QUERIES_OPTION = click.option(
    "--tune-queries",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Queries like those the index will be asked (a BEIR queries.jsonl, or one per line): an IVF index tunes "
    "nprobe on them (a sample of 1,000, kept in the index) instead of on stored vectors.",
)


@click.group()
@click.version_option(package_name="babelindex")
def cli() -> None:
    """babelindex: cross-lingual semantic search over your documents."""


@cli.command()
@click.argument("corpus", type=click.Path(exists=True, path_type=Path))
@INDEX_OPTION
@click.option(
    "--model",
    default=None,
    help="Model: a name from `indexer models`, a Hub id or a local directory. "
    "Default: the index's model, else distilmbert.",
)
@PRECISION_OPTION
@PROMPT_OPTIONS
@click.option(
    "--chunk-tokens", type=click.IntRange(8, 512), default=None, help="Chunk size in model tokens (default 256)."
)
@click.option(
    "--overlap-tokens", type=click.IntRange(0, 256), default=None, help="Overlap between chunks in tokens (default 32)."
)
@click.option(
    "--index-type",
    type=click.Choice(INDEX_TYPES),
    default=None,
    help="FAISS index: flat (exact), ivf, ivf-sq8, ivf-pq, ivf-opq, hnsw, or auto (flat up to 20,000 chunks, "
    "then ivf). Default: as recorded, else auto.",
)
@click.option(
    "--text-field",
    default=None,
    help="Text field of .jsonl/.csv records, for the whole corpus. Default: as the index records, else detected "
    "per file ('text' if present, else the field holding the most text). Remembered by the index.",
)
@click.option(
    "--id-field",
    default=None,
    help="Id field of .jsonl/.csv records, for the whole corpus. Default: as the index records, else "
    "file#record number ('' to go back to that). Remembered by the index.",
)
@click.option(
    "--fields",
    "field_rules",
    multiple=True,
    metavar="FILE:text=F,id=F",
    help="Record fields of one file (a name, a path under CORPUS or a glob), repeatable: "
    "--fields 'faq.csv:text=answer,id=qid'. Remembered by the index; 'FILE:' forgets a rule.",
)
@click.option(
    "--engine",
    type=click.Choice(ENGINES),
    default="local",
    show_default=True,
    help="Where to read, chunk and embed: this process, or a Ray cluster (pip install 'babelindex[ray]').",
)
@click.option(
    "--ray-address",
    default=None,
    metavar="ADDRESS",
    help="Ray cluster for --engine ray (e.g. ray://head:10001 or auto). Default: $RAY_ADDRESS, else a "
    "local Ray started for the build.",
)
@EXCLUDE_OPTION
@TUNE_QUERIES_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no report.")
@WAIT_OPTION
def build(
    corpus,
    index_path,
    model,
    precision,
    query_prompt,
    document_prompt,
    chunk_tokens,
    overlap_tokens,
    index_type,
    text_field,
    id_field,
    field_rules,
    engine,
    ray_address,
    exclude,
    tune_queries,
    as_json,
    quiet,
    wait,
):
    """Index the documents in CORPUS (a folder or a file) into --index.

    Run it again to update: new files are added, changed ones re-embedded, removed ones
    dropped; nothing is embedded when nothing changed.
    """
    from indexer.build import build_index
    from indexer.tune_queries import read_tune_queries

    try:
        queries = read_tune_queries(tune_queries) if tune_queries is not None else None
    except BabelIndexError as exc:
        raise fail(exc) from None
    try:
        with with_progress(not (quiet or as_json)) as bars:
            report = build_index(
                corpus,
                index_path,
                model=model,
                chunk_tokens=chunk_tokens,
                overlap_tokens=overlap_tokens,
                index_type=index_type,
                text_field=text_field,
                id_field=id_field,
                fields=field_rules,
                progress=bars,
                precision=precision,
                engine=engine,
                ray_address=ray_address,
                wait=wait,
                exclude=exclude,
                query_prompt=query_prompt,
                document_prompt=document_prompt,
                tune_queries=queries,
            )
    except KeyboardInterrupt:
        _interrupted(index_path)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    if quiet:
        return
    r = report
    click.echo(f"Indexed {corpus} into {index_path} with {r.model} in {r.seconds:.1f} s")
    click.echo(
        f"  documents: {r.documents_added} added, {r.documents_updated} updated, "
        f"{r.documents_removed} removed, {r.documents_unchanged} unchanged, {r.documents_skipped} skipped"
    )
    reused = f", {r.chunks_reused} reused" if r.chunks_reused else ""
    click.echo(f"  chunks:    {r.chunks_embedded} embedded{reused}, {r.chunks_total} in the index ({r.index_type})")
    for title, items, key in (("Skipped:", r.skipped, "reason"), ("Warnings:", r.warnings, "warning")):
        if items:
            click.echo(title)
            for item in items[:20]:
                click.echo(f"  {item['source']}: {item[key]}")
            if len(items) > 20:
                click.echo(f"  … and {len(items) - 20} more (see --json for all)")


@cli.command("import")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@INDEX_OPTION
@click.option(
    "--model",
    default=None,
    help="The model that made the vectors (required for a new index; default: the "
    "index's). Loaded if available here, to check a sample of vectors and to embed queries later.",
)
@click.option("--text-field", default="text", show_default=True, help="Column of the chunk text.")
@click.option("--id-field", default="doc_id", show_default=True, help="Column of the document id.")
@click.option("--vector-field", default="vector", show_default=True, help="Column of the vector (a list of floats).")
@click.option(
    "--index-type",
    type=click.Choice(INDEX_TYPES),
    default=None,
    help="FAISS index type, as for `indexer build` (default: as recorded, else auto).",
)
@click.option("--no-model-check", is_flag=True, help="Do not embed sample rows with the model to check the vectors.")
@PRECISION_OPTION
@PROMPT_OPTIONS
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No report.")
def import_(
    files,
    index_path,
    model,
    text_field,
    id_field,
    vector_field,
    index_type,
    no_model_check,
    precision,
    query_prompt,
    document_prompt,
    as_json,
    quiet,
):
    """Index chunks with precomputed vectors from Parquet or JSONL FILES or folders (one row per chunk or document).

    Columns: doc_id, text, vector (required); ord, start, end, lang, source, n_tokens,
    metadata (optional); any other column is document metadata. Importing the same rows
    again changes nothing; a changed row replaces its document. Rows that cannot be used
    are listed with their reason and their documents skipped.
    """
    from indexer.importing import import_vectors

    with with_progress(False), precision_notices() if not (quiet or as_json) else contextlib.nullcontext():
        r = import_vectors(
            files,
            index_path,
            model=model,
            text_field=text_field,
            id_field=id_field,
            vector_field=vector_field,
            index_type=index_type,
            check_model=not no_model_check,
            precision=precision,
            query_prompt=query_prompt,
            document_prompt=document_prompt,
        )
    if as_json:
        click.echo(json.dumps(r.to_dict(), ensure_ascii=False))
        return
    if quiet:
        return
    if r.model_loaded:
        how = (
            f"loaded here; sample vectors agree at cosine {r.model_check_cosine}"
            if r.model_check_cosine
            else "loaded here"
        )
    else:
        how = "not loadable here: recorded by name; searching by text needs it"
    click.echo(f"Imported {len(files)} file{'s' * (len(files) != 1)} into {index_path} in {r.seconds:.1f} s")
    click.echo(f"  model:     {r.model}, {r.dimension} dimensions ({how})")
    click.echo(f"  rows:      {r.rows_read} read, {r.rows_rejected} rejected")
    click.echo(
        f"  documents: {r.documents_added} added, {r.documents_updated} updated, "
        f"{r.documents_unchanged} unchanged, {r.documents_skipped} skipped"
    )
    click.echo(f"  chunks:    {r.chunks_imported} imported, {r.chunks_total} in the index ({r.index_type})")
    for title, items in (("Rejected:", r.rejected), ("Skipped:", r.skipped)):
        if items:
            click.echo(title)
            for item in items[:20]:
                click.echo(f"  {item['source']}: {item['reason']}")
            if len(items) > 20:
                click.echo(f"  … and {len(items) - 20} more (see --json for all)")


@cli.command()
@click.argument("query")
@INDEX_OPTION
@click.option("-k", "k", type=click.IntRange(1, 10_000), default=10, show_default=True, help="Number of hits.")
@click.option("--nprobe", type=click.IntRange(1), default=None, help="IVF lists to visit (default: tuned at build).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of hits.")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="dense",
    show_default=True,
    help="dense: embeddings (cosine); lexical: full-text (bm25); hybrid: both, fused by rank.",
)
@click.option("--lang", default=None, help="Only chunks in these languages, comma-separated (e.g. de,fr).")
@click.option(
    "--source", default=None, help="Only documents whose source matches this glob ('docs/*.md') or prefix ('docs/')."
)
@click.option(
    "--where",
    "where",
    multiple=True,
    metavar="COND",
    help="Metadata condition, repeatable: KEY OP VALUE with OP one of = != < <= > >= (e.g. 'year>=2020'), "
    "or 'KEY in A,B'.",
)
@click.option("--group-by", type=click.Choice(GROUP_BY), default=None, help="Best chunk of each of k documents.")
@click.option(
    "--min-score",
    type=float,
    default=None,
    metavar="SCORE",
    help="Leave out hits scoring below SCORE (in the mode's own score: cosine for dense).",
)
@PRECISION_OPTION
@PROMPT_OPTIONS
@MMAP_OPTION
def search(
    query,
    index_path,
    k,
    nprobe,
    as_json,
    mode,
    lang,
    source,
    where,
    group_by,
    min_score,
    precision,
    query_prompt,
    document_prompt,
    mmap,
):
    """Find the passages that best match QUERY, in any language."""
    from search import Index
    from search.filters import parse_langs, parse_where

    try:
        langs = parse_langs(lang)
        opened = Index.open(
            index_path, precision=precision, mmap=mmap, query_prompt=query_prompt, document_prompt=document_prompt
        )
        with opened as index, precision_notices():  # the model loads at the first search
            if nprobe is not None and not index.uses_nprobe:
                click.echo(
                    f"note: --nprobe changes nothing on this index ({index.stats()['index_kind']}: IVF indexes only).",
                    err=True,
                )
                nprobe = None
            hits = index.search(
                query,
                k=k,
                nprobe=nprobe,
                lang=langs,
                source=source,
                where=parse_where(where),
                mode=mode,
                group_by=group_by,
                min_score=min_score,
            )
    except BabelIndexError as exc:
        raise fail(exc) from None
    if as_json:
        click.echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
        return
    if not hits:
        click.echo(f"No hits scored {min_score:g} or more." if min_score is not None else "No hits.")
        return
    _print_hits(hits, _highlighted(query) if mode != "dense" else [], mode)


def _print_hits(hits, terms, mode) -> None:
    """The hits as a table; matched ``terms`` highlighted (reverse video, or [[…]] when piped)."""
    from search.snippet import snippet

    color = sys.stdout.isatty()
    width = shutil.get_terminal_size((100, 20)).columns
    sources = [h.doc_id if h.doc_id.startswith(h.source) else f"{h.source} [{h.doc_id}]" for h in hits]
    src_w = min(max(_width(s) for s in sources), 40)
    snippet_w = max(20, width - src_w - 24)
    click.echo(f"{'rank':>4}  {'score':>5}  {'lang':4}  {_fit('source', src_w)}  text")
    for rank, (hit, source) in enumerate(zip(hits, sources, strict=True), start=1):
        text = "".join(
            (click.style(part, bold=True, reverse=True) if color else f"[[{part}]]") if matched else part
            for part, matched in snippet(hit.text, terms, snippet_w)
        )
        score = f"{hit.score:5.3f}" if mode == "dense" else f"{hit.score:5.3g}"
        click.echo(f"{rank:>4}  {score}  {hit.lang or '?':4}  {_fit(source, src_w, left=True)}  {text}".rstrip())


def _width(text: str) -> int:
    """Terminal columns of ``text`` (East Asian wide characters take two)."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def _fit(text: str, width: int, left: bool = False) -> str:
    """``text`` cut with an ellipsis (at the start if ``left``) and padded to ``width`` columns."""
    if _width(text) > width:
        chars = list(reversed(text)) if left else list(text)
        kept, used = [], 1
        for ch in chars:
            used += _width(ch)
            if used > width:
                break
            kept.append(ch)
        text = "…" + "".join(reversed(kept)) if left else "".join(kept) + "…"
    return text + " " * (width - _width(text))


@cli.command()
@INDEX_OPTION
@click.option("--lang", default=None, help="Only documents with chunks in these languages, comma-separated.")
@click.option("--source", default=None, help="Only documents whose source matches this glob or prefix.")
@click.option("--where", "where", multiple=True, metavar="COND", help="Metadata condition, repeatable (as for search).")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="Documents to list.")
@click.option("--offset", type=click.IntRange(0), default=0, show_default=True, help="Documents to skip first.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: total, offset, documents.")
def documents(index_path, lang, source, where, limit, offset, as_json):
    """List the documents of an index (id, source, language, chunks, size), ordered by id."""
    from search import Index
    from search.filters import parse_langs, parse_where

    try:
        with Index.open(index_path) as index:
            page = index.documents(
                lang=parse_langs(lang), source=source, where=parse_where(where), limit=limit, offset=offset
            )
    except BabelIndexError as exc:
        raise fail(exc) from None
    if as_json:
        click.echo(json.dumps(page.to_dict(), ensure_ascii=False))
        return
    if not page.documents:
        click.echo(f"No documents{' from ' + str(offset) if offset else ''} (of {page.total}).")
        return
    id_w = min(max(_width(d.doc_id) for d in page.documents), 48)
    click.echo(f"{_fit('doc_id', id_w)}  lang  chunks  {'chars':>9}  updated               source")
    for d in page.documents:
        source_text = "" if d.source == d.doc_id else d.source
        click.echo(
            f"{_fit(d.doc_id, id_w, left=True)}  {d.lang or '?':4}  {d.chunks:>6}  {d.n_chars:>9,}  {d.updated_at}  {source_text}".rstrip()
        )
    last = offset + len(page.documents)
    more = f"; the next page: --offset {last}" if last < page.total else ""
    click.echo(f"{offset + 1}–{last} of {page.total} documents{more}")


@cli.command()
@INDEX_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@MMAP_OPTION
def stats(index_path, as_json, mmap):
    """Show counts, model, index type, languages, sizes and bytes per vector of an index."""
    from search import Index

    try:
        with Index.open(index_path, mmap=mmap) as index:
            s = index.stats()
    except BabelIndexError as exc:
        raise fail(exc) from None
    if as_json:
        click.echo(json.dumps(s, ensure_ascii=False))
        return
    size = s["size_bytes"]
    params = ", ".join(f"{k}={s[k]}" for k in ("nlist", "nprobe") if s[k] is not None)
    click.echo(f"index:      {s['path']}")
    click.echo(f"documents:  {s['documents']}")
    click.echo(f"chunks:     {s['chunks']}")
    click.echo(f"model:      {s['model']} ({s['dimension']} dimensions)")
    click.echo(f"faiss:      {s['index_type']}{' (' + params + ')' if params else ''}, version {s['faiss_version']}")
    click.echo(
        f"per vector: {s['code_bytes_per_vector']} B code, {s['file_bytes_per_vector']:g} B in the file, "
        f"{s['memory_bytes_per_vector']:g} B in memory ({'memory-mapped' if s['mmap'] else 'loaded'}; "
        f"{_mb(s['memory_bytes'])} for the index)"
    )
    click.echo("languages:  " + ", ".join(f"{lang} {n}" for lang, n in s["languages"].items()))
    click.echo(f"on disk:    {_mb(size['total'])} (meta.db {_mb(size['meta_db'])}, faiss {_mb(size['faiss'])})")
    if (w := s.get("watch")) is not None:
        published = (
            f"last publish {w['last_publish_at']} (version {w['version']})"
            if w["last_publish_at"]
            else "no publish yet"
        )
        click.echo(
            f"watch:      {w['state']} {w['corpus']} ({w['mode']}, pid {w['pid']}); {published}; "
            f"{w['files_pending']} files pending; {len(w['errors'])} recent problems"
        )
        for e in w["errors"][-3:]:
            click.echo(f"            {e['time']} {e['source'] + ': ' if e['source'] else ''}{e['reason']}")


@cli.command()
@click.argument("sources", nargs=-1, required=True)
@INDEX_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@WAIT_OPTION
def remove(sources, index_path, as_json, wait):
    """Remove documents by SOURCE (a file, relative to its corpus root) or document id.

    Exits 1 if some SOURCE matched nothing (the others are removed all the same).
    """
    from indexer.update import remove_sources

    try:
        report = remove_sources(index_path, sources, wait=wait)
    except BabelIndexError as exc:
        raise fail(exc) from None
    if as_json:
        click.echo(json.dumps({"removed": report.removed, "missing": report.missing}, ensure_ascii=False))
    else:
        total = sum(len(ids) for ids in report.removed.values())
        click.echo(f"Removed {total} document{'s' * (total != 1)} from {index_path}")
        for source in report.missing:
            click.echo(f"  not in the index: {source}")
    if report.missing:
        sys.exit(1)


@cli.command()
@INDEX_OPTION
@click.option("--verify-model", is_flag=True, help="Also load the model and compare its probe embedding.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def check(index_path, verify_model, as_json):
    """Verify an index: SQLite integrity, FAISS checksum, ids, vectors, model. Exits 1 on a problem."""
    from indexer.embedding import verify_model as load_and_compare
    from store.check import check_index

    report = check_index(index_path, verify_model=load_and_compare if verify_model else None)
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
    else:
        for line in report.passed:
            click.echo(f"ok       {line}")
        for line in report.warnings:
            click.echo(f"warning  {line}")
        for line in report.problems:
            click.echo(f"PROBLEM  {line}")
        click.echo("All checks passed." if report.ok else f"{len(report.problems)} problem(s) found.")
    if not report.ok:
        sys.exit(1)


@cli.command()
@INDEX_OPTION
@WAIT_OPTION
def repair(index_path, wait):
    """Rebuild the FAISS index from the vectors stored in meta.db (no re-embedding)."""
    from indexer.update import repair as repair_index

    try:
        info = repair_index(index_path, wait=wait)
    except BabelIndexError as exc:
        raise fail(exc) from None
    if info is None:
        click.echo(f"Nothing to repair: {index_path} has no chunks yet.")
    else:
        click.echo(f"Repaired {index_path}: FAISS version {info.version}, {info.ntotal} vectors, {info.factory}")


@cli.command()
@INDEX_OPTION
@click.option("--index-type", required=True, type=click.Choice(INDEX_TYPES), help="The new FAISS index type.")
@TUNE_QUERIES_OPTION
@PRECISION_OPTION
@WAIT_OPTION
def reindex(index_path, index_type, tune_queries, precision, wait):
    """Switch the FAISS index type without re-embedding (the type is kept by later builds)."""
    from indexer.tune_queries import read_tune_queries
    from indexer.update import reindex as reindex_index

    try:
        queries = read_tune_queries(tune_queries) if tune_queries is not None else None
        info = reindex_index(index_path, index_type, wait=wait, tune_queries=queries, precision=precision)
    except BabelIndexError as exc:
        raise fail(exc) from None
    if info is None:
        click.echo(f"{index_path} has no chunks yet; {index_type} will be used once it has.")
        return
    params = ", ".join(f"{k}={v}" for k, v in (("nlist", info.nlist), ("nprobe", info.nprobe)) if v is not None)
    recall = f", recall@10 {info.tuned_recall:.3f} at the default nprobe" if info.tuned_recall is not None else ""
    if info.tuned_on is not None:
        recall += f" (tuned on {info.tuned_queries} {info.tuned_on})"
    click.echo(f"Reindexed {index_path}: {info.factory}{' (' + params + ')' if params else ''}{recall}")


@cli.command()
@INDEX_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@WAIT_OPTION
def compact(index_path, as_json, wait):
    """Give back the space deleted documents left (meta.db's free pages, old FAISS versions)."""
    from indexer.update import compact as compact_index

    try:
        report = compact_index(index_path, wait=wait)
    except BabelIndexError as exc:
        raise fail(exc) from None
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    before, after = report.before, report.after
    click.echo(
        f"Compacted {index_path}: {_mb(before.total)} → {_mb(after.total)} ({_mb(report.reclaimed)} given back, "
        f"{report.seconds:.1f} s)"
    )
    done = [
        f"{report.free_pages:,} free pages of {report.page_size:,} B",
        "VACUUM" if report.vacuum == "full" else "incremental vacuum",
    ]
    if report.fts_merged:
        done.append("full-text index merged")
    removed = ", ".join(report.faiss_removed) or "none superseded"
    click.echo(f"  meta.db  {_mb(before.meta_db):>9} → {_mb(after.meta_db):>9}  ({'; '.join(done)})")
    click.echo(f"  wal      {_mb(before.wal):>9} → {_mb(after.wal):>9}")
    click.echo(f"  faiss    {_mb(before.faiss):>9} → {_mb(after.faiss):>9}  (removed: {removed})")
    if not report.checkpointed:
        click.echo(
            "  A reader kept an older snapshot, so the write-ahead log was not truncated yet: meta.db shrinks at "
            "the next checkpoint (the next write, or `indexer compact` again)."
        )


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


@cli.command("eval")
@click.argument("task_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--model",
    default=None,
    help="Model: a Hub id, a local directory or use-multilingual. Default: distilbert-base-multilingual-cased.",
)
@click.option(
    "--index-type",
    default="auto",
    show_default=True,
    metavar="TYPE",
    help="FAISS index type, as for `indexer build` (auto, flat, ivf, …).",
)
@click.option(
    "--index",
    "index_path",
    default=None,
    type=click.Path(file_okay=False, path_type=Path),
    help="Index directory, holding only this corpus (default: $BABELINDEX_CACHE/eval/<task>-<model>/<corpus hash>, "
    "never inside TASK_DIR).",
)
@click.option("--nprobe", type=click.IntRange(1), default=None, help="IVF lists to visit (default: tuned at build).")
@click.option(
    "--nprobe-curve",
    is_flag=True,
    help="Also measure ann at each nprobe (IVF) or efSearch (HNSW): recall@10 against exact, MRR@10, latency.",
)
@PROMPT_OPTIONS
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
def eval_(task_dir, model, index_type, index_path, nprobe, nprobe_curve, query_prompt, document_prompt, as_json, quiet):
    """Measure retrieval on a BEIR task (corpus.jsonl, queries.jsonl, qrels/test.tsv).

    Builds or reuses an index of the corpus, runs every query, and prints recall@1,
    recall@10, MRR@10 and nDCG@10 overall and per query language, for the index (ann) and
    for exact search over the same vectors (exact). The index holds exactly the corpus: by
    default eval's cache, keyed by the corpus's content; a given --index holding other
    documents is refused.
    """
    from search.evaluate import evaluate

    with with_progress(not (quiet or as_json)) as bars:
        if query_prompt is not None or document_prompt is not None:
            from indexer.embedding import load_embedder

            model = load_embedder(model, query_prompt=query_prompt, document_prompt=document_prompt)
        try:
            r = evaluate(
                task_dir,
                model=model,
                index_type=index_type,
                index=index_path,
                nprobe=nprobe,
                curve=nprobe_curve,
                progress=bars,
            )
        except BabelIndexError as exc:
            raise fail(exc) from None
    if as_json:
        click.echo(json.dumps(r.to_dict(), ensure_ascii=False))
        return
    nprobe_note = f", nprobe {r.nprobe}" if r.nprobe else ""
    click.echo(
        f"{r.task}: {r.queries} queries, {r.documents} documents ({r.chunks} chunks), {r.model}, "
        f"{r.index_type}{nprobe_note}"
    )
    skipped = r.corpus_records - r.documents
    counts = f"{r.documents} documents from {r.corpus_records} records" + (f", {skipped} skipped" if skipped else "")
    click.echo(f"index: {r.index} ({'reused' if r.reused else 'built'}; {counts})")
    names = ["recall@1", "recall@10", "MRR@10", "nDCG@10"]
    keys = ["recall_at_1", "recall_at_10", "mrr_at_10", "ndcg_at_10"]
    click.echo(f"{'lang':8}{'queries':>8}" + "".join(f"  {n:>13}" for n in names))
    click.echo(f"{'':16}" + f"  {'ann':>6} {'exact':>6}" * len(names))
    rows = [("all", r.ann, r.exact, r.queries)]
    rows += [(lang, m, r.exact["per_language"][lang], m["queries"]) for lang, m in r.ann["per_language"].items()]
    for lang, ann, exact, n in rows:
        click.echo(f"{lang:8}{n:>8}" + "".join(f"  {ann[k]:6.3f} {exact[k]:6.3f}" for k in keys))
    if r.curve is not None:
        _print_curve(r.curve, r.index_type)
    click.echo(f"{r.seconds:.1f} s (index {r.build_seconds:.1f} s)")


def _print_curve(points, index_type: str) -> None:
    """The table of ``indexer eval --nprobe-curve`` (a list of ``search.evaluate.CurvePoint``)."""
    if not points:
        click.echo(f"{index_type} is exact search: there is no nprobe or efSearch to tune.")
        return
    name = {"nprobe": "nprobe", "ef_search": "efSearch"}[points[0].parameter]
    own = "tuned at build" if name == "nprobe" else "the index's own"
    click.echo(f"{name} curve: ann against exact search (* the default, {own})")
    click.echo(f"{name:>9}  recall@10  MRR@10 ann  MRR@10 exact  ms/query p50  queries/s")
    for p in points:
        value = f"{p.value}{'*' if p.default else ' '}"
        click.echo(
            f"{value:>9}  {p.recall_at_10:9.3f}  {p.mrr_at_10:10.3f}  {p.exact_mrr_at_10:12.3f}"
            f"  {p.latency_ms_p50:12.3f}  {p.queries_per_second:9.0f}"
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array, one object per model.")
def models(as_json):
    """List the models known by name (for --model), whether each is here now, and which to pick
    for cross-lingual retrieval (with the published figures that advice rests on)."""
    from indexer.embedding import list_models
    from indexer.embedding.registry import CROSS_LINGUAL_ADVICE, REGISTRY

    rows = list_models()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
        return
    src_w = max(len(r["source"]) for r in rows)
    prompts = {r["name"]: _prompts_cell(r["query_prompt"], r["document_prompt"]) for r in rows}
    pr_w = max(len("prompts"), *(len(p) for p in prompts.values()))
    click.echo(
        f"{'name':16}  {'model':{src_w}}  {'languages':>9}  {'dims':>4}  {'tokens':>6}  {'size':>7}  "
        f"{'prompts':{pr_w}}  local"
    )
    for r in rows:
        click.echo(
            f"{r['name']:16}  {r['source']:{src_w}}  {r['languages']:>9}  {r['dimension']:>4}  "
            f"{r['max_tokens']:>6}  {r['size_mb']:>4} MB  {prompts[r['name']]:{pr_w}}  {'yes' if r['available'] else 'no'}"
        )
    click.echo(
        "--model also takes any Hugging Face Hub id or a local model directory (its prompts are read from its "
        "sentence-transformers configuration; --query-prompt / --document-prompt replace them)."
    )
    click.echo("For cross-lingual retrieval (queries in one language, documents in others), pick:")
    for name, advice in CROSS_LINGUAL_ADVICE:
        click.echo(f"  {name:16}  {advice}")
    click.echo("What this rests on (published figures, cited):")
    for name, _ in CROSS_LINGUAL_ADVICE:
        if REGISTRY[name].evidence:
            click.echo(f"  {name:16}  {REGISTRY[name].evidence}")


def _prompts_cell(query: str, document: str) -> str:
    """``'query: ' / 'passage: '`` as the table shows a registry entry's prompts, ``-`` for none."""
    return f"{query!r} / {document!r}" if query or document else "-"


@cli.command()
@INDEX_OPTION
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on. Anything but loopback needs a token."
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="TCP port.")
@token_options
@ALLOW_HOST_OPTION
@click.option(
    "--batch-size",
    type=click.IntRange(1, 1024),
    default=8,
    show_default=True,
    help="Most queries embedded in one model call (1: no micro-batching). Larger batches pad more "
    "and lengthen every turn; 8 served most requests per second here.",
)
@click.option(
    "--batch-wait-ms",
    type=click.FloatRange(0, 1000),
    default=2.0,
    show_default=True,
    help="How long the first query of a batch waits for others (milliseconds).",
)
@click.option("--max-k", type=click.IntRange(1, 10_000), default=1_000, show_default=True, help="Most hits per query.")
@click.option(
    "--max-query-chars",
    type=click.IntRange(1),
    default=2_000,
    show_default=True,
    help="Longest query text (characters).",
)
@click.option(
    "--max-queries", type=click.IntRange(1), default=64, show_default=True, help="Most queries per POST /search."
)
@click.option(
    "--max-documents",
    type=click.IntRange(1),
    default=1_000,
    show_default=True,
    help="Most documents per POST /documents.",
)
@click.option(
    "--max-ids", type=click.IntRange(1), default=10_000, show_default=True, help="Most ids per POST /documents/delete."
)
@click.option(
    "--max-body-mb", type=click.FloatRange(0.001), default=10.0, show_default=True, help="Largest request body (MiB)."
)
@click.option(
    "--max-pending-writes",
    type=click.IntRange(1),
    default=16,
    show_default=True,
    help="Writes waiting for the writer at most; more get 503 with Retry-After.",
)
@click.option(
    "--header-timeout",
    type=click.FloatRange(0.1),
    default=10.0,
    show_default=True,
    help="Seconds a client may take to send a request's headers; slower connections are closed.",
)
@click.option(
    "--max-connections",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    help="Open connections at most; requests beyond them get 503.",
)
@click.option(
    "--metrics/--no-metrics",
    default=True,
    show_default=True,
    help="Serve GET /metrics (Prometheus text format, behind the token like every route) and keep its figures.",
)
@click.option(
    "--log-level",
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    default="info",
    show_default=True,
    help="Server log level (requests are logged at info; headers never).",
)
@PRECISION_OPTION
@MMAP_OPTION
@click.option(
    "--model",
    default=None,
    help="Model for queries (and, with --watch, for a new index): a name from `indexer models`, a Hub id or "
    "a local directory. Default: the index's model (an index built with another model is refused).",
)
@PROMPT_OPTIONS
@click.option(
    "--watch",
    "watch_corpus",
    type=click.Path(exists=True, path_type=Path),
    default=None,
    metavar="CORPUS",
    help="Also keep the index in step with the folder CORPUS, as `indexer watch` does, in this process "
    "(built or resumed before the server starts; searches are served from the last published version).",
)
@watch_options
def serve(
    index_path,
    host,
    port,
    token,
    token_file,
    allow_hosts,
    batch_size,
    batch_wait_ms,
    max_k,
    max_query_chars,
    max_queries,
    max_documents,
    max_ids,
    max_body_mb,
    max_pending_writes,
    header_timeout,
    max_connections,
    metrics,
    log_level,
    precision,
    mmap,
    model,
    query_prompt,
    document_prompt,
    watch_corpus,
    exclude,
    poll,
    step_ms,
    debounce_ms,
    rescan,
):
    """Serve the index over HTTP (a search page at /, OpenAPI docs at /docs). Stop with Ctrl-C."""
    from search import Index
    from search.server import Limits, ServerSettings, check_exposure, default_allowed_hosts
    from search.server import serve as run_server

    token = read_token(token, token_file)  # an empty one is an error below, never "no token"
    limits = Limits(
        max_body_bytes=int(max_body_mb * 1024 * 1024),
        max_query_chars=max_query_chars,
        max_k=max_k,
        max_queries=max_queries,
        max_documents=max_documents,
        max_ids=max_ids,
    )
    try:
        # An empty token (file, first line or variable) is an error, never "no token".
        settings = ServerSettings(
            token=token,
            allowed_hosts=default_allowed_hosts(host) + tuple(allow_hosts),
            limits=limits,
            batch_size=batch_size,
            batch_wait_ms=batch_wait_ms,
            max_pending_writes=max_pending_writes,
            header_timeout_seconds=header_timeout,
            max_connections=max_connections,
            metrics=metrics,
        )
        check_exposure(host, settings.token)
        worker = None
        if watch_corpus is not None:
            with with_progress(True) as bars:
                worker = make_watcher(
                    watch_corpus,
                    index_path,
                    model=model,
                    precision=precision,
                    exclude=exclude,
                    poll=poll,
                    step_ms=step_ms,
                    debounce_ms=debounce_ms,
                    rescan=rescan,
                    log=EventLog(err=True),
                    progress=bars,
                    query_prompt=query_prompt,
                    document_prompt=document_prompt,
                )
                worker.start()
        if worker is None and not index_path.exists():
            from indexer.update import create_index

            with with_progress(True):
                loaded = create_index(
                    index_path,
                    model=model,
                    precision=precision,
                    query_prompt=query_prompt,
                    document_prompt=document_prompt,
                )
            click.echo(
                f"Created a new, empty index at {index_path} (model {loaded.name}): add documents with "
                "POST /documents.",
                err=True,
            )
            model = loaded
        with with_progress(True):  # the model's loading and a first auto load's measurements, on stderr
            index = Index.open(
                index_path,
                model=worker.embedder if worker is not None else model,
                precision=precision,
                mmap=mmap,
                query_prompt=query_prompt,
                document_prompt=document_prompt,
            )
            index.embed(["warm-up"])  # load the model here, where its loading is shown, not in the lifespan
        if worker is not None:
            worker.on_publish = index.refresh
    except BabelIndexError as exc:
        raise fail(exc) from None
    auth = "token required" if settings.token else "no token (loopback only)"
    click.echo(
        f"Serving {index_path} ({len(index):,} chunks, model {index.model_name}) on "
        f"http://{_url_host(host)}:{port} ({auth}); the search page at /, API docs at /docs",
        err=True,
    )
    run_server(index, host=host, port=port, settings=settings, log_level=log_level, worker=worker)


cli.add_command(watch)
cli.add_command(mcp)


def _interrupted(index_path: Path) -> None:
    """Say what an interrupted build kept, and exit 130 (as a shell does after Ctrl-C)."""
    from store.index_dir import IndexDir

    kept = 0
    try:
        with IndexDir.open_for_reading(index_path) as idx:
            kept = idx.meta.unpublished_changes()
    except BabelIndexError:
        pass
    what = f"{kept} documents written so far are kept" if kept else "nothing was written yet"
    click.echo(
        f"\nInterrupted: {what} (not yet searchable). Run the same command again to resume: "
        "it embeds only what is left.",
        err=True,
    )
    sys.exit(130)


def _highlighted(query: str) -> list[str]:
    """The words a lexical query searched for (phrases unquoted, ``-term`` left out)."""
    from store.lexical_query import terms

    try:
        return terms(query)
    except BabelIndexError:
        return query.split()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def main() -> None:  # pragma: no cover - console script entry
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
