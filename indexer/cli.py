"""The ``indexer`` command: a thin shell over :mod:`indexer.build` and :mod:`search`.

Parses options, calls the library, prints. Library errors (``BabelIndexError``) become
``click.ClickException`` (exit code 1) with the library's message; usage errors exit 2.
"""

from __future__ import annotations

import json
import shutil
import sys
import unicodedata
from pathlib import Path

import click

from store.errors import BabelIndexError

INDEX_OPTION = click.option(
    "--index", "index_path", required=True, envvar="BABELINDEX_INDEX", show_envvar=True,
    type=click.Path(file_okay=False, path_type=Path), help="Index directory.",
)


class _Bars:
    """tqdm bars for a build: documents read and chunks embedded (on stderr)."""

    def __init__(self) -> None:
        from tqdm import tqdm

        self.read = tqdm(desc="reading", unit=" docs", position=0, leave=False, dynamic_ncols=True)
        self.embed = tqdm(desc="embedding", unit=" chunks", position=1, leave=False, dynamic_ncols=True)

    def document_read(self) -> None:
        self.read.update(1)

    def chunks_embedded(self, n: int) -> None:
        self.embed.update(n)

    def close(self) -> None:
        self.read.close()
        self.embed.close()


def _fail(exc: BabelIndexError) -> click.ClickException:
    return click.ClickException(str(exc))


@click.group()
@click.version_option(package_name="babelindex")
def cli() -> None:
    """babelindex: cross-lingual semantic search over your documents."""


@cli.command()
@click.argument("corpus", type=click.Path(exists=True, path_type=Path))
@INDEX_OPTION
@click.option("--model", default=None, help="Model: a Hub id, a local directory or use-multilingual. "
              "Default: the index's model, else distilbert-base-multilingual-cased.")
@click.option("--chunk-tokens", type=click.IntRange(8, 512), default=None, help="Chunk size in model tokens (default 256).")
@click.option("--overlap-tokens", type=click.IntRange(0, 256), default=None, help="Overlap between chunks in tokens (default 32).")
@click.option("--index-type", type=click.Choice(["auto", "flat", "ivf"]), default=None,
              help="FAISS index: flat (exact), ivf, or auto (flat up to 20,000 chunks). Default: as recorded, else auto.")
@click.option("--text-field", default="text", show_default=True, help="Text field of .jsonl/.csv records.")
@click.option("--id-field", default=None, help="Id field of .jsonl/.csv records (default: file#record number).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as one JSON object.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bars and no report.")
def build(corpus, index_path, model, chunk_tokens, overlap_tokens, index_type, text_field, id_field, as_json, quiet):
    """Index the documents in CORPUS (a folder or a file) into --index.

    Run it again to update: new files are added, changed ones re-embedded, removed ones
    dropped; nothing is embedded when nothing changed.
    """
    from indexer.build import build_index

    bars = _Bars() if sys.stderr.isatty() and not (quiet or as_json) else None
    try:
        report = build_index(
            corpus, index_path, model=model, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens,
            index_type=index_type, text_field=text_field, id_field=id_field, progress=bars,
        )
    except BabelIndexError as exc:
        raise _fail(exc) from None
    finally:
        if bars:
            bars.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    if quiet:
        return
    r = report
    click.echo(f"Indexed {corpus} into {index_path} with {r.model} in {r.seconds:.1f} s")
    click.echo(f"  documents: {r.documents_added} added, {r.documents_updated} updated, "
               f"{r.documents_removed} removed, {r.documents_unchanged} unchanged, {r.documents_skipped} skipped")
    click.echo(f"  chunks:    {r.chunks_embedded} embedded, {r.chunks_total} in the index ({r.index_type})")
    if r.skipped:
        click.echo("Skipped:")
        for item in r.skipped[:20]:
            click.echo(f"  {item['source']}: {item['reason']}")
        if len(r.skipped) > 20:
            click.echo(f"  … and {len(r.skipped) - 20} more (see --json for all)")


@cli.command()
@click.argument("query")
@INDEX_OPTION
@click.option("-k", "k", type=click.IntRange(1, 10_000), default=10, show_default=True, help="Number of hits.")
@click.option("--nprobe", type=click.IntRange(1), default=None, help="IVF lists to visit (default: tuned at build).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of hits.")
def search(query, index_path, k, nprobe, as_json):
    """Find the passages nearest to QUERY, in any language."""
    from search import Index

    try:
        with Index.open(index_path) as index:
            hits = index.search(query, k=k, nprobe=nprobe)
    except BabelIndexError as exc:
        raise _fail(exc) from None
    if as_json:
        click.echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=False))
        return
    if not hits:
        click.echo("No hits.")
        return
    width = shutil.get_terminal_size((100, 20)).columns
    sources = [h.doc_id if h.doc_id.startswith(h.source) else f"{h.source} [{h.doc_id}]" for h in hits]
    src_w = min(max(_width(s) for s in sources), 40)
    snippet_w = max(20, width - src_w - 24)
    click.echo(f"{'rank':>4}  {'score':>5}  {'lang':4}  {_fit('source', src_w)}  text")
    for rank, (hit, source) in enumerate(zip(hits, sources, strict=True), start=1):
        snippet = _fit(" ".join(hit.text.split()), snippet_w)
        click.echo(f"{rank:>4}  {hit.score:5.3f}  {hit.lang or '?':4}  {_fit(source, src_w, left=True)}  {snippet}".rstrip())


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
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def stats(index_path, as_json):
    """Show counts, model, index type, languages and sizes of an index."""
    from search import Index

    try:
        with Index.open(index_path) as index:
            s = index.stats()
    except BabelIndexError as exc:
        raise _fail(exc) from None
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
    click.echo("languages:  " + ", ".join(f"{lang} {n}" for lang, n in s["languages"].items()))
    click.echo(f"on disk:    {_mb(size['total'])} (meta.db {_mb(size['meta_db'])}, faiss {_mb(size['faiss'])})")


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def main() -> None:  # pragma: no cover - console script entry
    cli()


if __name__ == "__main__":  # pragma: no cover
    main()
