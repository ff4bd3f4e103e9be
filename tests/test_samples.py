"""The README's command samples are what the commands print today (docs/samples.py --check)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_readme_samples_are_fresh():
    done = subprocess.run(
        [sys.executable, str(ROOT / "docs" / "samples.py"), "--check", str(ROOT / "README.md")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_sample_checker_sees_a_stale_output_and_ignores_timings(tmp_path):
    sys.path.insert(0, str(ROOT / "docs"))
    try:
        import samples
    finally:
        sys.path.remove(str(ROOT / "docs"))
    page = tmp_path / "page.md"
    page.write_text("<!-- sample -->\n```\n$ echo 'took 3.6 s'\ntook 9.9 s\n```\n", encoding="utf-8")
    assert samples.process(page, check=True)  # only the timing differs
    page.write_text("<!-- sample -->\n```\n$ echo 'score 0.405'\nscore 0.406\n```\n", encoding="utf-8")
    assert samples.process(page, check=True)  # a last digit another CPU rounds otherwise
    page.write_text("<!-- sample -->\n```\n$ echo 'score 0.405'\nscore 0.409\n```\n", encoding="utf-8")
    assert not samples.process(page, check=True)
    page.write_text("<!-- sample -->\n```\n$ echo 86 chunks\n89 chunks\n```\n", encoding="utf-8")
    assert not samples.process(page, check=True)
    samples.process(page, check=False)
    assert page.read_text(encoding="utf-8") == "<!-- sample -->\n```\n$ echo 86 chunks\n86 chunks\n```\n"
