"""Tests for indexer.decoding: BOMs, UTF-8, UTF-16 without BOM, legacy code pages, binary refusal."""

from __future__ import annotations

import codecs
import random

import pytest

from indexer.decoding import NotText, decode, decode_with_note

GERMAN = "Die Bücher über Äpfel und Öl gehören dem Straßenverkäufer. Größe zählt nicht, sagte Jürgen Müller in München."
CHINESE = "我们今天去公园散步，天气非常好。他说这本书很有意思，值得一读。中国的历史文化源远流长，吸引了很多外国游客。"
RUSSIAN = (
    "Привет, как у тебя дела? Сегодня хорошая погода, и мы пойдём гулять в парк. "
    "Москва является столицей России. Я люблю читать книги по вечерам."
)
ENGLISH = "Hello world, this is plain English text.\nIt has two lines."


def _random_bytes(n: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(n)


# --- Unicode ---------------------------------------------------------------------------


def test_utf8():
    assert decode("naïve café – 東京 😀".encode()) == "naïve café – 東京 😀"


def test_ascii():
    assert decode(b"just ascii\n") == "just ascii\n"


def test_utf8_bom_is_removed():
    assert decode(codecs.BOM_UTF8 + "Grüße".encode()) == "Grüße"


def test_utf8_bom_only_gives_empty_text():
    assert decode(codecs.BOM_UTF8) == ""


@pytest.mark.parametrize(
    ("bom", "encoding"),
    [
        (codecs.BOM_UTF16_LE, "utf-16-le"),
        (codecs.BOM_UTF16_BE, "utf-16-be"),
        (codecs.BOM_UTF32_LE, "utf-32-le"),
        (codecs.BOM_UTF32_BE, "utf-32-be"),
    ],
)
@pytest.mark.parametrize("text", [ENGLISH, GERMAN, CHINESE])
def test_utf16_and_utf32_with_bom(bom, encoding, text):
    assert decode(bom + text.encode(encoding)) == text


def test_bom_with_invalid_content_is_not_text():
    with pytest.raises(NotText) as exc:
        decode(codecs.BOM_UTF8 + b"abc\xff\xfe\xfd")
    assert str(exc.value) == "starts with a utf-8 byte-order mark but is not valid utf-8"


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
@pytest.mark.parametrize("text", [ENGLISH, GERMAN, "Hi"])
def test_utf16_without_bom(encoding, text):
    # Pure-ASCII UTF-16 is also valid UTF-8 (NUL is a valid UTF-8 byte): it must not come
    # back as "H\x00e\x00l\x00…".
    result = decode(text.encode(encoding))
    assert result == text
    assert "\x00" not in result


# --- Legacy code pages (detection) ---------------------------------------------------


def test_latin1_german():
    assert decode(GERMAN.encode("latin-1")) == GERMAN


def test_cp1252_german_with_euro_sign_and_dash():
    text = "Der Preis beträgt 20 € – das ist günstig. Die Straße ist nass."
    assert decode(text.encode("cp1252")) == text


def test_gbk_chinese():
    data = CHINESE.encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")  # so detection, not the UTF-8 path, is under test
    assert decode(data) == CHINESE


def test_cp1251_russian():
    assert decode(RUSSIAN.encode("cp1251")) == RUSSIAN


def test_shift_jis_japanese():
    text = "今日はとても良い天気です。公園に散歩に行きましょう。日本の文化は面白いです。"
    assert decode(text.encode("shift_jis")) == text


def test_cp1250_polish():
    text = "Zażółć gęślą jaźń. W Szczebrzeszynie chrząszcz brzmi w trzcinie. Ćma leci nad łąką."
    assert decode(text.encode("cp1250")) == text


# --- Binary ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("magic", "reason"),
    [
        (b"\x89PNG\r\n\x1a\n", "binary file (PNG image)"),
        (b"PK\x03\x04", "binary file (ZIP archive (docx, xlsx, jar, …))"),
        (b"\x7fELF\x02\x01\x01\x00", "binary file (ELF executable)"),
        (b"\xff\xd8\xff\xe0", "binary file (JPEG image)"),
        (b"GIF89a", "binary file (GIF image)"),
        (b"\x1f\x8b\x08", "binary file (gzip archive)"),
        (b"SQLite format 3\x00", "binary file (SQLite database)"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3", "binary file (PDF document with a text extension)"),
    ],
)
def test_magic_bytes_are_binary(magic, reason):
    with pytest.raises(NotText) as exc:
        decode(magic + _random_bytes(4096))
    assert str(exc.value) == reason


def test_random_binary_with_nuls():
    data = bytearray(_random_bytes(4096, seed=1))
    data[10:20] = b"\x00" * 10
    with pytest.raises(NotText) as exc:
        decode(bytes(data))
    assert str(exc.value) == "binary file (contains NUL bytes)"


def test_valid_utf8_with_nuls_is_binary():
    # Every byte < 0x80, so valid UTF-8, but NULs scattered like in a binary record file.
    data = b"record\x00\x00\x01\x02\x00\x00\x00\x10header\x00\x00\x00\x00\x7f\x00\x00\x03"
    with pytest.raises(NotText) as exc:
        decode(data)
    assert str(exc.value) == "binary file (contains NUL bytes)"


def test_empty():
    with pytest.raises(NotText) as exc:
        decode(b"")
    assert str(exc.value) == "empty file"


def test_not_text_is_an_exception_with_the_reason_as_message():
    assert issubclass(NotText, Exception)
    assert str(NotText("binary file (PNG image)")) == "binary file (PNG image)"


LEGACY_TEXTS = [
    ("Le café est très bon. À Paris, on boit un café crème à la terrasse, près de l'église.", "cp1252"),
    ("Não há nada melhor do que um pão de queijo quente com café, disse a avó à neta.", "latin-1"),
    ("Öl und Wasser", "latin-1"),
    ("Käse entsteht, wenn man Milch gerinnen lässt und die festen Bestandteile trennt. Größe, Süße.", "latin-1"),
    ("Het is een mooie dag in België, zeiden ze. Één keer per jaar.", "cp1252"),
    ("El niño comió paella en la playa, ¿verdad? ¡Sí, señor!", "cp1252"),
    ("Zażółć gęślą jaźń. Pchnąć w tę łódź jeża lub ośm skrzyń fig.", "cp1250"),
    ("Árvíztűrő tükörfúrógép. Egy kis magyar szöveg, ékezetes betűkkel.", "iso8859-2"),
    ("Привет, как дела? Сегодня хорошая погода, и мы пойдём гулять в парк.", "cp1251"),
    ("Ελληνικά κείμενα με τόνους και άλλα σημάδια.", "iso8859-7"),
    ("日本語のテキストです。これはテストです。", "shift_jis"),
    ("日本語のテキストです。これはテストです。", "euc-jp"),
    ("光合作用是植物、藻类和某些细菌利用光能将二氧化碳和水转化为有机物的过程。", "gbk"),
    ("한국어 텍스트입니다. 이것은 시험입니다.", "euc-kr"),
]


@pytest.mark.parametrize(("text", "encoding"), LEGACY_TEXTS)
def test_short_legacy_encoded_texts_decode_exactly(text, encoding):
    # Windows-1252 French and Latin-1 Portuguese/German came back as Windows-1250 or Big5
    # (très -> trčs, Não -> Năo, Käse -> 珸...) before the Western European check.
    assert decode(text.encode(encoding)) == text


def test_utf8_with_a_few_damaged_bytes_keeps_its_text():
    good = ("Grüße aus München, schöne Tage am See. " * 20).encode()
    text = decode(good[:43] + b"\xff\xfe" + good[43:])  # 43 bytes: the first sentence
    assert text.startswith("Grüße aus München, schöne Tage am See. \ufffd\ufffdGrüße")
    assert text.count("\ufffd") == 2


def test_utf8_with_two_bad_bytes_and_a_dozen_accents_is_still_utf8():
    # Came back as Windows-1250 mojibake ("GrĂĽĂźe") when ten valid accents per bad byte were required.
    data = ("Lighthouses guide ships. Grüße! " * 5).encode() + b"\xff\xfe" + "Ende gut: schön.".encode()
    assert decode(data).endswith("Grüße! \ufffd\ufffdEnde gut: schön.")


# --- issue 17, item 9 ---------------------------------------------------------------------------


def test_mixed_utf8_latin1_and_cp1251_is_read_as_utf8_with_the_replaced_bytes_reported():
    utf8 = "Привет, как дела? Сегодня хорошая погода, и мы пойдём гулять в парк. ".encode()
    latin1 = "Käse entsteht, wenn man Milch gerinnen lässt. ".encode("latin-1")
    cp1251 = "Шахматы — игра. ".encode("cp1251")
    text, note = decode_with_note(utf8 + latin1 + cp1251)
    assert text.startswith("Привет, как дела? Сегодня хорошая погода") and "K\ufffdse entsteht" in text
    assert note == "14 bytes that are not UTF-8 replaced by U+FFFD"  # ä ä, then 12 bytes of CP1251


def test_latin1_text_is_not_taken_for_damaged_utf8():
    assert decode_with_note("Käse, Größe und Süße: schöne Grüße.".encode("latin-1")) == (
        "Käse, Größe und Süße: schöne Grüße.",
        None,
    )


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ("Grüße aus Köln, schöne Tage am Rhein.".encode("latin-1"), "Grüße aus Köln, schöne Tage am Rhein."),
        (b"plain ASCII text after the marker", "plain ASCII text after the marker"),
        ("Grüße aus Köln, in UTF-8.".encode(), "Grüße aus Köln, in UTF-8."),
    ],
)
def test_a_file_starting_ff_fe_that_is_not_utf16_is_not_read_as_utf16(rest, expected):
    text, note = decode_with_note(codecs.BOM_UTF16_LE + rest)
    assert text == expected
    assert note == "starts with bytes FF FE, but is not UTF-16: they were dropped"
