"""Helpers the tests share: the shared evaluation data, files on disk, a fake Hub cache."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"  # shared/ lies beside the checkout


def eval_texts(task: str, kind: str = "corpus") -> list[dict]:
    """The records of ``shared/eval/<task>/<kind>.jsonl``."""
    with open(EVAL / task / f"{kind}.jsonl", encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def fake_hub(cache: Path, models: dict[str, Path], commit: str = "0123456789abcdef0123456789abcdef01234567") -> Path:
    """A Hugging Face hub cache at ``cache`` holding ``{hub id: model folder}`` (copied), as a
    download would leave it; point ``HF_HUB_CACHE`` at it to load Hub ids with no network."""
    for hub_id, folder in models.items():
        repo = cache / ("models--" + hub_id.replace("/", "--"))
        shutil.copytree(folder, repo / "snapshots" / commit, dirs_exist_ok=True)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(commit)
    return cache


def write_files(root: Path, files: dict[str, str | bytes]) -> Path:
    """Create ``files`` ({relative path: text or bytes}) under ``root``; returns ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
    return root


MULTILINGUAL_DOCS = {
    "en/bees.txt": "Honeybees carry pollen from flower to flower. While collecting nectar, a bee "
    "brushes against the stamens, and pollen grains stick to its hairy body.",
    "de/vulkan.md": "# Vulkane\n\nEin Vulkan bricht aus, wenn Magma aus der Tiefe aufsteigt. Gase im "
    "Magma dehnen sich aus, der Druck steigt, und Lava, Asche und Gestein werden "
    "aus dem Krater geschleudert.",
    "fr/photosynthese.txt": "La photosynthèse permet aux plantes de transformer la lumière du soleil "
    "en énergie chimique. Les feuilles absorbent le dioxyde de carbone et "
    "libèrent de l'oxygène.",
    "es/cafe.html": "<html><head><title>El café</title><style>p{color:red}</style>"
    "<script>var secret = 'tracking';</script></head><body><p>El café se cultiva "
    "en regiones tropicales. Los granos se tuestan y se muelen para preparar la "
    "bebida caliente que millones de personas toman cada mañana.</p></body></html>",
    "ja/kaiyo.txt": "海の潮の満ち引きは、主に月の引力によって起こる。月に面した側と反対側で海面が"
    "盛り上がり、一日に二回の満潮と干潮が生じる。",
    "ru/shakhmaty.txt": "Шахматы — настольная игра для двух игроков. Каждый игрок начинает партию с "
    "шестнадцатью фигурами, и цель игры — поставить мат королю соперника.",
}


SCORE_TOLERANCE = 1e-5
"""Scores of the same texts embedded in different batches differ in the 6th or 7th digit
(the kernels sum in another order): compare them within this."""


def assert_same_hits(got, expected, tolerance: float = SCORE_TOLERANCE) -> None:
    """Two hit lists are the same up to float noise: the same chunks with the same fields,
    scores within ``tolerance``; two hits whose scores are that close may swap places."""
    import pytest

    assert len(got) == len(expected), (got, expected)
    by_id = {h.chunk_id: h for h in expected}
    assert set(by_id) == {h.chunk_id for h in got}, (got, expected)
    for rank, (a, b) in enumerate(zip(got, expected, strict=True)):
        assert a.chunk_id == b.chunk_id or a.score == pytest.approx(b.score, abs=tolerance), (rank, a, b)
        twin = by_id[a.chunk_id]
        assert a.score == pytest.approx(twin.score, abs=tolerance), (a, twin)
        assert (a.text, a.doc_id, a.source, a.lang, a.start, a.end, a.metadata, a.signals) == (
            twin.text,
            twin.doc_id,
            twin.source,
            twin.lang,
            twin.start,
            twin.end,
            twin.metadata,
            twin.signals,
        )


def to_float32_format(index: Path) -> None:
    """Rewrite the float16 vectors of ``index``'s ``meta.db`` as babelindex wrote them before
    float16 existed: float32 BLOBs (the same values, widened) and no ``vector_dtype`` setting."""
    import sqlite3

    import numpy as np

    conn = sqlite3.connect(index / "meta.db")
    try:
        rows = conn.execute("SELECT chunk, vector FROM vectors").fetchall()
        with conn:
            conn.execute("DELETE FROM settings WHERE key = 'vector_dtype'")
            conn.executemany(
                "UPDATE vectors SET vector = ? WHERE chunk = ?",
                [(np.frombuffer(blob, dtype="<f2").astype("<f4").tobytes(), chunk) for chunk, blob in rows],
            )
        conn.execute("VACUUM")
    finally:
        conn.close()
