"""Rerun the command samples of the README and the manual, and write their real output back.

A sample is a fenced code block right after a line ``<!-- sample -->``. Its lines that
start with ``$ `` are commands (a trailing ``\\`` continues one on the next line); the lines
after a command, up to the next command, are its output. The samples of one Markdown file
run in order, in one scratch folder holding a copy of ``examples/`` (``examples/corpus``
is the sample corpus) with ``../shared`` beside it, with this Python's ``indexer`` first on
``PATH``; so a file's samples may build an index that its later samples search. The
output written back is the command's stdout, and its stderr too when it fails (exit code
other than 0), as a terminal shows them apart from progress bars.

    python docs/samples.py                 # regenerate README.md and docs/*.md in place
    python docs/samples.py --check         # exit 1 if a sample's output is stale (timings aside)
    python docs/samples.py README.md       # only these files

``--check`` compares outputs with timings (``3.6 s``), clock times and dates masked, and
scores of three decimals within 0.0015, so it fails when what a command prints changes, not
when the machine is faster or rounds the last digit otherwise. Run it before
a release (``make samples`` regenerates); ``tests/test_samples.py`` checks the README.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MARK = "<!-- sample -->"
MASKS = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"), "<time>"),
    (re.compile(r"\b\d+(\.\d+)? ?(s|ms)\b"), "<n> s"),
    (re.compile(r"\b\d+(\.\d+)? (docs|chunks|texts)/s\b"), "<n> /s"),
]


@dataclass
class Sample:
    """One marked block of a Markdown file: where it is and its commands."""

    start: int  # index of the opening fence line
    end: int  # index of the closing fence line
    commands: list[str]


def samples(lines: list[str]) -> list[Sample]:
    """The marked blocks of a file's lines."""
    found = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == MARK and i + 1 < len(lines) and lines[i + 1].startswith("```"):
            start = i + 1
            end = next(j for j in range(start + 1, len(lines)) if lines[j].startswith("```"))
            commands, j = [], start + 1
            while j < end:
                if lines[j].startswith("$ "):
                    command = lines[j][2:]
                    while command.endswith("\\") and j + 1 < end:
                        j += 1
                        command = command[:-1] + "\n" + lines[j]
                    commands.append(command)
                j += 1
            found.append(Sample(start, end, commands))
            i = end
        i += 1
    return found


def run(command: str, cwd: Path) -> str:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env["COLUMNS"] = "100"
    done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    out = done.stdout + (done.stderr if done.returncode else "")
    return out.rstrip("\n")


def render(sample: Sample, cwd: Path) -> list[str]:
    """The block's new lines (fences excluded): each command, then its output."""
    lines: list[str] = []
    for n, command in enumerate(sample.commands):
        if n:
            lines.append("")
        lines.extend(("$ " + command).split("\n"))
        out = run(command, cwd)
        if out:
            lines.extend(out.split("\n"))
    return lines


def masked(lines: list[str]) -> list[str]:
    out = []
    for line in lines:
        for pattern, repl in MASKS:
            line = pattern.sub(repl, line)
        out.append(line.rstrip())
    return out


DECIMAL = re.compile(r"-?\d+\.\d{3,}")
TOLERANCE = 0.0015
"""How far a printed score (three decimals or more) may move and still count as the same:
another CPU's arithmetic can flip the last printed digit, a real change moves more."""


def same(old: list[str], new: list[str]) -> bool:
    """Whether two outputs are the same once masked, scores within :data:`TOLERANCE`."""
    old, new = masked(old), masked(new)
    if len(old) != len(new):
        return False
    for a, b in zip(old, new, strict=True):
        if DECIMAL.sub("#", a) != DECIMAL.sub("#", b):
            return False
        if any(
            abs(float(x) - float(y)) > TOLERANCE for x, y in zip(DECIMAL.findall(a), DECIMAL.findall(b), strict=True)
        ):
            return False
    return True


def process(path: Path, check: bool) -> bool:
    """Regenerate (or, with ``check``, compare) the samples of one file; whether all were fresh."""
    lines = path.read_text(encoding="utf-8").split("\n")
    found = samples(lines)
    if not found:
        return True
    fresh = True
    with tempfile.TemporaryDirectory(prefix="babelindex-samples-") as scratch:
        cwd = Path(scratch) / "babelindex"  # with ../shared beside it, as in a checkout
        cwd.mkdir()
        shutil.copytree(ROOT / "examples", cwd / "examples")
        (cwd / "build").mkdir()
        if (ROOT.parent / "shared").exists():
            os.symlink(ROOT.parent / "shared", Path(scratch) / "shared")
        rendered = [render(sample, cwd) for sample in found]  # in order: later samples use earlier ones
    for sample, new in reversed(list(zip(found, rendered, strict=True))):  # from the end: line numbers hold
        old = lines[sample.start + 1 : sample.end]
        if not same(old, new):
            fresh = False
            if check:
                diff = difflib.unified_diff(old, new, f"{path.name} (written)", f"{path.name} (now)", lineterm="")
                print("\n".join(diff))
        lines[sample.start + 1 : sample.end] = new
    if not check:
        path.write_text("\n".join(lines), encoding="utf-8")
    return fresh


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 if a sample is stale")
    args = parser.parse_args()
    files = args.files or [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    stale = [f for f in files if not process(f, args.check)]
    if args.check and stale:
        print(f"stale samples in: {', '.join(str(f) for f in stale)}; run `python docs/samples.py` to regenerate them")
        sys.exit(1)


if __name__ == "__main__":
    main()
