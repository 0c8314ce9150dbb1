"""Character vocabulary: text <-> integer ids, characters sorted by code point."""
from __future__ import annotations

import numpy as np


class Vocab:
    """An ordered set of characters. Id i is ``chars[i]``; chars are sorted by code point."""

    def __init__(self, chars: str):
        if not isinstance(chars, str) or not chars:
            raise ValueError(f"vocabulary must be a non-empty string of characters, got {chars!r}")
        if len(set(chars)) != len(chars) or "".join(sorted(chars)) != chars:
            raise ValueError("vocabulary characters must be distinct and sorted by code point")
        self.chars = chars
        self._index = {c: i for i, c in enumerate(chars)}
        # Fast path for encode: a lookup table over code points (the vocab is small).
        self._table = np.full(max(map(ord, chars)) + 1, -1, dtype=np.int64)
        for i, c in enumerate(chars):
            self._table[ord(c)] = i

    @classmethod
    def from_text(cls, text: str) -> "Vocab":
        if not isinstance(text, str):
            raise ValueError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("text must not be empty: the vocabulary is built from its characters")
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def __eq__(self, other) -> bool:
        return isinstance(other, Vocab) and other.chars == self.chars

    def __repr__(self) -> str:
        return f"Vocab(size={self.size})"

    def unknown(self, s: str) -> list[str]:
        """The distinct characters of ``s`` that are not in the vocabulary, in order of appearance."""
        return list(dict.fromkeys(c for c in s if c not in self._index))

    def encode(self, s: str) -> np.ndarray:
        """``s`` -> ids, shape (len(s),), int64. An unknown character -> ValueError naming it."""
        if not isinstance(s, str):
            raise ValueError(f"text to encode must be a str, got {type(s).__name__}")
        codes = np.frombuffer(s.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
        inside = codes < len(self._table)
        ids = np.full(len(codes), -1, dtype=np.int64)
        ids[inside] = self._table[codes[inside]]
        if (ids < 0).any():
            missing = self.unknown(s)
            shown = ", ".join(repr(c) for c in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            found = "1 character" if len(missing) == 1 else f"{len(missing):,} characters"
            allowed = ("only the 1 character of the training text is allowed" if self.size == 1 else
                       f"only the {self.size:,} characters of the training text are allowed")
            raise ValueError(f"text contains {found} not in the vocabulary: {shown}{more}; {allowed}")
        return ids

    def decode(self, ids) -> str:
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= self.size):
            raise ValueError(f"ids must be in [0, {self.size - 1}], got values in [{ids.min()}, {ids.max()}]")
        return "".join(self.chars[i] for i in ids.ravel().tolist())
