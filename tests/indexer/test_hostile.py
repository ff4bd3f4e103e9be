"""A hostile corpus: the build completes, good files are indexed, bad ones listed with reasons.

The build runs in a separate process (without the capability to override file permissions
when the tests run as root, so that unreadable files really are unreadable) and reports
its own peak memory, and that of its PDF extraction worker. Budgets of the whole run:
:data:`MAX_SECONDS` and :data:`MAX_PEAK_RSS_MB`; the build runs with smaller per-file
limits than the defaults (:data:`EXTRACT_SECONDS`, :data:`MAX_DOCUMENT_CHARS`) so that the
files that exceed them stay small.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from indexer.build import build_index
from search import Index
from store import IndexDir
from store.check import check_index
from tests.helpers import eval_texts
from tests.indexer.test_bad_inputs import flate_pdf

BIG_MB = 50
MAX_SECONDS = 600
"""Wall-clock seconds the whole hostile build may take (about 105 s here)."""
MAX_PEAK_RSS_MB = 2500
"""Peak resident memory of the build process, in MB."""
EXTRACT_SECONDS = 3.0
MAX_DOCUMENT_CHARS = 55_000_000
RUN_BUILD = """
import importlib.util, json, resource, sys, time
from indexer import extraction, reading
from indexer.build import build_index
extraction.EXTRACT_SECONDS = float(sys.argv[4])
reading.MAX_DOCUMENT_CHARS = int(sys.argv[5])
spec = importlib.util.spec_from_file_location("fakes", sys.argv[3])
fakes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fakes)
HashingEmbedder = fakes.HashingEmbedder
started = time.monotonic()
report = build_index(sys.argv[1], sys.argv[2], model=HashingEmbedder())
print(json.dumps({
    "report": report.to_dict(),
    "seconds": time.monotonic() - started,
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
}))
"""
GERMAN = "Käse entsteht, wenn man Milch gerinnen lässt. Größere Laibe reifen länger, süßer wird er nicht."
CHINESE = "光合作用是植物利用光能将二氧化碳和水转化为有机物的过程。叶绿体中的叶绿素吸收光能。"
ENGLISH = "Lighthouses guide ships along dangerous coasts with bright, rotating beams of light."


def _unprivileged(command: list[str]) -> list[str]:
    """Root reads any file; without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH it cannot."""
    if os.geteuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running as root without util-linux's setpriv: cannot make a file unreadable")
    return [setpriv, "--bounding-set", "-dac_override,-dac_read_search", *command]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """The corpus and the build's JSON output.

    The model is a hashing test double: this is about everything around the model, and a
    transformer would need most of an hour for 50 MB on two cores.
    """
    root = Path(tempfile.mkdtemp(prefix="babelindex-hostile-"))
    corpus = root / "corpus"
    good = {
        "good/plain.txt": ENGLISH.encode(),
        "good/damaged-utf8.txt": (ENGLISH + " Grüße! ").encode() * 5
        + b"\xff\xfe"
        + "Ende gut, alles gut: schön.".encode(),
        "good/utf16-bom.txt": "\ufeffUTF-16 mit BOM: Grüße aus Köln.".encode("utf-16-le"),
        "good/utf16le.txt": "UTF-16 little endian without a byte order mark, plain text.".encode("utf-16-le"),
        "good/utf16be.txt": "UTF-16 big endian without a byte order mark, plain text.".encode("utf-16-be"),
        "good/latin1.txt": GERMAN.encode("latin-1"),
        "good/gbk.txt": CHINESE.encode("gbk"),
        # issue 17
        "good/surrogate.jsonl": b'{"text": "bad \\ud800 escape, and more text"}\n',
        "good/nul-after-8kb.txt": b"word " * 2000 + b"\x00tail after the NUL",
        "good/deep.html": b"<html><body>"
        + b"<div>" * 5000
        + b"deep"
        + b"</div>" * 5000
        + b"<p>after</p></body></html>",
        "good/mixed-encoding.txt": "Привет, как дела? Сегодня хорошая погода. ".encode()
        + "Käse und Größe. ".encode("latin-1")
        + "Шахматы. ".encode("cp1251"),
        "good/ff-fe-latin1.txt": b"\xff\xfe" + GERMAN.encode("latin-1"),
        "good/one-long-line.txt": " ".join(["word", "without", "sentence", "end"] * 500_000).encode(),  # 9.5 MB
        "good/one-word.jsonl": b'{"text": "' + b"a" * 10_000_000 + b'"}\n',
    }
    bad = {
        "bad/image.txt": (b"\x89PNG\r\n\x1a\n" + os.urandom(2000), "binary file (PNG image)"),
        "bad/archive.txt": (b"PK\x03\x04" + os.urandom(2000), "binary file (ZIP archive (docx, xlsx, jar, …))"),
        "bad/program.txt": (b"\x7fELF\x02\x01\x01" + os.urandom(2000), "binary file (ELF executable)"),
        "bad/empty.txt": (b"", "empty file"),
        "bad/locked.txt": (b"Nobody may read this.", "cannot read: Permission denied"),
        # issue 17
        "bad/bomb.pdf": (flate_pdf(b" " * 100_000_000), "unreadable PDF (LimitReachedError: Limit reached while"),
        "bad/slow.pdf": (
            flate_pdf(b"BT /F1 12 Tf 72 720 Td (Hello world) Tj ET\n" * 60_000),  # 8 KB, 7 s of pypdf
            f"PDF extraction took more than {EXTRACT_SECONDS:g} s",
        ),
        "bad/too-long.txt": (
            b"x" * (MAX_DOCUMENT_CHARS + 1),
            f"text too long ({MAX_DOCUMENT_CHARS + 1:,} characters; the limit is {MAX_DOCUMENT_CHARS:,})",
        ),
    }
    for rel, data in [*good.items(), *((r, d) for r, (d, _) in bad.items())]:
        (corpus / rel).parent.mkdir(parents=True, exist_ok=True)
        (corpus / rel).write_bytes(data)
    sentences = [r["text"] for r in eval_texts("tatoeba-deu")]
    rng = random.Random(0)
    with open(corpus / "good" / "huge.txt", "w", encoding="utf-8") as fh:
        written = 0
        while written < BIG_MB * 1_000_000:
            para = " ".join(rng.choices(sentences, k=8)) + "\n\n"
            written += fh.write(para)
    (corpus / "loop").symlink_to(corpus)  # a symlink loop
    (corpus / "twice.txt").symlink_to("good/plain.txt")  # a link to a file of the corpus
    with open(os.path.join(os.fsencode(corpus / "good"), b"name-\xff.txt"), "wb") as fh:  # not UTF-8
        fh.write(ENGLISH.encode())
    (corpus / "outside.txt").symlink_to("/etc/hostname")
    (corpus / "outside-dir").symlink_to("/etc")
    os.chmod(corpus / "bad" / "locked.txt", 0)
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    proc = subprocess.run(
        _unprivileged(
            [
                sys.executable,
                "-c",
                RUN_BUILD,
                str(corpus),
                str(root / "h.idx"),
                str(Path(__file__).parents[1] / "fakes.py"),
                str(EXTRACT_SECONDS),
                str(MAX_DOCUMENT_CHARS),
            ]
        ),
        capture_output=True,
        text=True,
        env=env,
        cwd=root,
        timeout=MAX_SECONDS + 60,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.splitlines()[-1])
    yield {"root": root, "good": good, "bad": bad, "result": result}
    shutil.rmtree(root, ignore_errors=True)


@pytest.mark.slow
def test_every_good_file_is_indexed_and_every_bad_one_listed(hostile):
    report = hostile["result"]["report"]
    skipped = {s["source"]: s["reason"] for s in report["skipped"]}
    bad = {k: v for k, v in skipped.items() if k.startswith("bad/")}
    assert set(bad) == set(hostile["bad"])
    for rel, (_, why) in hostile["bad"].items():
        assert bad[rel].startswith(why), (rel, bad[rel])
    assert skipped["outside.txt"] == "symbolic link points outside the corpus root"
    assert skipped["outside-dir"] == "symbolic link points outside the corpus root"
    assert skipped["loop"] == "symbolic link to the corpus root inside the corpus (indexed under that name, not twice)"
    assert skipped["twice.txt"] == (
        "symbolic link to good/plain.txt inside the corpus (indexed under that name, not twice)"
    )
    assert len(skipped) == len(hostile["bad"]) + 4
    with IndexDir.open_for_reading(hostile["root"] / "h.idx") as idx:
        docs = dict(idx.meta.conn.execute("SELECT doc_id, n_chars FROM documents").fetchall())
        texts = {
            d: t
            for d, t in idx.meta.conn.execute(
                "SELECT d.doc_id, group_concat(c.text, ' ') FROM chunks c JOIN documents d ON d.id = c.document "
                "WHERE d.doc_id NOT IN ('good/huge.txt', 'good/one-long-line.txt', 'good/one-word.jsonl#1') "
                "GROUP BY d.doc_id"
            )
        }
    expected = {r for r in hostile["good"] if not r.endswith(".jsonl")} | {"good/huge.txt", "good/name-\\xff.txt"}
    expected |= {"good/surrogate.jsonl#1", "good/one-word.jsonl#1"}
    assert set(docs) == expected
    assert report["documents_added"] == len(expected)
    warnings = {w["source"]: w["warning"] for w in report["warnings"]}
    assert warnings == {
        "good/damaged-utf8.txt": "2 bytes that are not UTF-8 replaced by U+FFFD",
        "good/surrogate.jsonl": "line 1: 1 lone surrogate replaced by U+FFFD",
        "good/nul-after-8kb.txt": "1 NUL character removed",
        "good/mixed-encoding.txt": "10 bytes that are not UTF-8 replaced by U+FFFD",
        "good/ff-fe-latin1.txt": "starts with bytes FF FE, but is not UTF-16: they were dropped",
    }
    assert texts["good/deep.html"].split() == ["deep", "after"]
    assert texts["good/ff-fe-latin1.txt"] == GERMAN
    assert texts["good/nul-after-8kb.txt"].endswith("tail after the NUL")
    assert texts["good/mixed-encoding.txt"].startswith("Привет, как дела?")
    assert docs["good/one-long-line.txt"] == len(hostile["good"]["good/one-long-line.txt"])
    assert texts["good/latin1.txt"] == GERMAN and texts["good/gbk.txt"] == CHINESE
    assert texts["good/utf16-bom.txt"] == "UTF-16 mit BOM: Grüße aus Köln."
    assert texts["good/damaged-utf8.txt"].endswith("\ufffd\ufffdEnde gut, alles gut: schön.")
    assert docs["good/huge.txt"] >= BIG_MB * 1_000_000 - 1000


@pytest.mark.slow
def test_the_big_file_is_covered_and_time_and_memory_stay_bounded(hostile):
    result = hostile["result"]
    peak, seconds = result["peak_rss_mb"], result["seconds"]
    print(
        f"hostile corpus build: {seconds:.0f} s, peak RSS {peak:.0f} MB for a {BIG_MB} MB text file "
        f"(PDF worker {result['children_peak_rss_mb']:.0f} MB)"
    )
    assert seconds < MAX_SECONDS
    assert peak < MAX_PEAK_RSS_MB
    with IndexDir.open_for_reading(hostile["root"] / "h.idx") as idx:
        spans = np.array(
            idx.meta.conn.execute(
                'SELECT c.start, c."end" FROM chunks c JOIN documents d ON d.id = c.document '
                "WHERE d.doc_id = 'good/huge.txt' ORDER BY c.ord"
            ).fetchall()
        )
    text = (hostile["root"] / "corpus" / "good" / "huge.txt").read_text(encoding="utf-8")
    assert spans[0, 0] == 0 and spans[-1, 1] == len(text.rstrip())
    gaps = [(end, start) for (_, end), (start, _) in itertools.pairwise(spans) if start > end]
    assert all(not text[a:b].strip() for a, b in gaps)  # only whitespace between chunks: nothing lost


@pytest.mark.slow
def test_the_result_passes_check_with_only_finite_unit_vectors(hostile):
    report = check_index(hostile["root"] / "h.idx")
    assert report.ok, report.problems
    assert any("finite unit vector" in line for line in report.passed)


def test_a_document_whose_vector_is_unusable_is_skipped_and_the_rest_indexed(tmp_path, tiny_model, monkeypatch):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "fine.txt").write_text("A perfectly ordinary sentence about rivers.")
    (corpus / "poison.txt").write_text("POISON makes the model return zeros.")
    real = tiny_model.embed_documents

    def embed(texts):
        out = real(texts)
        out[[i for i, t in enumerate(texts) if "POISON" in t]] = np.nan
        return out

    monkeypatch.setattr(tiny_model, "embed_documents", embed)
    report = build_index(corpus, tmp_path / "i.idx", model=tiny_model)
    assert report.documents_added == 1
    assert report.skipped == [
        {
            "source": "poison.txt",
            "reason": "the model gave no usable vector (NaN, infinite or "
            "zero) for part of document 'poison.txt'; its indexed version, if any, is kept",
        }
    ]
    assert check_index(tmp_path / "i.idx").ok
    monkeypatch.setattr(tiny_model, "embed_documents", real)
    assert [h.doc_id for h in Index.open(tmp_path / "i.idx", model=tiny_model).search("rivers", k=5)] == ["fine.txt"]


def test_unreadable_files_are_reported_when_not_root(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("covered by the hostile build, which runs without the capability to override file permissions")
    path = tmp_path / "locked.txt"
    path.write_text("secret")
    path.chmod(0)
    try:
        from indexer.reading import read_corpus

        assert [(s.source, s.reason) for s in read_corpus(tmp_path)] == [
            ("locked.txt", "cannot read: Permission denied")
        ]
    finally:
        path.chmod(stat.S_IRUSR | stat.S_IWUSR)
