"""`make demo`: the sample corpus answers three queries in three languages across languages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_demo_finds_documents_written_in_other_languages(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert out.splitlines()[0] == (
        "Model: use-multilingual (the default, distilbert-base-multilingual-cased, is neither cached nor reachable here)"
    )
    blocks = out.split("$ indexer search ")[1:]
    expected = {
        '"How do bees pollinate flowers?"': "ru/pchely.txt",
        '"¿Qué es la fotosíntesis?"': "fr/photosynthese.txt",
        '"Wie bricht ein Vulkan aus?"': "ja/kazan.txt",
    }
    assert len(blocks) == 3
    for block in blocks:
        query = block.split(" --index")[0]
        first_hit = block.splitlines()[2].split()
        assert first_hit[0] == "1" and first_hit[3] == expected[query], block
