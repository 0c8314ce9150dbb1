"""Training history in bounded memory, however long the run.

Rows are kept in one preallocated (capacity, columns) float64 buffer. When it fills, the older half
is thinned to every other row, so recent iterations stay at full resolution and older ones become
progressively sparser (a geometric thinning): 20,000 rows of 10 columns is 1.6 MB forever.
"""
from __future__ import annotations

import numpy as np


class BoundedHistory:
    def __init__(self, columns: tuple[str, ...], capacity: int = 20_000):
        if capacity < 8:
            raise ValueError(f"capacity must be >= 8, got {capacity}")
        self.columns = tuple(columns)
        self.capacity = int(capacity)
        self._buf = np.empty((self.capacity, len(self.columns)), dtype=np.float64)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def append(self, row) -> None:
        """row: a sequence of len(columns) numbers, in column order."""
        if self._n == self.capacity:
            self._thin()
        self._buf[self._n] = row
        self._n += 1

    def _thin(self) -> None:
        half = self.capacity // 2
        older = self._buf[:half:2].copy()         # keep every other of the older half
        k = len(older)
        self._buf[:k] = older
        self._buf[k:k + self.capacity - half] = self._buf[half:self.capacity]
        self._n = k + self.capacity - half

    def as_arrays(self, *names: str) -> dict[str, np.ndarray]:
        """Copies of the named columns (all when none are named), oldest first."""
        wanted = names or self.columns
        unknown = set(wanted) - set(self.columns)
        if unknown:
            raise ValueError(f"unknown history column(s) {sorted(unknown)}; columns are {list(self.columns)}")
        return {c: self._buf[: self._n, self.columns.index(c)].copy() for c in wanted}

    def last(self) -> dict[str, float] | None:
        if not self._n:
            return None
        return {c: float(v) for c, v in zip(self.columns, self._buf[self._n - 1])}

    def to_matrix(self) -> np.ndarray:
        return self._buf[: self._n].copy()

    @classmethod
    def from_matrix(cls, columns, matrix: np.ndarray, capacity: int = 20_000) -> "BoundedHistory":
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != len(columns):
            raise ValueError(f"history must have shape (n, {len(columns)}), got {matrix.shape}")
        if matrix.shape[0] > capacity:
            raise ValueError(f"history has {matrix.shape[0]} rows, more than its capacity {capacity}")
        h = cls(columns, capacity)
        h._buf[: len(matrix)] = matrix
        h._n = len(matrix)
        return h
