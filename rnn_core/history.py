"""Training history in bounded memory, at the same resolution over the whole run however long it is.

Rows are buckets of iterations. With stride s, bucket k holds what was appended for iterations in
((k-1)s, ks] (its key is ceil(iteration / s), the first column being the iteration). The stride starts
at 1, one row per iteration; when the buffer is full and a row for a new bucket arrives, the stride
doubles and neighbouring buckets of the WHOLE buffer merge, so every row covers the same span of
iterations. A run of N consecutive iterations is kept in between capacity/2 and capacity rows, each
summarising s <= 2N/capacity iterations: at the default 20,000 rows, no gap between rows exceeds 0.01%
of the run, early or late.

How a bucket summarises its rows:
- a column X that has companions X_min and X_max (the trainer's loss, loss_min, loss_max) keeps the
  mean of X over the bucket's iterations, and the companions keep its min and max, so a chart of a
  long run can still draw the spread of the raw values;
- every other column keeps the bucket's last value: the iteration, and states such as the smoothed
  loss or the learning rate at that iteration.
Each row stands for the iterations since the row before it (within its bucket): the weight of its
mean when buckets merge, the same view of gaps as the chart's gap-aware smoothing.

Memory: one float64 buffer of at most (capacity, columns), grown by doubling as rows arrive, plus a
temporary copy of at most the same size while merging: 20,000 rows of the trainer's 12 columns is
1.9 MB, forever.
"""
from __future__ import annotations

import math

import numpy as np

_FIRST_ROWS = 1024          # rows allocated at first; short histories (and their copies) stay small
_MAX_STRIDE = 2.0 ** 53     # iterations are exact in float64 below this


def _ceil_div(values, stride: float):
    return np.ceil(np.asarray(values, dtype=np.float64) / stride)


class BoundedHistory:
    """Rows of ``columns`` (the first is the iteration), oldest first, in at most ``capacity`` rows.

    ``stride`` is the number of iterations each row summarises now (1 until the buffer first fills).
    """

    def __init__(self, columns: tuple[str, ...], capacity: int = 20_000):
        if capacity < 8:
            raise ValueError(f"capacity must be >= 8, got {capacity}")
        self.columns = tuple(columns)
        self.capacity = int(capacity)
        self._buf = np.empty((min(self.capacity, _FIRST_ROWS), len(self.columns)), dtype=np.float64)
        self._n = 0
        self.stride = 1.0
        self._last_key: float | None = None     # bucket of the newest row, None: start a new row
        mean, lows, highs = [], [], []
        for j, c in enumerate(self.columns):
            if j and f"{c}_min" in self.columns and f"{c}_max" in self.columns:
                mean.append(j)
                lows.append(self.columns.index(f"{c}_min"))
                highs.append(self.columns.index(f"{c}_max"))
        self._mean, self._min, self._max = (np.array(a, dtype=np.intp) for a in (mean, lows, highs))
        self._rules = list(zip(mean, lows, highs))

    def __len__(self) -> int:
        return self._n

    # ------------------------------------------------------------------ adding rows
    def append(self, row) -> None:
        """row: a sequence of len(columns) numbers, in column order, iteration first."""
        it = float(row[0])
        key = math.ceil(it / self.stride)
        if self._n and key == self._last_key:
            self._merge_into_last(row, it)
            return
        if self._n == len(self._buf):
            if self._n < self.capacity:
                self._grow()
            else:
                self._thin()
                key = math.ceil(it / self.stride)
                if self._n and key == self._last_key:
                    self._merge_into_last(row, it)
                    return
        self._buf[self._n] = row
        self._n += 1
        self._last_key = key

    def _merge_into_last(self, row, it: float) -> None:
        """Fold one appended row into the newest row (the same bucket): the running form of _group."""
        j = self._n - 1
        buf = self._buf
        if not self._rules:
            buf[j] = row
            return
        last_it = float(buf[j, 0])
        before = float(buf[j - 1, 0]) if j else -math.inf
        w_old = max(last_it - max(before, (self._last_key - 1) * self.stride), 0.0)
        w_new = max(it - last_it, 0.0)
        frac = w_new / (w_old + w_new) if w_old + w_new > 0 else 1.0
        kept = [(float(buf[j, m]), float(buf[j, lo]), float(buf[j, hi])) for m, lo, hi in self._rules]
        buf[j] = row                            # the last values; then the summarised columns
        for (m, lo, hi), (mean, low, high) in zip(self._rules, kept):
            buf[j, m] = mean + (float(row[m]) - mean) * frac
            buf[j, lo] = min(low, float(row[lo]))
            buf[j, hi] = max(high, float(row[hi]))

    def extend(self, rows) -> None:
        """Append the rows of a (m, len(columns)) matrix, as m calls of append would (to float
        round-off in the means), in a few vectorised steps: for long synthetic histories."""
        rows = np.asarray(rows, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[1] != len(self.columns):
            raise ValueError(f"rows must have shape (m, {len(self.columns)}), got {rows.shape}")
        if not np.isfinite(rows[:, 0]).all():
            raise ValueError("iterations must be finite")
        done = 0
        while done < len(rows):
            block = rows[done:]
            keys = _ceil_div(block[:, 0], self.stride)
            starts_new = np.empty(len(block), dtype=bool)
            starts_new[0] = not self._n or keys[0] != self._last_key
            starts_new[1:] = keys[1:] != keys[:-1]
            # Rows that fit before the buffer would need a row beyond its capacity.
            take = int(np.searchsorted(np.cumsum(starts_new), self.capacity - self._n, side="right"))
            if take:
                self._merge_block(block[:take], keys[:take], bool(starts_new[0]))
                done += take
            if done < len(rows):
                self._thin()

    def _merge_block(self, block: np.ndarray, keys: np.ndarray, first_is_new: bool) -> None:
        n = self._n
        if first_is_new:
            at, prev = n, (float(self._buf[n - 1, 0]) if n else -math.inf)
            rows, row_keys = block, keys
        else:                                   # the first rows continue the newest bucket
            at, prev = n - 1, (float(self._buf[n - 2, 0]) if n > 1 else -math.inf)
            rows = np.concatenate((self._buf[n - 1:n], block))
            row_keys = np.concatenate(([self._last_key], keys))
        out = self._group(rows, row_keys, self._weights(rows, row_keys, prev))
        self._reserve(at + len(out))
        self._buf[at:at + len(out)] = out
        self._n = at + len(out)
        self._last_key = float(row_keys[-1])

    def _weights(self, rows: np.ndarray, keys: np.ndarray, prev: float) -> np.ndarray:
        """(m,) iterations each row stands for: since the row before it (``prev`` before rows[0],
        -inf when none), counted from the start of its bucket at most."""
        it = rows[:, 0]
        before = np.concatenate(([prev], it[:-1]))
        return np.maximum(it - np.maximum(before, (keys - 1) * self.stride), 0.0)

    def _group(self, rows: np.ndarray, keys: np.ndarray, weight: np.ndarray) -> np.ndarray:
        """rows (m, C) -> one row per run of equal consecutive keys (g, C), means weighted by
        ``weight`` (m,)."""
        m = len(rows)
        starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        out = rows[np.append(starts[1:], m) - 1]            # each group's last row (a copy)
        if self._mean.size:
            total = np.add.reduceat(weight, starts)[:, None]
            sums = np.add.reduceat(rows[:, self._mean] * weight[:, None], starts, axis=0)
            means = out[:, self._mean]
            np.divide(sums, total, out=means, where=total > 0)
            out[:, self._mean] = means
            out[:, self._min] = np.minimum.reduceat(rows[:, self._min], starts, axis=0)
            out[:, self._max] = np.maximum.reduceat(rows[:, self._max], starts, axis=0)
        return out

    def _thin(self) -> None:
        """Double the stride until at most half the capacity is used, merging over the whole buffer."""
        target = self.capacity // 2
        rows = self._buf[: self._n]
        while self._n > target and self.stride < _MAX_STRIDE:
            self.stride *= 2
            keys = _ceil_div(rows[:, 0], self.stride)
            out = self._group(rows, keys, self._weights(rows, keys, -math.inf))
            self._buf[: len(out)] = out
            self._n = len(out)
            rows = self._buf[: self._n]
            self._last_key = float(keys[-1])
        while self._n > target:
            # Only iterations that go back and forth get here: merge neighbouring rows, whatever
            # their iterations, so memory stays bounded all the same.
            out = self._group(rows, np.arange(self._n) // 2, np.ones(self._n))
            self._buf[: len(out)] = out
            self._n = len(out)
            rows = self._buf[: self._n]
            self._last_key = None

    def _grow(self) -> None:
        self._reserve(min(self.capacity, 2 * len(self._buf)))

    def _reserve(self, rows: int) -> None:
        if rows > len(self._buf):
            size = max(rows, min(self.capacity, 2 * len(self._buf)))
            buf = np.empty((size, len(self.columns)), dtype=np.float64)
            buf[: self._n] = self._buf[: self._n]
            self._buf = buf

    # ------------------------------------------------------------------ reading
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
        """The rows, (len, len(columns)), a copy."""
        return self._buf[: self._n].copy()

    def copy(self) -> "BoundedHistory":
        other = BoundedHistory.__new__(BoundedHistory)
        other.__dict__.update(self.__dict__)
        other._buf = self._buf[: max(self._n, min(self.capacity, _FIRST_ROWS))].copy()
        return other

    @classmethod
    def from_matrix(cls, columns, matrix: np.ndarray, capacity: int = 20_000) -> "BoundedHistory":
        """A history holding the rows of ``matrix`` (n, len(columns)), as to_matrix returned them.

        A matrix without the trailing X_min / X_max companion columns (written before they existed)
        is read with min = max = X. The stride is recovered from the spacing of the rows (all but the
        newest, which may be a bucket still filling)."""
        columns = tuple(columns)
        matrix = np.asarray(matrix, dtype=np.float64)
        if matrix.ndim == 2 and matrix.shape[1] < len(columns):
            missing = columns[matrix.shape[1]:]
            present = columns[: matrix.shape[1]]
            bases = [c[:-4] for c in missing if c.endswith(("_min", "_max"))]
            if len(bases) == len(missing) and all(b in present for b in bases):
                filled = [matrix[:, present.index(b)] for b in bases]
                matrix = np.column_stack([matrix, *filled]) if len(matrix) else np.empty((0, len(columns)))
        if matrix.ndim != 2 or matrix.shape[1] != len(columns):
            raise ValueError(f"history must have shape (n, {len(columns)}), got {matrix.shape}")
        if matrix.shape[0] > capacity:
            raise ValueError(f"history has {matrix.shape[0]} rows, more than its capacity {capacity}")
        it = matrix[:, 0]
        if not np.isfinite(it).all():
            raise ValueError("history iterations must be finite")
        if (np.diff(it) < 0).any():
            raise ValueError("history iterations must not decrease")
        h = cls(columns, capacity)
        h._reserve(len(matrix))
        h._buf[: len(matrix)] = matrix
        h._n = len(matrix)
        spacing = np.diff(it[:-1])
        spacing = spacing[spacing > 0]
        if spacing.size:
            h.stride = float(2.0 ** min(math.floor(math.log2(spacing.min())), 52)) if spacing.min() >= 1 else 1.0
        if h._n:
            h._last_key = math.ceil(float(it[-1]) / h.stride)
        return h
